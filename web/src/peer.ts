// A browser libp2p node and the client side of the ticket and segment
// protocols. The page dials Go hosts over WebTransport (their
// /quic-v1/webtransport/certhash/... addresses); Noise inside the session
// authenticates both peer IDs, so the Go host checks our ticket against the
// ID this node's key proves, exactly as for a Go peer.

import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { webTransport } from '@libp2p/webtransport'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p, type Libp2p } from 'libp2p'
import type { PeerId, PrivateKey, Stream } from '@libp2p/interface'

import { PeerBans } from './bans.js'
import { Reader } from './bytes.js'
import type { HaveMap } from './have.js'
import type { VerifiedManifest } from './manifest.js'
import { IdleTimeoutError, OffenceError, readSegment, withIdleTimeout } from './segment.js'
import {
  HAVE_PROTOCOL, SEGMENT_PROTOCOL, TICKET_PROTOCOL, TicketStatus, encodeSegmentRequest, encodeTicketMsg, readTicketMsg, readTicketReply, swarmTag
} from './wire.js'

export interface NodeOptions {
  /** The page's libp2p key; the ticket must name its peer ID. Default: a new key. */
  privateKey?: PrivateKey
}

/** createNode starts a dial-only libp2p node with WebTransport, Noise and yamux. */
export async function createNode (opts: NodeOptions = {}): Promise<Libp2p> {
  return await createLibp2p({
    ...(opts.privateKey !== undefined ? { privateKey: opts.privateKey } : {}),
    transports: [webTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionGater: { denyDialMultiaddr: () => false }
  })
}

/** dial connects to a multiaddr string (with /p2p/ID) and returns the remote peer ID. */
export async function dial (node: Libp2p, addr: string, signal?: AbortSignal): Promise<PeerId> {
  const conn = await node.dial(multiaddr(addr), { signal })
  return conn.remotePeer
}

export class TicketRefusedError extends Error {
  constructor (readonly status: number) {
    super(status === TicketStatus.UnknownContent ? 'peer has not joined the content' : 'peer refused the ticket')
    this.name = 'TicketRefusedError'
  }
}

async function writeAll (s: Stream, data: Uint8Array, signal?: AbortSignal): Promise<void> {
  if (!s.send(data)) await s.onDrain({ signal })
  await s.close({ signal })
}

/** presentTicket presents ticket for content to peer; it resolves once admitted. */
export async function presentTicket (node: Libp2p, peer: PeerId, content: string, ticket: Uint8Array, signal?: AbortSignal): Promise<void> {
  const msg = encodeTicketMsg(await swarmTag(content), ticket)
  const s = await node.dialProtocol(peer, TICKET_PROTOCOL, { signal })
  try {
    await writeAll(s, msg, signal)
    const st = await readTicketReply(new Reader(s))
    if (st !== TicketStatus.Admitted) throw new TicketRefusedError(st)
  } finally {
    s.abort(new Error('done'))
  }
}

export class PeerBannedError extends Error {
  constructor (readonly peer: string, readonly cause: Error) {
    super(`peer ${peer} banned: ${cause.message}`)
    this.name = 'PeerBannedError'
  }
}

/**
 * fetchSegment gets one init or media file from peer and checks it against
 * the verified manifest before returning it (see readSegment). A peer that
 * commits an offence is banned and the call throws PeerBannedError; a status
 * other than OK throws SegmentRefusedError; resets and aborts throw as they
 * are, without a ban, and so does IdleTimeoutError when no byte came for
 * opts.idleMs (default 5 s, as on Go hosts).
 */
export async function fetchSegment (
  node: Libp2p, bans: PeerBans, peer: PeerId, m: VerifiedManifest, path: string,
  opts: { urgent?: boolean, signal?: AbortSignal, idleMs?: number } = {}
): Promise<Uint8Array> {
  const idleMs = opts.idleMs ?? 5000
  const id = peer.toString()
  if (bans.isBanned(id)) throw new PeerBannedError(id, new Error('banned earlier'))
  const f = m.lookup(path)
  if (f === undefined || f.kind === 'playlist') throw new Error(`${JSON.stringify(path)} is not an init or media file of the manifest`)
  const req = encodeSegmentRequest(m.body.content_id, path, opts.urgent === true)
  const s = await node.dialProtocol(peer, SEGMENT_PROTOCOL, { signal: opts.signal })
  try {
    await writeAll(s, req, opts.signal)
    return await readSegment(new Reader(withIdleTimeout(s, idleMs, () => { s.abort(new IdleTimeoutError(idleMs)) })), f)
  } catch (e) {
    if (e instanceof OffenceError) {
      bans.ban(id, e.message)
      throw new PeerBannedError(id, e.cause)
    }
    throw e
  } finally {
    if (s.status === 'open') s.abort(new Error('done'))
  }
}

/**
 * listenHave feeds peers' have streams into have. Go hosts open one only
 * to peers they admitted, so call it before presenting tickets.
 */
export async function listenHave (node: Libp2p, have: HaveMap): Promise<void> {
  await node.handle(HAVE_PROTOCOL, (stream, conn) => {
    have.consume(conn.remotePeer.toString(), stream)
      .catch((e: Error) => { stream.abort(e) })
  })
}

/**
 * TicketVerifier decides whether the ticket a peer presents to this page
 * admits that peer to content. It must check the license server's signature
 * and that the ticket names `peer` (the ID Noise authenticated); the package
 * does not ship one yet (verifying license tickets in the browser is part of
 * the work still open), so the page supplies it.
 */
export type TicketVerifier = (ticket: Uint8Array, peer: string, content: string) => Promise<boolean>

/**
 * listenTickets answers the tickets Go hosts present to this page. A Go host
 * (since the hardening of the ticket exchange) presents its own ticket only
 * after admitting us, and opens its have stream only once we have accepted
 * that ticket, so a page that wants have-maps must call this before
 * presenting its own tickets. A message for another swarm is answered
 * "unknown content"; a ticket the verifier refuses, "rejected".
 */
export async function listenTickets (node: Libp2p, content: string, verify: TicketVerifier): Promise<void> {
  const tag = await swarmTag(content)
  await node.handle(TICKET_PROTOCOL, (stream, conn) => {
    void (async () => {
      const msg = await readTicketMsg(new Reader(stream))
      let status: number = TicketStatus.Rejected
      if (msg.tag.length !== tag.length || msg.tag.some((b, i) => b !== tag[i])) {
        status = TicketStatus.UnknownContent
      } else if (await verify(msg.ticket, conn.remotePeer.toString(), content)) {
        status = TicketStatus.Admitted
      }
      await writeAll(stream, new Uint8Array([status]))
    })().catch((e: Error) => { stream.abort(e) })
  })
}
