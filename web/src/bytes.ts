// Byte helpers shared by the codecs. Everything here is synchronous and
// allocation-bounded: callers check lengths before they allocate.

export const utf8 = new TextEncoder()
/** Strict UTF-8 decoder: invalid bytes throw instead of becoming U+FFFD. */
export const utf8Strict = new TextDecoder('utf-8', { fatal: true })

export function concat (parts: Uint8Array[]): Uint8Array {
  let n = 0
  for (const p of parts) n += p.length
  const out = new Uint8Array(n)
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return out
}

export function hex (b: Uint8Array): string {
  let s = ''
  for (const x of b) s += x.toString(16).padStart(2, '0')
  return s
}

export function fromHex (s: string): Uint8Array {
  if (s.length % 2 !== 0 || !/^[0-9a-f]*$/.test(s)) throw new Error('not lowercase hex')
  const out = new Uint8Array(s.length / 2)
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16)
  return out
}

/** Constant-time comparison of two byte strings of public length. */
export function equalBytes (a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  let d = 0
  for (let i = 0; i < a.length; i++) d |= (a[i] ?? 0) ^ (b[i] ?? 0)
  return d === 0
}

export async function sha256 (data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', data as Uint8Array<ArrayBuffer>))
}

/**
 * Reader reads exact byte counts from a chunked source (a libp2p stream, or
 * a buffer in tests). It never buffers more than one chunk beyond what was
 * asked for.
 */
export class Reader {
  private buf: Uint8Array = new Uint8Array(0)
  private readonly it: AsyncIterator<Uint8Array | { subarray: () => Uint8Array }>
  private done = false

  constructor (source: AsyncIterable<Uint8Array | { subarray: () => Uint8Array }>) {
    this.it = source[Symbol.asyncIterator]()
  }

  private async fill (): Promise<boolean> {
    if (this.done) return false
    const r = await this.it.next()
    if (r.done === true) {
      this.done = true
      return false
    }
    const chunk = r.value instanceof Uint8Array ? r.value : r.value.subarray()
    this.buf = this.buf.length === 0 ? chunk : concat([this.buf, chunk])
    return true
  }

  /** Reads exactly n bytes; throws ShortReadError at EOF before n. */
  async read (n: number): Promise<Uint8Array> {
    while (this.buf.length < n) {
      if (!(await this.fill())) throw new ShortReadError(n, this.buf.length)
    }
    const out = this.buf.subarray(0, n)
    this.buf = this.buf.subarray(n)
    return out
  }

  /** Reads up to max bytes, whatever is buffered or the next chunk; empty at EOF. */
  async readSome (max: number): Promise<Uint8Array> {
    if (this.buf.length === 0 && !(await this.fill())) return new Uint8Array(0)
    const out = this.buf.subarray(0, Math.min(max, this.buf.length))
    this.buf = this.buf.subarray(out.length)
    return out
  }

  /** Reports whether the source ended with nothing left unread. */
  async atEOF (): Promise<boolean> {
    if (this.buf.length > 0) return false
    return !(await this.fill()) && this.buf.length === 0
  }
}

export class ShortReadError extends Error {
  constructor (want: number, got: number) {
    super(`stream ended after ${got} of ${want} bytes`)
    this.name = 'ShortReadError'
  }
}

/** An async iterable over fixed chunks, for tests and in-memory sources. */
export async function * chunks (...parts: Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield p
}
