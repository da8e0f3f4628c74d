package keys

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"
	"golang.org/x/crypto/argon2"
)

// The key hierarchy, top to bottom:
//
//	passphrase --argon2id(salt, params)--> master key (AES-256-GCM, never stored)
//	   or a KMS key (WithMasterAEAD)
//	master AEAD --encrypts--> KEK: a Tink AEAD keyset (AES256-GCM keys, one primary)
//	KEK --seals--> content keys, signing keys (each with record-binding associated data)

// Default argon2id parameters: RFC 9106 §4's second recommended option
// (t=3 passes over 64 MiB), with 2 lanes instead of 4 so that small build
// machines are not oversubscribed. Deriving the key takes about a quarter of a
// second on one server core (measured: 0.23 s): negligible for a store opened
// once per process start, expensive for an attacker guessing passphrases
// against a stolen file, where each guess also needs 64 MiB of memory, which
// blunts cheap GPU/ASIC parallelism.
const (
	DefaultArgon2Time      uint32 = 3
	DefaultArgon2MemoryKiB uint32 = 64 * 1024
	DefaultArgon2Threads   uint8  = 2
)

// Upper bounds on argon2id parameters read from a file. The parameters sit in
// the file in clear, so a tampered file could otherwise ask Open to allocate
// terabytes or loop for hours before the passphrase check can fail.
const (
	maxArgon2Time      = 64
	maxArgon2MemoryKiB = 4 * 1024 * 1024 // 4 GiB
	minPassphraseLen   = 8
	saltSize           = 16
)

// Associated data for the encrypted keyset and the sealed records. The
// version tag lets a future format change refuse old records loudly; the
// record fields bind each ciphertext to its place in the store, so a record
// copied or swapped into another slot fails to decrypt.
const (
	keysetAD        = "sealmesh/keyset/v1"
	contentKeyADTag = "sealmesh/content-key/v1"
	signingKeyADTag = "sealmesh/signing-key/v1"
)

// kdfParams describes how the master key is obtained. It is stored in clear
// in the file (it is not secret) as JSON.
type kdfParams struct {
	// Kind is "argon2id" for a passphrase store, "external" for a store whose
	// keyset is encrypted by a caller-supplied AEAD (KMS).
	Kind      string `json:"kind"`
	Salt      []byte `json:"salt,omitempty"`
	Time      uint32 `json:"time,omitempty"`
	MemoryKiB uint32 `json:"memory_kib,omitempty"`
	Threads   uint8  `json:"threads,omitempty"`
}

const (
	kdfArgon2id = "argon2id"
	kdfExternal = "external"
)

func validateArgon2(time, memoryKiB uint32, threads uint8) error {
	switch {
	case time < 1 || time > maxArgon2Time:
		return fmt.Errorf("argon2id time %d out of range 1..%d", time, maxArgon2Time)
	case threads < 1:
		return fmt.Errorf("argon2id threads must be at least 1")
	case memoryKiB < 8*uint32(threads) || memoryKiB > maxArgon2MemoryKiB:
		return fmt.Errorf("argon2id memory %d KiB out of range %d..%d", memoryKiB, 8*uint32(threads), maxArgon2MemoryKiB)
	}
	return nil
}

// passphraseAEAD derives the master AEAD from a passphrase with argon2id.
func passphraseAEAD(passphrase []byte, p kdfParams) (tink.AEAD, error) {
	if err := validateArgon2(p.Time, p.MemoryKiB, p.Threads); err != nil {
		return nil, err
	}
	if len(p.Salt) != saltSize {
		return nil, fmt.Errorf("argon2id salt is %d bytes, want %d", len(p.Salt), saltSize)
	}
	key := argon2.IDKey(passphrase, p.Salt, p.Time, p.MemoryKiB, p.Threads, 32)
	defer clear(key)
	return newGCMAEAD(key)
}

// gcmAEAD is a minimal tink.AEAD over stdlib AES-256-GCM, used only as the
// passphrase-derived master AEAD. Ciphertext layout: nonce(12) || GCM output.
// A random 96-bit nonce is safe here: the master key encrypts one keyset per
// Init or RotateKEK, far below the 2^32 messages where random-nonce collisions
// become a concern.
type gcmAEAD struct{ aead cipher.AEAD }

func newGCMAEAD(key []byte) (*gcmAEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &gcmAEAD{aead: g}, nil
}

func (g *gcmAEAD) Encrypt(plaintext, associatedData []byte) ([]byte, error) {
	nonce := make([]byte, g.aead.NonceSize(), g.aead.NonceSize()+len(plaintext)+g.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return g.aead.Seal(nonce, nonce, plaintext, associatedData), nil
}

func (g *gcmAEAD) Decrypt(ciphertext, associatedData []byte) ([]byte, error) {
	n := g.aead.NonceSize()
	if len(ciphertext) < n+g.aead.Overhead() {
		return nil, errors.New("ciphertext too short")
	}
	return g.aead.Open(nil, ciphertext[:n], ciphertext[n:], associatedData)
}

// recordingAEAD remembers whether the master AEAD itself failed to decrypt.
// Tink flattens the error, and Open must tell a wrong passphrase (the master
// AEAD rejects the ciphertext) from a damaged keyset (it decrypts but does not
// parse).
type recordingAEAD struct {
	tink.AEAD
	decryptErr error
}

func (r *recordingAEAD) Decrypt(ciphertext, associatedData []byte) ([]byte, error) {
	pt, err := r.AEAD.Decrypt(ciphertext, associatedData)
	if err != nil {
		r.decryptErr = err
	}
	return pt, err
}

// newKEK generates a fresh KEK keyset with one AES256-GCM key and returns it
// with its AEAD primitive.
func newKEK() (*keyset.Handle, tink.AEAD, error) {
	h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		return nil, nil, fmt.Errorf("keys: generate KEK: %w", err)
	}
	prim, err := aead.New(h)
	if err != nil {
		return nil, nil, fmt.Errorf("keys: generate KEK: %w", err)
	}
	return h, prim, nil
}

// encryptKEK writes the keyset encrypted under the master AEAD.
func encryptKEK(h *keyset.Handle, master tink.AEAD) ([]byte, error) {
	var buf bytes.Buffer
	if err := h.WriteWithAssociatedData(keyset.NewBinaryWriter(&buf), master, []byte(keysetAD)); err != nil {
		return nil, fmt.Errorf("keys: encrypt KEK: %w", err)
	}
	return buf.Bytes(), nil
}

// decryptKEK reads an encrypted keyset and returns it with its AEAD
// primitive. Errors wrap ErrWrongPassphrase or ErrCorrupt.
func decryptKEK(enc []byte, master tink.AEAD) (*keyset.Handle, tink.AEAD, error) {
	rec := &recordingAEAD{AEAD: master}
	h, err := keyset.ReadWithAssociatedData(keyset.NewBinaryReader(bytes.NewReader(enc)), rec, []byte(keysetAD))
	if err != nil {
		if rec.decryptErr != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrWrongPassphrase, rec.decryptErr)
		}
		return nil, nil, fmt.Errorf("%w: read KEK keyset: %w", ErrCorrupt, err)
	}
	prim, err := aead.New(h)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: KEK keyset is not an AEAD keyset: %w", ErrCorrupt, err)
	}
	return h, prim, nil
}

// rotateKEK returns a copy of h with a new AES256-GCM key added and promoted
// to primary. Old keys stay enabled so existing records still decrypt; Tink's
// 5-byte key-ID prefix on every ciphertext tells it which key to use.
func rotateKEK(h *keyset.Handle) (*keyset.Handle, tink.AEAD, error) {
	m := keyset.NewManagerFromHandle(h)
	id, err := m.Add(aead.AES256GCMKeyTemplate())
	if err != nil {
		return nil, nil, fmt.Errorf("keys: rotate KEK: add key: %w", err)
	}
	if err := m.SetPrimary(id); err != nil {
		return nil, nil, fmt.Errorf("keys: rotate KEK: promote key: %w", err)
	}
	nh, err := m.Handle()
	if err != nil {
		return nil, nil, fmt.Errorf("keys: rotate KEK: %w", err)
	}
	prim, err := aead.New(nh)
	if err != nil {
		return nil, nil, fmt.Errorf("keys: rotate KEK: %w", err)
	}
	return nh, prim, nil
}

// contentKeyAD binds a sealed content key to its content ID, KID and period.
// The encoding is unambiguous even if the content ID contains '|': the KID
// has a fixed width and the period is digits only, so parsing from the right
// recovers every field.
func contentKeyAD(contentID string, kid KID, period int) []byte {
	return fmt.Appendf(nil, "%s|%s|%s|%d", contentKeyADTag, contentID, kid, period)
}

// signingKeyAD binds a sealed signing key seed to its name.
func signingKeyAD(name string) []byte {
	return []byte(signingKeyADTag + "|" + name)
}

// MasterKeySize is the length of a raw master key for MasterKeyAEAD.
const MasterKeySize = 32

// MasterKeyAEAD turns a 32-byte master key, delivered by a secrets manager
// or unwrapped by a KMS outside sealmesh, into the master AEAD that
// WithMasterAEAD takes: AES-256-GCM with random nonces. No key derivation
// runs, so the key must be uniformly random, never a passphrase.
func MasterKeyAEAD(key []byte) (tink.AEAD, error) {
	if len(key) != MasterKeySize {
		return nil, fmt.Errorf("master key is %d bytes, want %d random bytes", len(key), MasterKeySize)
	}
	return newGCMAEAD(key)
}
