import { test } from 'node:test'
import assert from 'node:assert/strict'

import { PeerBans, type Ban } from '../src/bans.js'

test('bans last for the session by default and call onBan once', () => {
  let now = 1000
  const seen: Ban[] = []
  const bans = new PeerBans(0, () => now, (b) => seen.push(b))
  assert.equal(bans.isBanned('A'), false)
  bans.ban('A', 'bad hash')
  bans.ban('A', 'again')
  now += 1e12
  assert.equal(bans.isBanned('A'), true)
  assert.equal(bans.isBanned('B'), false)
  assert.equal(seen.length, 1)
  assert.equal(seen[0]?.reason, 'bad hash')
  assert.equal(bans.size, 1)
})

test('timed bans expire', () => {
  let now = 0
  const bans = new PeerBans(60_000, () => now)
  bans.ban('A', 'short file')
  now = 59_999
  assert.equal(bans.isBanned('A'), true)
  now = 60_000
  assert.equal(bans.isBanned('A'), false)
  assert.deepEqual(bans.list(), [])
  assert.throws(() => new PeerBans(-1), RangeError)
})
