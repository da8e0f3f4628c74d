import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'

import { Reader, chunks } from '../src/bytes.js'
import type { ManifestFile } from '../src/manifest.js'
import { IdleTimeoutError, OffenceError, SegmentRefusedError, readSegment, withIdleTimeout } from '../src/segment.js'
import { encodeResponseHeader } from '../src/wire.js'

const body = new Uint8Array(5000).map((_, i) => i * 31)
const file: ManifestFile = { path: 'v/1.m4s', kind: 'media', period: 0, size: body.length, sha256: createHash('sha256').update(body).digest('hex') }

async function * resetAfter (first: Uint8Array): AsyncGenerator<Uint8Array> {
  yield first
  throw new Error('stream reset')
}

test('readSegment returns verified bytes and classifies misbehaviour', async () => {
  const ok = encodeResponseHeader(0, body.length)
  const got = await readSegment(new Reader(chunks(ok.subarray(0, 3), ok.subarray(3), body.subarray(0, 100), body.subarray(100))), file)
  assert.deepEqual(got, body)

  const flipped = body.slice()
  flipped[10] = (flipped[10] ?? 0) ^ 0x40
  const offences: Array<[string, Uint8Array[]]> = [
    ['flipped bits', [ok, flipped]],
    ['another size', [encodeResponseHeader(0, body.length + 1), body, new Uint8Array(1)]],
    ['short file, clean FIN', [ok, body.subarray(1)]],
    ['bytes past the size', [ok, body, new Uint8Array(1)]],
    ['unknown status', [new Uint8Array([7, 0, 0, 0, 0, 0, 0, 0, 0])]],
    ['truncated header', [ok.subarray(0, 4)]]
  ]
  for (const [name, parts] of offences) {
    await assert.rejects(readSegment(new Reader(chunks(...parts)), file), OffenceError, name)
  }
  await assert.rejects(readSegment(new Reader(chunks(encodeResponseHeader(1, 0))), file), (e: unknown) => e instanceof SegmentRefusedError && e.status === 1, 'not admitted')
  await assert.rejects(readSegment(new Reader(chunks(encodeResponseHeader(3, 0))), file), SegmentRefusedError, 'busy')
  await assert.rejects(readSegment(new Reader(resetAfter(ok)), file), (e: unknown) => !(e instanceof OffenceError) && (e as Error).message === 'stream reset', 'a reset is not an offence')
})

test('withIdleTimeout calls onIdle when the source stalls, not while it flows', async () => {
  let release: (e: Error) => void = () => {}
  const stalled = new Promise<never>((_resolve, reject) => { release = reject })
  async function * src (): AsyncGenerator<Uint8Array> {
    yield encodeResponseHeader(0, body.length)
    yield body.subarray(0, 10)
    await stalled // a peer that stops sending without closing
  }
  let idle = 0
  const r = new Reader(withIdleTimeout(src(), 50, () => { idle++; release(new IdleTimeoutError(50)) }))
  await assert.rejects(readSegment(r, file), (e: unknown) => e instanceof IdleTimeoutError && !(e instanceof OffenceError))
  assert.equal(idle, 1)

  let never = 0
  const ok = encodeResponseHeader(0, body.length)
  assert.deepEqual(await readSegment(new Reader(withIdleTimeout(chunks(ok, body), 10_000, () => { never++ })), file), body)
  assert.equal(never, 0)
})
