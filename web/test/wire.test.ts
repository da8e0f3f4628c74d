import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'

import { Reader, chunks, hex } from '../src/bytes.js'
import {
  Bitfield, MalformedError, decodeResponseHeader, encodeBitfieldFrame, encodeHave, encodeHello,
  encodeResponseHeader, encodeSegmentRequest, encodeTicketMsg, readHaveFrame, readHello, readTicketMsg,
  readTicketReply, swarmTag
} from '../src/wire.js'

const b = (...xs: number[]): Uint8Array => new Uint8Array(xs)
const ascii = (s: string): number[] => [...Buffer.from(s)]
const reader = (...parts: Uint8Array[]): Reader => new Reader(chunks(...parts))

test('swarm tag is SHA-256 of the domain-separated content ID (transport.swarmTag)', async () => {
  const want = createHash('sha256').update('sealmesh swarm tag v1\x00film').digest('hex')
  assert.equal(hex(await swarmTag('film')), want)
  await assert.rejects(swarmTag('../x'), MalformedError)
})

test('ticket message: version 2 | tag | u16 length | ticket, and back', async () => {
  const tag = new Uint8Array(32).fill(7)
  const msg = encodeTicketMsg(tag, b(1, 2, 3))
  assert.deepEqual(msg, b(2, ...tag, 0, 3, 1, 2, 3))
  // Split across chunks as a stream would deliver it.
  const got = await readTicketMsg(reader(msg.subarray(0, 5), msg.subarray(5)))
  assert.deepEqual(got.tag, tag)
  assert.deepEqual(got.ticket, b(1, 2, 3))
  for (const [name, t] of [['empty', new Uint8Array(0)], ['over 4096', new Uint8Array(4097)]] as const) {
    assert.throws(() => encodeTicketMsg(tag, t), MalformedError, name)
  }
  assert.throws(() => encodeTicketMsg(new Uint8Array(31), b(1)), MalformedError)
  await assert.rejects(readTicketMsg(reader(b(1, ...tag, 0, 1, 9))), MalformedError, 'version 1 is the old protocol')
  await assert.rejects(readTicketMsg(reader(b(2, ...tag, 0x10, 0x01))), MalformedError, 'length over 4096 refused before reading')
  assert.equal(await readTicketReply(reader(b(0))), 0)
  await assert.rejects(readTicketReply(reader(b(3))), MalformedError)
})

test('segment request: version | content | u16 path | path [| urgent flag]', () => {
  assert.deepEqual(encodeSegmentRequest('film', 'v/1.m4s'), b(1, 4, ...ascii('film'), 0, 7, ...ascii('v/1.m4s')))
  assert.deepEqual(encodeSegmentRequest('film', 'v/1.m4s', true), b(1, 4, ...ascii('film'), 0, 7, ...ascii('v/1.m4s'), 1))
  assert.throws(() => encodeSegmentRequest('', 'a'), MalformedError)
  assert.throws(() => encodeSegmentRequest('film', ''), MalformedError)
  assert.throws(() => encodeSegmentRequest('film', 'a'.repeat(513)), MalformedError)
  assert.throws(() => encodeSegmentRequest('a'.repeat(129), 'p'), MalformedError)
})

test('segment response header', () => {
  const cases: Array<{ name: string, h: Uint8Array, want?: { status: number, size: number } }> = [
    { name: 'ok', h: b(0, 0, 0, 0, 0, 0, 1, 0, 0), want: { status: 0, size: 65536 } },
    { name: 'not admitted', h: b(1, 0, 0, 0, 0, 0, 0, 0, 0), want: { status: 1, size: 0 } },
    { name: 'busy', h: b(3, 0, 0, 0, 0, 0, 0, 0, 0), want: { status: 3, size: 0 } },
    { name: 'unknown status', h: b(5, 0, 0, 0, 0, 0, 0, 0, 0) },
    { name: 'size over 1 GiB', h: b(0, 0, 0, 0, 0, 0x40, 0, 0, 1) },
    { name: 'size over 2^32', h: b(0, 0, 0, 0, 1, 0, 0, 0, 0) },
    { name: 'size with an error status', h: b(2, 0, 0, 0, 0, 0, 0, 0, 1) },
    { name: 'short', h: b(0, 0) }
  ]
  for (const c of cases) {
    if (c.want === undefined) assert.throws(() => decodeResponseHeader(c.h), MalformedError, c.name)
    else assert.deepEqual(decodeResponseHeader(c.h), c.want, c.name)
  }
  assert.deepEqual(encodeResponseHeader(0, 65536), cases[0]?.h)
})

test('have protocol: hello, have and bitfield frames', async () => {
  const bits = new Bitfield(10)
  bits.set(0)
  bits.set(9)
  assert.ok(bits.has(0) && bits.has(9) && !bits.has(1) && !bits.has(10))
  assert.deepEqual(bits.bytes, b(0x80, 0x40))
  const digest = new Uint8Array(32).fill(9)
  const hello = encodeHello({ content: 'film', digest, bits })
  assert.deepEqual(hello, b(1, 1, 4, ...ascii('film'), ...digest, 0, 0, 0, 10, 0x80, 0x40))
  const stream = [hello, encodeHave(3), encodeBitfieldFrame(bits)]
  const r = reader(...stream)
  const h = await readHello(r)
  assert.equal(h.content, 'film')
  assert.deepEqual(h.digest, digest)
  assert.deepEqual(h.bits.bytes, bits.bytes)
  assert.deepEqual(await readHaveFrame(r, 10), { kind: 'have', index: 3 })
  const f = await readHaveFrame(r, 10)
  assert.equal(f.kind, 'bitfield')

  const bad: Array<[string, Uint8Array[], number]> = [
    ['index past nbits', [encodeHave(10)], 10],
    ['bitfield of another length', [encodeBitfieldFrame(new Bitfield(9))], 10],
    ['bits set past nbits', [b(3, 0, 0, 0, 10, 0x80, 0x20)], 10],
    ['unknown frame', [b(9)], 10],
    ['over the file limit', [b(3, 0, 0x0f, 0xff, 0xff)], 10]
  ]
  for (const [name, parts, n] of bad) {
    await assert.rejects(readHaveFrame(reader(...parts), n), MalformedError, name)
  }
  await assert.rejects(readHello(reader(encodeHave(1))), MalformedError, 'hello first')
  await assert.rejects(readHello(reader(b(1, 2, 4, ...ascii('film')))), MalformedError, 'version')
  await assert.rejects(readHello(reader(b(1, 1, 4, ...ascii('f/lm')))), MalformedError, 'content ID')
})
