// Signed manifest (sealmesh.json) verification with WebCrypto.
//
// The envelope segment.SignManifest writes is
//
//	{"manifest": <body>, "key_id": "...", "signature": "<base64 Ed25519>"}
//
// and the signature covers "sealmesh manifest v1\0" || body, where body is the
// "manifest" member's bytes exactly as they appear in the file (the Go writer
// checks that they survive its encoder). JSON.parse loses those bytes, so
// this module scans the envelope as bytes, verifies the signature over the
// member's raw span, and only then parses *that same span*: what the page
// uses is exactly what was signed, whatever else the file contains. The
// scanner is stricter than Go's decoder (exactly the three members, each
// once, spelled exactly), which refuses nothing the Go writer produces.

import { equalBytes, fromHex, hex, sha256, utf8, utf8Strict } from './bytes.js'
import { checkContent } from './wire.js'

export const MAX_MANIFEST_SIZE = 16 << 20
const SIG_CONTEXT = utf8.encode('sealmesh manifest v1\x00')

export class ManifestError extends Error {
  constructor (msg: string, readonly kind: 'malformed' | 'signature') {
    super(`manifest: ${msg}`)
    this.name = 'ManifestError'
  }
}

/** IntegrityError: bytes differ from the manifest's size or SHA-256. */
export class IntegrityError extends Error {
  constructor (msg: string) {
    super(`integrity: ${msg}`)
    this.name = 'IntegrityError'
  }
}

export interface ManifestFile {
  path: string
  kind: 'init' | 'media' | 'playlist'
  index?: number
  period: number
  start?: number
  duration?: number
  size: number
  sha256: string
}

export interface Rendition {
  id: string
  type: 'video' | 'audio'
  codec: string
  bandwidth: number
  files: ManifestFile[]
  [k: string]: unknown
}

export interface ManifestBody {
  version: number
  content_id: string
  sequence?: number
  signing_key_id: string
  renditions: Rendition[]
  playlists?: ManifestFile[]
  [k: string]: unknown
}

export interface VerifiedManifest {
  body: ManifestBody
  /** Hex SHA-256 of the exact signed bytes (segment.Manifest.Digest). */
  digest: string
  /** The exact signed bytes. */
  signed: Uint8Array
  /** Init and media files in renditions order: the have-protocol bit order. */
  files: ManifestFile[]
  lookup: (path: string) => ManifestFile | undefined
}

/** Trusted signing keys: key ID to raw 32-byte Ed25519 public key. */
export type TrustedKeys = Record<string, Uint8Array>

const WS = new Set([0x20, 0x09, 0x0a, 0x0d])

/** Scans the top-level object of the envelope and returns each member's value span. */
export function envelopeSpans (data: Uint8Array): Map<string, [number, number]> {
  let i = 0
  const bad = (msg: string): never => { throw new ManifestError(`${msg} at byte ${i}`, 'malformed') }
  const ws = (): void => { while (i < data.length && WS.has(data[i] ?? 0)) i++ }
  const expect = (c: string): void => {
    ws()
    if (data[i] !== c.charCodeAt(0)) bad(`want '${c}'`)
    i++
  }
  const skipString = (): void => {
    if (data[i] !== 0x22) bad('want a string')
    i++
    while (i < data.length) {
      const c = data[i++]
      if (c === 0x5c) i++ // backslash: skip the escaped byte
      else if (c === 0x22) return
      else if ((c ?? 0) < 0x20) bad('control character in string')
    }
    bad('unterminated string')
  }
  const skipValue = (): void => {
    ws()
    const c = data[i]
    if (c === 0x22) return skipString()
    if (c === 0x7b || c === 0x5b) {
      // Objects and arrays: track depth; strings may hold brackets.
      const stack = [c === 0x7b ? 0x7d : 0x5d]
      i++
      while (stack.length > 0) {
        if (i >= data.length) bad('unterminated value')
        const d = data[i]
        if (d === 0x22) { skipString(); continue }
        if (d === 0x7b) stack.push(0x7d)
        else if (d === 0x5b) stack.push(0x5d)
        else if (d === 0x7d || d === 0x5d) {
          if (stack.pop() !== d) bad('mismatched bracket')
        }
        i++
      }
      return
    }
    // A literal or number: up to the next delimiter.
    const start = i
    while (i < data.length && !WS.has(data[i] ?? 0) && data[i] !== 0x2c && data[i] !== 0x7d && data[i] !== 0x5d) i++
    if (i === start) bad('want a value')
  }
  const spans = new Map<string, [number, number]>()
  expect('{')
  ws()
  if (data[i] === 0x7d) bad('empty envelope')
  for (;;) {
    ws()
    const ks = i
    skipString()
    let key: string
    try {
      key = JSON.parse(utf8Strict.decode(data.subarray(ks, i)))
    } catch {
      return bad('bad member name')
    }
    if (spans.has(key)) bad(`member ${JSON.stringify(key)} twice`)
    expect(':')
    ws()
    const vs = i
    skipValue()
    spans.set(key, [vs, i])
    ws()
    if (data[i] === 0x2c) { i++; continue }
    expect('}')
    break
  }
  ws()
  if (i !== data.length) bad('data after the envelope')
  return spans
}

function decodeBase64 (s: string): Uint8Array {
  // Go's []byte JSON encoding: standard alphabet with padding.
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) throw new ManifestError('signature is not base64', 'malformed')
  const bin = atob(s)
  const out = new Uint8Array(bin.length)
  for (let j = 0; j < bin.length; j++) out[j] = bin.charCodeAt(j)
  return out
}

/**
 * verifyManifest checks data's signature against trusted and only then
 * decodes the signed bytes. Errors are ManifestError.
 */
export async function verifyManifest (data: Uint8Array, trusted: TrustedKeys): Promise<VerifiedManifest> {
  if (data.length > MAX_MANIFEST_SIZE) throw new ManifestError(`${data.length} bytes is over the ${MAX_MANIFEST_SIZE} limit`, 'malformed')
  const spans = envelopeSpans(data)
  const names = [...spans.keys()].sort().join(',')
  if (names !== 'key_id,manifest,signature') throw new ManifestError(`envelope members ${names}, want manifest, key_id and signature`, 'malformed')
  const text = (k: string): unknown => {
    const [a, b] = spans.get(k) as [number, number]
    try {
      return JSON.parse(utf8Strict.decode(data.subarray(a, b)))
    } catch {
      throw new ManifestError(`member ${k} is not valid JSON`, 'malformed')
    }
  }
  const keyID = text('key_id')
  const sigB64 = text('signature')
  if (typeof keyID !== 'string' || typeof sigB64 !== 'string') throw new ManifestError('key_id and signature must be strings', 'malformed')
  const pub = Object.prototype.hasOwnProperty.call(trusted, keyID) ? trusted[keyID] : undefined
  if (pub === undefined || pub.length !== 32) throw new ManifestError(`signing key ${JSON.stringify(keyID)} is not trusted`, 'signature')
  const sig = decodeBase64(sigB64)
  const [a, b] = spans.get('manifest') as [number, number]
  const signed = data.slice(a, b)
  if (sig.length !== 64 || signed.length === 0) throw new ManifestError('missing signature or body', 'signature')
  const key = await crypto.subtle.importKey('raw', pub as Uint8Array<ArrayBuffer>, { name: 'Ed25519' }, false, ['verify'])
  const msg = new Uint8Array(SIG_CONTEXT.length + signed.length)
  msg.set(SIG_CONTEXT)
  msg.set(signed, SIG_CONTEXT.length)
  if (!(await crypto.subtle.verify({ name: 'Ed25519' }, key, sig as Uint8Array<ArrayBuffer>, msg))) {
    throw new ManifestError('signature does not verify', 'signature')
  }
  // Verified: now, and only now, look inside the signed bytes.
  let body: ManifestBody
  try {
    body = JSON.parse(utf8Strict.decode(signed))
  } catch {
    throw new ManifestError('signed body is not JSON', 'malformed')
  }
  validate(body, keyID)
  const files: ManifestFile[] = []
  const byPath = new Map<string, ManifestFile>()
  for (const r of body.renditions) {
    for (const f of r.files) {
      files.push(f)
      byPath.set(f.path, f)
    }
  }
  for (const f of body.playlists ?? []) byPath.set(f.path, f)
  return { body, digest: hex(await sha256(signed)), signed, files, lookup: (p) => byPath.get(p) }
}

const sha256Re = /^[0-9a-f]{64}$/

/** The checks of segment.Manifest.Validate the page relies on. */
function validate (m: ManifestBody, keyID: string): void {
  const bad = (msg: string): never => { throw new ManifestError(msg, 'malformed') }
  if (typeof m !== 'object' || m === null) bad('body is not an object')
  if (m.signing_key_id !== keyID) bad(`key ID inside (${JSON.stringify(m.signing_key_id)}) differs from the envelope's (${JSON.stringify(keyID)})`)
  try {
    checkContent(m.content_id)
  } catch {
    bad(`content ID ${JSON.stringify(m.content_id)}`)
  }
  if (!Array.isArray(m.renditions) || m.renditions.length === 0) bad('no renditions')
  const seen = new Set<string>()
  const file = (f: ManifestFile): void => {
    if (typeof f !== 'object' || f === null || typeof f.path !== 'string') return bad('file without a path')
    const p = f.path
    if (p === '' || utf8.encode(p).length > 512 || p.startsWith('/') || p.includes('\\') || p.split('/').some(s => s === '' || s === '.' || s === '..' || s.startsWith('.'))) bad(`path ${JSON.stringify(p)} is not a clean relative path`)
    if (seen.has(p)) bad(`path ${JSON.stringify(p)} listed twice`)
    seen.add(p)
    if (!Number.isInteger(f.size) || f.size <= 0 || f.size > (1 << 30) || typeof f.sha256 !== 'string' || !sha256Re.test(f.sha256)) bad(`file ${JSON.stringify(p)}: size ${f.size}, sha256 ${JSON.stringify(f.sha256)}`)
  }
  for (const r of m.renditions) {
    if (!Array.isArray(r.files)) bad(`rendition ${JSON.stringify(r.id)} has no files`)
    r.files.forEach(file)
  }
  if (m.playlists !== undefined && !Array.isArray(m.playlists)) bad('playlists is not a list')
  ;(m.playlists ?? []).forEach(file)
  if (seen.size > 200_000) bad('more than 200000 files')
}

/** checkFile throws IntegrityError unless data is exactly the file f. */
export async function checkFile (f: ManifestFile, data: Uint8Array): Promise<void> {
  if (data.length !== f.size) throw new IntegrityError(`${JSON.stringify(f.path)} is ${data.length} bytes, manifest says ${f.size}`)
  if (!equalBytes(await sha256(data), fromHex(f.sha256))) throw new IntegrityError(`${JSON.stringify(f.path)} SHA-256 differs`)
}

/**
 * haveDigest is the manifest digest of the have protocol's hello (not the
 * signed-bytes digest): SHA-256 of "sealmesh manifest digest v1\0" and, for
 * every init and media file, "path\0size\0sha256\n".
 */
export async function haveDigest (m: VerifiedManifest): Promise<Uint8Array> {
  let s = 'sealmesh manifest digest v1\x00'
  for (const f of m.files) s += `${f.path}\x00${f.size}\x00${f.sha256}\n`
  return await sha256(utf8.encode(s))
}
