package token

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	jose "github.com/go-jose/go-jose/v4"
)

// DevIssuerName is the "iss" of development tokens (LoadOrCreateDevIssuer).
const DevIssuerName = "sealmesh-dev"

// LoadOrCreateDevIssuer returns an Ed25519 Issuer whose private key lives in
// the file at path, as a JWK (JSON, with the private part). If the file does
// not exist a key is generated and written with mode 0600, atomically (a
// temporary file in the same directory, then a rename), creating the directory
// (0700) if needed. A file readable by group or others is refused.
//
// Development tokens are for local testing: trust them in a Verifier with
// ExtraKeys: []jose.JSONWebKey{dev.PublicJWK()}, never in production.
func LoadOrCreateDevIssuer(path string) (*Issuer, error) {
	iss, err := loadDevIssuer(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return iss, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("token: generate dev key: %w", err)
	}
	kid, err := KeyID(priv.Public())
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	data, err := json.MarshalIndent(jose.JSONWebKey{Key: priv, KeyID: kid, Algorithm: string(jose.EdDSA), Use: "sig"}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("token: marshal dev key: %w", err)
	}
	created, err := writeNewFile(path, append(data, '\n'))
	if err != nil {
		return nil, fmt.Errorf("token: write dev key %s: %w", path, err)
	}
	if !created {
		// Another process created it first: use theirs, so both agree.
		return loadDevIssuer(path)
	}
	return devIssuer(NewIssuer(priv, kid))
}

func devIssuer(i *Issuer, err error) (*Issuer, error) {
	if err != nil {
		return nil, err
	}
	i.iss = DevIssuerName
	return i, nil
}

func loadDevIssuer(path string) (*Issuer, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	// A signing key others can read is a key others can mint tokens with.
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("token: dev key %s has mode %04o; run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("token: read dev key: %w", err)
	}
	var jwk jose.JSONWebKey
	if err := json.Unmarshal(data, &jwk); err != nil {
		// The parse error is not echoed: it could quote private key bytes.
		return nil, fmt.Errorf("token: dev key %s is not a JWK; delete it to generate a new one", path)
	}
	priv, ok := jwk.Key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("token: dev key %s holds %T, want an Ed25519 private key", path, jwk.Key)
	}
	return devIssuer(NewIssuer(priv, jwk.KeyID))
}

// writeNewFile writes data to path with mode 0600 unless path already exists.
// It reports whether it created the file.
func writeNewFile(path string, data []byte) (created bool, err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*") // mode 0600
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return false, err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	// Link refuses to replace an existing file, so two processes starting at
	// once cannot each keep a different key; where hard links are not
	// supported, fall back to rename (atomic, last writer wins).
	if err := os.Link(tmp.Name(), path); err == nil {
		return true, nil
	} else if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return false, err
	}
	return true, nil
}
