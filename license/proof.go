package license

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/http"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Proofs of possession.
//
// A ticket is worth something only to the peer whose libp2p key it names,
// so the server hands one out only to a caller that proves it holds that
// key: /v1/ticket and /v1/announce requests carry a signature by the peer's
// libp2p identity key over
//
//	context || field_1 || field_2 || ...      (each field: 4-byte big-endian length || bytes)
//
// The ticket request signs ("sealmesh ticket request v1\x00") the peer ID,
// the content, SHA-256 of the bearer token sent with it and a timestamp; the
// announce signs ("sealmesh announce v1\x00") SHA-256 of the encoded ticket,
// the timestamp and each listen address. The length prefixes make the
// encoding injective, so no field can be shifted into another; the context
// strings keep the two kinds (and every other signature a libp2p key makes,
// such as its TLS or Noise handshake, which use their own prefixes) apart.
//
// Why a timestamp rather than a server nonce: announces come every 30 s
// from every peer, and a nonce round trip per announce would double the
// tracker's load. The timestamp must be within ProofSkew of the server's
// clock, and later than the last proof the server accepted from the same
// peer (for that content): a recorded request replayed later is refused. What
// a replay could do at most (after a server restart empties that memory,
// within ProofSkew) is re-issue a ticket to the peer that signed it, or
// re-announce the addresses it signed: both only help that peer.
//
// Binding the token hash means a proof cannot be moved to another account's
// request; binding the ticket hash means an announce proof cannot be moved to
// another ticket.

// ProofSkew is how far a proof's timestamp may be from the server's clock.
const ProofSkew = 2 * time.Minute

const (
	ticketProofContext   = "sealmesh ticket request v1\x00"
	announceProofContext = "sealmesh announce v1\x00"
	maxPublicKeyLen      = 1024 // a marshalled libp2p public key (RSA-4096 is about 550 bytes)
	maxProofSigLen       = 1024
)

// PeerKey is a libp2p identity key: libp2p's crypto.PrivKey satisfies it.
// The Client signs proofs of possession with it; it never leaves the process.
type PeerKey interface {
	Sign(msg []byte) ([]byte, error)
	GetPublic() crypto.PubKey
}

var _ PeerKey = crypto.PrivKey(nil)

func proofMessage(context string, fields ...[]byte) []byte {
	n := len(context)
	for _, f := range fields {
		n += 4 + len(f)
	}
	b := make([]byte, 0, n)
	b = append(b, context...)
	for _, f := range fields {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

func unixMillis(ms int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(ms)) }

func sha(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

func ticketProofMessage(peerID, content, token string, ms int64) []byte {
	return proofMessage(ticketProofContext, []byte(peerID), []byte(content), sha([]byte(token)), unixMillis(ms))
}

func announceProofMessage(encodedTicket string, ms int64, addrs []string) []byte {
	f := [][]byte{sha([]byte(encodedTicket)), unixMillis(ms)}
	for _, a := range addrs {
		f = append(f, []byte(a))
	}
	return proofMessage(announceProofContext, f...)
}

// proof is the possession part of a request, as sent.
type proof struct {
	PublicKey string `json:"public_key,omitempty"` // base64url libp2p public key; only for peer IDs that do not embed theirs (RSA)
	Time      int64  `json:"time"`                 // Unix milliseconds
	Signature string `json:"signature"`            // base64url, by the peer's libp2p key
}

// signProof signs msg with key and fills p. The public key is sent only
// when the peer ID does not embed it.
func signProof(key PeerKey, msg []byte, ms int64) (proof, error) {
	sig, err := key.Sign(msg)
	if err != nil {
		return proof{}, fmt.Errorf("license: sign proof of possession: %w", err)
	}
	p := proof{Time: ms, Signature: b64.EncodeToString(sig)}
	id, err := peer.IDFromPublicKey(key.GetPublic())
	if err != nil {
		return proof{}, fmt.Errorf("license: peer ID of the key: %w", err)
	}
	if _, err := id.ExtractPublicKey(); err != nil {
		raw, err := crypto.MarshalPublicKey(key.GetPublic())
		if err != nil {
			return proof{}, fmt.Errorf("license: marshal public key: %w", err)
		}
		p.PublicKey = b64.EncodeToString(raw)
	}
	return p, nil
}

// NewTicketRequest builds a /v1/ticket request for the peer of key and
// content, signed with key at now over the token that will be sent with it
// (as "Authorization: Bearer <token>"). Client.Ticket uses it; other
// clients may too.
func NewTicketRequest(key PeerKey, content, token string, now time.Time) (TicketRequest, error) {
	peerID, err := PeerIDOf(key)
	if err != nil {
		return TicketRequest{}, err
	}
	ms := now.UnixMilli()
	p, err := signProof(key, ticketProofMessage(peerID, content, token, ms), ms)
	if err != nil {
		return TicketRequest{}, err
	}
	return TicketRequest{PeerID: peerID, Content: content, PublicKey: p.PublicKey, Time: p.Time, Signature: p.Signature}, nil
}

// NewAnnounceRequest builds a /v1/announce request for encodedTicket,
// signed with key (the ticket's peer's) at now over the ticket and addrs.
func NewAnnounceRequest(key PeerKey, encodedTicket string, addrs []string, want int, now time.Time) (AnnounceRequest, error) {
	ms := now.UnixMilli()
	p, err := signProof(key, announceProofMessage(encodedTicket, ms, addrs), ms)
	if err != nil {
		return AnnounceRequest{}, err
	}
	return AnnounceRequest{Ticket: encodedTicket, Addrs: addrs, Want: want, PublicKey: p.PublicKey, Time: p.Time, Signature: p.Signature}, nil
}

// PeerIDOf returns the libp2p peer ID of key, as /v1/ticket wants it.
func PeerIDOf(key PeerKey) (string, error) {
	id, err := peer.IDFromPublicKey(key.GetPublic())
	if err != nil {
		return "", fmt.Errorf("license: peer ID of the key: %w", err)
	}
	return id.String(), nil
}

func badProof(msg string) *apiError {
	return fail(http.StatusUnauthorized, CodeInvalidProof, msg)
}

// verify checks p over msg for peerID: the key is the one the peer ID
// embeds (Ed25519, secp256k1) or the one sent, which must hash to the peer
// ID; the signature must verify; the time must be within ProofSkew of now.
// It returns the proof's time.
func (p *proof) verify(peerID string, msg []byte, now time.Time) (time.Time, error) {
	id, err := peer.Decode(peerID)
	if err != nil {
		return time.Time{}, fail(http.StatusBadRequest, CodeInvalidPeerID, "peer_id is not a libp2p peer ID")
	}
	pub, err := id.ExtractPublicKey()
	if err != nil {
		if p.PublicKey == "" || len(p.PublicKey) > maxPublicKeyLen*2 {
			return time.Time{}, badProof("this peer ID does not embed its public key: send public_key (the libp2p-marshalled key, base64url)")
		}
		raw, err := b64.DecodeString(p.PublicKey)
		if err != nil {
			return time.Time{}, badProof("public_key is not base64url")
		}
		if pub, err = crypto.UnmarshalPublicKey(raw); err != nil {
			return time.Time{}, badProof("public_key is not a libp2p public key")
		}
		if !id.MatchesPublicKey(pub) {
			return time.Time{}, badProof("public_key is not the key of peer_id")
		}
	}
	sig, err := b64.DecodeString(p.Signature)
	if err != nil || len(sig) == 0 || len(sig) > maxProofSigLen {
		return time.Time{}, badProof("signature is missing or not base64url: sign the request with the peer's libp2p key")
	}
	if ok, err := pub.Verify(msg, sig); err != nil || !ok {
		return time.Time{}, badProof("the signature does not verify under peer_id's key (sign with the libp2p identity key of that peer, over the fields the API documents)")
	}
	t := time.UnixMilli(p.Time)
	if d := t.Sub(now); d > ProofSkew || d < -ProofSkew {
		return time.Time{}, fail(http.StatusBadRequest, CodeProofTime,
			fmt.Sprintf("the proof's time is %s from the server's clock (%s), more than %s: fix this machine's clock", d.Round(time.Second), now.UTC().Format(time.RFC3339), ProofSkew))
	}
	return t, nil
}
