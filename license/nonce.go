package license

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"hash"
	"net/http"
	"time"
)

// Replay protection: single-use server nonces.
//
// A license request must carry a nonce that this server issued (POST
// /v1/nonce) less than NonceTTL ago and that no earlier license or renewal
// used. The license echoes it, and the client checks the echo, so a license
// captured on the wire cannot be replayed to another request of the player,
// and a recorded request cannot be sent again to mint a second license or a
// second session.
//
// Why a server nonce rather than a request signed by the player's key with
// a jti and a time? A signed request needs the player to hold a long-term
// key the server knows (the ephemeral HPKE key proves nothing: anyone can
// make one), it needs the player's clock to be right, and the server's replay
// cache must keep every jti for the whole validity window, however many a
// client invents. A server nonce needs no client key and no client clock, and
// the server alone decides how long it lives.
//
// The nonce is not stored when it is issued: it is 32 bytes of
//
//	expiry (8, big-endian Unix seconds) || random (8) || HMAC-SHA256(nonce key, first 16)[:16]
//
// so POST /v1/nonce, which needs no token, writes nothing and cannot be used
// to fill the server's memory or disk. Only used nonces are stored, in memory
// and in the state file (in the same transaction as the session they start),
// until their expiry; after that the expiry inside the MAC refuses them. The
// nonce key is derived from a secret in the state file, so nonces and their
// single use both survive a restart.
const nonceSize = 32

var b64 = base64.RawURLEncoding

// NonceResponse is the body of POST /v1/nonce.
type NonceResponse struct {
	Nonce   string    `json:"nonce"`   // base64url, no padding
	Expires time.Time `json:"expires"` // RFC 3339
}

func (s *State) newNonce(now time.Time, ttl time.Duration) (NonceResponse, error) {
	var n [nonceSize]byte
	exp := now.Add(ttl).Truncate(time.Second)
	if exp.Before(now.Add(ttl)) {
		exp = exp.Add(time.Second)
	}
	binary.BigEndian.PutUint64(n[:8], uint64(exp.Unix()))
	if _, err := rand.Read(n[8:16]); err != nil {
		return NonceResponse{}, err
	}
	copy(n[16:], s.nonceMAC(n[:16]))
	return NonceResponse{Nonce: b64.EncodeToString(n[:]), Expires: exp.UTC()}, nil
}

func (s *State) nonceMAC(b []byte) []byte {
	// Keyed HMAC states are reused: hmac.New costs more than the MAC of 16 bytes.
	m, _ := s.nonceMACs.Get().(hash.Hash)
	if m == nil {
		m = hmac.New(sha256.New, s.nonceKey)
	}
	m.Reset()
	m.Write(b)
	sum := m.Sum(make([]byte, 0, sha256.Size))[:16]
	s.nonceMACs.Put(m)
	return sum
}

// checkNonce decodes a nonce and checks its MAC and expiry (not its single
// use: that is checked atomically with the session start).
func (s *State) checkNonce(enc string, now time.Time) ([nonceSize]byte, time.Time, error) {
	var n [nonceSize]byte
	raw, err := b64.DecodeString(enc)
	if err != nil || len(raw) != nonceSize {
		return n, time.Time{}, fail(http.StatusBadRequest, CodeInvalidNonce, "nonce is not a nonce from /v1/nonce")
	}
	copy(n[:], raw)
	if !hmac.Equal(n[16:], s.nonceMAC(n[:16])) {
		return n, time.Time{}, fail(http.StatusBadRequest, CodeInvalidNonce, "nonce was not issued by this server")
	}
	exp := time.Unix(int64(binary.BigEndian.Uint64(n[:8])), 0)
	if !exp.After(now) {
		return n, time.Time{}, fail(http.StatusBadRequest, CodeNonceExpired, "nonce expired: get a fresh one from /v1/nonce just before asking")
	}
	return n, exp, nil
}
