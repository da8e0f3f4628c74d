// Wire formats of the sealmesh protocols, byte for byte as transport/wire.go
// and transport/doc.go describe them. Integers are big-endian; every length
// is checked against its bound before anything is allocated, so a peer that
// lies in a header cannot make the page allocate more than the bound.

import { Reader, concat, sha256, utf8, utf8Strict } from './bytes.js'

export const TICKET_PROTOCOL = '/sealmesh/ticket/2.0.0'
export const SEGMENT_PROTOCOL = '/sealmesh/segment/1.0.0'
export const HAVE_PROTOCOL = '/sealmesh/have/1.0.0'

export const WIRE_VERSION = 1
export const TICKET_MSG_VERSION = 2

export const MAX_CONTENT_LEN = 128
export const MAX_TICKET_LEN = 4096
export const MAX_PATH_LEN = 512
export const MAX_FILE_SIZE = 1 << 30 // segment.MaxFileSize
export const MAX_HAVE_BITS = 200_000 // segment.MaxManifestFiles
export const SWARM_TAG_LEN = 32
export const RESP_HEADER_LEN = 9

/** Ticket protocol reply statuses. */
export const TicketStatus = { Admitted: 0, Rejected: 1, UnknownContent: 2 } as const

/** Segment response statuses; any other value is a protocol violation. */
export const SegmentStatus = { OK: 0, NotAdmitted: 1, NotFound: 2, Busy: 3, BadRequest: 4 } as const
const STATUS_MAX = SegmentStatus.BadRequest

/** Have protocol frame types. */
export const Frame = { Hello: 1, Have: 2, Bitfield: 3 } as const

const FLAG_URGENT = 1

/**
 * MalformedError: the peer broke the wire format. Like Go's ErrMalformed, a
 * peer that sends one on a segment or have stream is misbehaving.
 */
export class MalformedError extends Error {
  constructor (msg: string) {
    super(`malformed message: ${msg}`)
    this.name = 'MalformedError'
  }
}

const contentRe = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/

/** Throws unless c is a valid content ID (segment.ValidContentID). */
export function checkContent (c: string): void {
  if (!contentRe.test(c)) throw new MalformedError(`content ID ${JSON.stringify(c)}: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit`)
}

function u16 (n: number): Uint8Array {
  return new Uint8Array([n >>> 8, n & 0xff])
}

function u32 (n: number): Uint8Array {
  const b = new Uint8Array(4)
  new DataView(b.buffer).setUint32(0, n)
  return b
}

/**
 * swarmTag names a content's swarm in ticket messages:
 * SHA-256("sealmesh swarm tag v1\0" || content).
 */
export async function swarmTag (content: string): Promise<Uint8Array> {
  checkContent(content)
  return await sha256(utf8.encode('sealmesh swarm tag v1\x00' + content))
}

/** Ticket message: version u8 (2) | swarm tag [32] | ticket length u16 (1..4096) | ticket. */
export function encodeTicketMsg (tag: Uint8Array, ticket: Uint8Array): Uint8Array {
  if (tag.length !== SWARM_TAG_LEN) throw new MalformedError(`swarm tag of ${tag.length} bytes`)
  if (ticket.length === 0 || ticket.length > MAX_TICKET_LEN) throw new MalformedError(`ticket length ${ticket.length} outside 1..${MAX_TICKET_LEN}`)
  return concat([new Uint8Array([TICKET_MSG_VERSION]), tag, u16(ticket.length), ticket])
}

/** Reads a ticket message (what a Go peer presents to us). */
export async function readTicketMsg (r: Reader): Promise<{ tag: Uint8Array, ticket: Uint8Array }> {
  const h = await r.read(1 + SWARM_TAG_LEN + 2)
  if (h[0] !== TICKET_MSG_VERSION) throw new MalformedError(`ticket message version ${h[0]}, want ${TICKET_MSG_VERSION}`)
  const n = ((h[1 + SWARM_TAG_LEN] ?? 0) << 8) | (h[2 + SWARM_TAG_LEN] ?? 0)
  if (n === 0 || n > MAX_TICKET_LEN) throw new MalformedError(`ticket length ${n} outside 1..${MAX_TICKET_LEN}`)
  return { tag: h.slice(1, 1 + SWARM_TAG_LEN), ticket: (await r.read(n)).slice() }
}

/** Reads the one-byte reply to a ticket presentation. */
export async function readTicketReply (r: Reader): Promise<number> {
  const b = await r.read(1)
  const s = b[0] ?? 255
  if (s > TicketStatus.UnknownContent) throw new MalformedError(`ticket reply status ${s}`)
  return s
}

function pathBytes (path: string): Uint8Array {
  const p = utf8.encode(path)
  if (p.length === 0 || p.length > MAX_PATH_LEN) throw new MalformedError(`path length ${p.length} outside 1..${MAX_PATH_LEN}`)
  return p
}

/**
 * Segment request: version u8 (1) | content length u8 | content | path
 * length u16 | path [| flags u8]; the flags byte only for an urgent request.
 */
export function encodeSegmentRequest (content: string, path: string, urgent = false): Uint8Array {
  checkContent(content)
  const c = utf8.encode(content)
  const parts = [new Uint8Array([WIRE_VERSION, c.length]), c, u16(pathBytes(path).length), pathBytes(path)]
  if (urgent) parts.push(new Uint8Array([FLAG_URGENT]))
  return concat(parts)
}

/** Segment response header: status u8 | size u64 (0 unless status is OK). */
export function decodeResponseHeader (h: Uint8Array): { status: number, size: number } {
  if (h.length !== RESP_HEADER_LEN) throw new MalformedError(`response header of ${h.length} bytes`)
  const status = h[0] ?? 255
  const dv = new DataView(h.buffer, h.byteOffset, h.byteLength)
  const hi = dv.getUint32(1)
  const lo = dv.getUint32(5)
  if (status > STATUS_MAX) throw new MalformedError(`unknown status ${status}`)
  // hi must be 0: anything over 2^32 is far over the 1 GiB file limit.
  if (hi !== 0 || lo > MAX_FILE_SIZE) throw new MalformedError(`size ${hi * 2 ** 32 + lo} over the ${MAX_FILE_SIZE} limit`)
  if (status !== SegmentStatus.OK && lo !== 0) throw new MalformedError(`status ${status} with size ${lo}`)
  return { status, size: lo }
}

export function encodeResponseHeader (status: number, size: number): Uint8Array {
  const b = new Uint8Array(RESP_HEADER_LEN)
  const dv = new DataView(b.buffer)
  b[0] = status
  dv.setUint32(1, Math.floor(size / 2 ** 32))
  dv.setUint32(5, size >>> 0)
  return b
}

/** A bitfield of nbits, most significant bit first. */
export class Bitfield {
  readonly bytes: Uint8Array
  constructor (readonly nbits: number, bytes?: Uint8Array) {
    this.bytes = bytes ?? new Uint8Array(Math.ceil(nbits / 8))
  }

  has (i: number): boolean { return i >= 0 && i < this.nbits && (((this.bytes[i >> 3] ?? 0) >> (7 - (i & 7))) & 1) === 1 }
  set (i: number): void {
    if (i < 0 || i >= this.nbits) throw new RangeError(`bit ${i} of ${this.nbits}`)
    this.bytes[i >> 3] = (this.bytes[i >> 3] ?? 0) | (0x80 >> (i & 7))
  }
}

export interface Hello { content: string, digest: Uint8Array, bits: Bitfield }

/** Hello: type u8 (1) | version u8 | content length u8 | content | manifest digest [32] | nbits u32 | bitfield. */
export function encodeHello (h: Hello): Uint8Array {
  checkContent(h.content)
  if (h.digest.length !== 32) throw new MalformedError('manifest digest must be 32 bytes')
  if (h.bits.nbits > MAX_HAVE_BITS) throw new MalformedError(`${h.bits.nbits} bits over the ${MAX_HAVE_BITS} limit`)
  const c = utf8.encode(h.content)
  return concat([new Uint8Array([Frame.Hello, WIRE_VERSION, c.length]), c, h.digest, u32(h.bits.nbits), h.bits.bytes])
}

/** have: type u8 (2) | index u32. */
export function encodeHave (index: number): Uint8Array {
  return concat([new Uint8Array([Frame.Have]), u32(index)])
}

/** bitfield: type u8 (3) | nbits u32 | bitfield. */
export function encodeBitfieldFrame (bits: Bitfield): Uint8Array {
  return concat([new Uint8Array([Frame.Bitfield]), u32(bits.nbits), bits.bytes])
}

async function readBits (r: Reader): Promise<Bitfield> {
  const l = await r.read(4)
  const n = new DataView(l.buffer, l.byteOffset, 4).getUint32(0)
  if (n > MAX_HAVE_BITS) throw new MalformedError(`${n} bits over the ${MAX_HAVE_BITS} limit`)
  const bytes = (await r.read(Math.ceil(n / 8))).slice()
  // Bits past nbits must be zero, so a bitfield has one encoding.
  if (n % 8 !== 0 && ((bytes[bytes.length - 1] ?? 0) & (0xff >> (n % 8))) !== 0) throw new MalformedError(`bits set past bit ${n}`)
  return new Bitfield(n, bytes)
}

async function readVersionContent (r: Reader): Promise<string> {
  const h = await r.read(2)
  if (h[0] !== WIRE_VERSION) throw new MalformedError(`version ${h[0]}, want ${WIRE_VERSION}`)
  const n = h[1] ?? 0
  if (n === 0 || n > MAX_CONTENT_LEN) throw new MalformedError(`content ID length ${n} outside 1..${MAX_CONTENT_LEN}`)
  let content: string
  try {
    content = utf8Strict.decode(await r.read(n))
  } catch (e) {
    if (e instanceof TypeError) throw new MalformedError('content ID is not UTF-8')
    throw e
  }
  checkContent(content)
  return content
}

export async function readHello (r: Reader): Promise<Hello> {
  const t = await r.read(1)
  if (t[0] !== Frame.Hello) throw new MalformedError(`first frame has type ${t[0]}, want hello`)
  const content = await readVersionContent(r)
  const digest = (await r.read(32)).slice()
  return { content, digest, bits: await readBits(r) }
}

export type HaveFrame = { kind: 'have', index: number } | { kind: 'bitfield', bits: Bitfield }

/** Reads one frame after the hello, for a manifest of nbits files. */
export async function readHaveFrame (r: Reader, nbits: number): Promise<HaveFrame> {
  const t = (await r.read(1))[0]
  switch (t) {
    case Frame.Have: {
      const b = await r.read(4)
      const i = new DataView(b.buffer, b.byteOffset, 4).getUint32(0)
      if (i >= nbits) throw new MalformedError(`index ${i} of ${nbits} files`)
      return { kind: 'have', index: i }
    }
    case Frame.Bitfield: {
      const bits = await readBits(r)
      if (bits.nbits !== nbits) throw new MalformedError(`bitfield of ${bits.nbits} bits, want ${nbits}`)
      return { kind: 'bitfield', bits }
    }
    default:
      throw new MalformedError(`frame type ${t}`)
  }
}
