// PeerBans: peers that sent bad bytes (wrong size, wrong hash, malformed
// frames) are refused for the session or for a set time, like
// transport.Config.BanFor on Go hosts. Resets, timeouts and "busy" are not
// offences and never reach this set.

export interface Ban { peer: string, reason: string, since: number, until: number }

export class PeerBans {
  private readonly bans = new Map<string, Ban>()
  /**
   * @param banForMs how long a ban lasts; 0 (the default) for the session.
   * @param now the clock, for tests.
   * @param onBan called once per new ban, e.g. to hang up the peer's connections.
   */
  constructor (
    private readonly banForMs = 0,
    private readonly now: () => number = Date.now,
    private readonly onBan?: (ban: Ban) => void
  ) {
    if (!(banForMs >= 0)) throw new RangeError('banForMs must not be negative')
  }

  /** Bans peer (a peer ID string) for reason; a ban already in force is kept, not extended twice. */
  ban (peer: string, reason: string): void {
    if (this.isBanned(peer)) return
    const since = this.now()
    const b: Ban = { peer, reason, since, until: this.banForMs === 0 ? Infinity : since + this.banForMs }
    this.bans.set(peer, b)
    this.onBan?.(b)
  }

  isBanned (peer: string): boolean {
    const b = this.bans.get(peer)
    if (b === undefined) return false
    if (this.now() >= b.until) {
      this.bans.delete(peer)
      return false
    }
    return true
  }

  /** The bans in force. */
  list (): Ban[] {
    return [...this.bans.keys()].filter(p => this.isBanned(p)).map(p => this.bans.get(p) as Ban)
  }

  /** Number of bans in force. */
  get size (): number { return this.list().length }
}
