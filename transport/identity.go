package transport

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// LoadIdentity reads the Ed25519 libp2p private key at path, creating it
// (mode 0600, atomically) when the file does not exist. The file holds the
// key in libp2p's protobuf encoding (crypto.MarshalPrivateKey).
//
// A peer's ID is its public key, and swarm tickets name it: a set-top box
// keeps one identity across restarts so that its ticket and the tracker's
// view of it stay valid. The file is refused if group or others may read it,
// as ssh does, because anyone who reads it can impersonate the peer.
func LoadIdentity(path string) (crypto.PrivKey, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := createIdentity(path); err != nil {
			return nil, err
		}
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("read identity: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("identity %s is readable by others (mode %v): run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	sk, err := crypto.UnmarshalPrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("identity %s: %w", path, err)
	}
	if sk.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("identity %s: key type %v, want Ed25519", path, sk.Type())
	}
	return sk, nil
}

// createIdentity writes a new key to a temporary file and links it into
// place, so a crash leaves either no identity or a whole one, and two
// processes racing to create it end up with the same key (the loser's link
// fails with ErrExist and it reads the winner's).
func createIdentity(path string) error {
	sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate identity: %w", err)
	}
	data, err := crypto.MarshalPrivateKey(sk)
	if err != nil {
		return fmt.Errorf("encode identity: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create identity folder: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".identity-*")
	if err != nil {
		return fmt.Errorf("create identity: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("create identity: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write identity: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write identity: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write identity: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("install identity: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
