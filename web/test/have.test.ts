import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'

import { chunks, fromHex } from '../src/bytes.js'
import { HaveMap } from '../src/have.js'
import { haveDigest, verifyManifest } from '../src/manifest.js'
import { Bitfield, MalformedError, encodeBitfieldFrame, encodeHave, encodeHello } from '../src/wire.js'

const dir = new URL('../../testdata/manifest/', import.meta.url)
const key = JSON.parse(readFileSync(new URL('key.json', dir), 'utf8')) as { key_id: string, public_hex: string }
const m = await verifyManifest(new Uint8Array(readFileSync(new URL('sealmesh.json', dir))), { [key.key_id]: fromHex(key.public_hex) })
const digest = await haveDigest(m)
const [init, seg1, seg2] = m.files.map(f => f.path) as [string, string, string]

test('have streams build a per-peer map of who holds what', async () => {
  const changes: string[] = []
  const have = new HaveMap(m, (p) => changes.push(p))
  const bits = new Bitfield(3)
  bits.set(0)
  await have.consume('A', chunks(encodeHello({ content: 'web-fixture', digest, bits }), encodeHave(2)))
  assert.ok(have.has('A', init) && !have.has('A', seg1) && have.has('A', seg2))
  const all = new Bitfield(3)
  all.set(0); all.set(1); all.set(2)
  await have.consume('B', chunks(encodeHello({ content: 'web-fixture', digest, bits: new Bitfield(3) }), encodeBitfieldFrame(all)))
  assert.deepEqual(have.candidates(seg1), ['B'])
  assert.deepEqual(have.candidates(seg2).sort(), ['A', 'B'])
  assert.equal(have.has('A', 'not/listed'), false)
  assert.deepEqual(changes, ['A', 'A', 'B', 'B'])
  have.drop('B')
  assert.deepEqual(have.candidates(seg1), [])
})

test('another packaging is ignored; a malformed frame forgets the peer', async () => {
  const have = new HaveMap(m)
  const all = new Bitfield(3)
  all.set(1)
  await have.consume('C', chunks(encodeHello({ content: 'web-fixture', digest: new Uint8Array(32), bits: all })))
  assert.equal(have.has('C', seg1), false, 'another manifest digest')
  await have.consume('C', chunks(encodeHello({ content: 'other', digest, bits: all })))
  assert.equal(have.has('C', seg1), false, 'another content')
  await assert.rejects(have.consume('D', chunks(encodeHello({ content: 'web-fixture', digest, bits: all }), encodeHave(3))), MalformedError)
  assert.equal(have.has('D', seg1), false, 'forgotten after a bad index')
})
