package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/sealmesh/sealmesh/keys"
)

// DefaultKeystore is the key store path used when neither --keystore nor
// SEALMESH_KEYSTORE is given.
const DefaultKeystore = "sealmesh.keystore"

func keystorePath(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if v := os.Getenv("SEALMESH_KEYSTORE"); v != "" {
		return v
	}
	return DefaultKeystore
}

// passphrase reads the key store passphrase from a file (trailing newline
// dropped) or from SEALMESH_KEYSTORE_PASSPHRASE.
func passphrase(file string) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read passphrase file: %w", err)
		}
		p := strings.TrimRight(string(b), "\r\n")
		if p == "" {
			return nil, fmt.Errorf("passphrase file %s is empty", file)
		}
		return []byte(p), nil
	}
	p, err := keys.PassphraseFromEnv()
	if err != nil {
		return nil, fmt.Errorf("no key store passphrase: set %s or pass --passphrase-file", keys.PassphraseEnv)
	}
	return p, nil
}

// openKeystore opens the store and turns its errors into advice.
func openKeystore(path, passFile string) (*keys.FileStore, error) {
	pass, err := passphrase(passFile)
	if err != nil {
		return nil, err
	}
	ks, err := keys.Open(path, pass)
	switch {
	case err == nil:
		return ks, nil
	case errors.Is(err, keys.ErrNotInitialized):
		return nil, fmt.Errorf("key store %s does not exist: create it with 'sealmesh keys init --keystore %s'", path, path)
	case errors.Is(err, keys.ErrWrongPassphrase):
		return nil, fmt.Errorf("key store %s: wrong passphrase (check %s)", path, keys.PassphraseEnv)
	case errors.Is(err, keys.ErrLocked):
		return nil, fmt.Errorf("key store %s is locked by another sealmesh process: stop it or wait, then retry", path)
	case errors.Is(err, keys.ErrCorrupt):
		return nil, fmt.Errorf("key store %s is not a sealmesh key store or is damaged: %v", path, err)
	default:
		return nil, fmt.Errorf("open key store %s: %w", path, err)
	}
}
