// HaveMap: which admitted peer holds which file, from their have streams
// (/sealmesh/have/1.0.0). A Go host opens one to us only after it admitted
// our ticket. Bit i stands for VerifiedManifest.files[i] (init and media
// files in rendition order). A peer whose hello names another content or
// manifest digest packaged the content differently and is ignored; one that
// sends a malformed frame loses its entry and its stream (Go evicts it);
// neither is banned: a have-map only steers requests, every byte fetched is
// still checked against the manifest.

import { Reader } from './bytes.js'
import { haveDigest, type VerifiedManifest } from './manifest.js'
import { Bitfield, MalformedError, readHaveFrame, readHello } from './wire.js'
import { equalBytes } from './bytes.js'

export class HaveMap {
  private readonly peers = new Map<string, Bitfield>()
  private readonly index = new Map<string, number>()
  private digest?: Uint8Array

  /** @param onChange called after a peer's map changed (hello, have, bitfield). */
  constructor (private readonly m: VerifiedManifest, private readonly onChange?: (peer: string) => void) {
    m.files.forEach((f, i) => this.index.set(f.path, i))
  }

  /** Reports whether peer announced path. */
  has (peer: string, path: string): boolean {
    const i = this.index.get(path)
    return i !== undefined && this.peers.get(peer)?.has(i) === true
  }

  /** Peers that announced path. */
  candidates (path: string): string[] {
    return [...this.peers.keys()].filter(p => this.has(p, path))
  }

  /** Forgets peer (disconnected, banned). */
  drop (peer: string): void { this.peers.delete(peer) }

  /**
   * consume reads one peer's have stream until it ends. It resolves when the
   * stream ends or is ignored, and throws MalformedError (after forgetting the
   * peer) when the peer broke the format.
   */
  async consume (peer: string, source: AsyncIterable<Uint8Array | { subarray: () => Uint8Array }>): Promise<void> {
    this.digest ??= await haveDigest(this.m)
    const r = new Reader(source)
    const n = this.m.files.length
    try {
      const h = await readHello(r)
      if (h.content !== this.m.body.content_id || !equalBytes(h.digest, this.digest) || h.bits.nbits !== n) return
      this.peers.set(peer, h.bits)
      this.onChange?.(peer)
      while (!(await r.atEOF())) {
        const f = await readHaveFrame(r, n)
        const bits = this.peers.get(peer)
        if (bits === undefined) return // dropped meanwhile
        if (f.kind === 'have') bits.set(f.index)
        else this.peers.set(peer, f.bits)
        this.onChange?.(peer)
      }
    } catch (e) {
      if (e instanceof MalformedError || (e instanceof Error && e.name === 'ShortReadError')) {
        this.peers.delete(peer)
        if (e instanceof MalformedError) throw e
        return
      }
      throw e
    }
  }
}
