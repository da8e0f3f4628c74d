// @sealmesh/web: a browser peer of the sealmesh swarm (in progress).
export * from './wire.js'
export * from './manifest.js'
export * from './bans.js'
export { Reader } from './bytes.js'
export * from './segment.js'
export * from './have.js'
export { listenHave, listenTickets, type TicketVerifier, createNode, dial, presentTicket, fetchSegment, TicketRefusedError, PeerBannedError } from './peer.js'
