// Reading one segment response (the requester's side of
// /sealmesh/segment/1.0.0), independent of libp2p so it is unit-tested on
// plain byte sources.

import { Reader, concat } from './bytes.js'
import { IntegrityError, checkFile, type ManifestFile } from './manifest.js'
import { MalformedError, RESP_HEADER_LEN, SegmentStatus, decodeResponseHeader } from './wire.js'

/** SegmentRefusedError: the peer answered a status other than OK (not an offence). */
export class SegmentRefusedError extends Error {
  constructor (readonly status: number) {
    super(`peer answered status ${status}`)
    this.name = 'SegmentRefusedError'
  }
}

/**
 * OffenceError: the peer sent bytes no honest peer sends (a malformed
 * header, another size than the manifest's, a short file ended by a clean
 * FIN, bytes past the size, bytes failing the hash). The caller bans it.
 */
export class OffenceError extends Error {
  constructor (readonly cause: Error) {
    super(cause.message)
    this.name = 'OffenceError'
  }
}

/**
 * readSegment reads a response for file f and returns its bytes once they
 * match the manifest's size and SHA-256. It reads at most f.size bytes of
 * body, so a lying peer cannot make the page buffer more. Errors from the
 * source itself (resets, aborts) propagate unchanged: they are not offences.
 */
export async function readSegment (r: Reader, f: ManifestFile): Promise<Uint8Array> {
  let hdr: { status: number, size: number }
  try {
    hdr = decodeResponseHeader(await r.read(RESP_HEADER_LEN))
  } catch (e) {
    if (e instanceof MalformedError) throw new OffenceError(e)
    if (e instanceof Error && e.name === 'ShortReadError') throw new OffenceError(e)
    throw e
  }
  if (hdr.status !== SegmentStatus.OK) throw new SegmentRefusedError(hdr.status)
  if (hdr.size !== f.size) throw new OffenceError(new IntegrityError(`peer announced ${hdr.size} bytes for ${JSON.stringify(f.path)}, manifest says ${f.size}`))
  const parts: Uint8Array[] = []
  let got = 0
  while (got < f.size) {
    const b = await r.readSome(f.size - got)
    if (b.length === 0) throw new OffenceError(new IntegrityError(`file ended after ${got} of ${f.size} bytes`))
    parts.push(b.slice())
    got += b.length
  }
  if (!(await r.atEOF())) throw new OffenceError(new IntegrityError('bytes past the announced size'))
  const data = concat(parts)
  try {
    await checkFile(f, data)
  } catch (e) {
    if (e instanceof IntegrityError) throw new OffenceError(e)
    throw e
  }
  return data
}

/** IdleTimeoutError: no byte came for the idle timeout (not an offence). */
export class IdleTimeoutError extends Error {
  constructor (readonly ms: number) {
    super(`no byte for ${ms} ms`)
    this.name = 'IdleTimeoutError'
  }
}

/**
 * withIdleTimeout passes src through and calls onIdle when no chunk came
 * for ms (the stream's owner then aborts it, which ends src). A peer killed
 * without closing its connection is otherwise noticed only at QUIC's idle
 * timeout, like transport.Config.IdleTimeout on Go hosts.
 */
export async function * withIdleTimeout<T> (src: AsyncIterable<T>, ms: number, onIdle: () => void): AsyncGenerator<T> {
  let timer = setTimeout(onIdle, ms)
  try {
    for await (const c of src) {
      clearTimeout(timer)
      yield c
      timer = setTimeout(onIdle, ms)
    }
  } finally {
    clearTimeout(timer)
  }
}
