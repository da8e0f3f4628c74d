package main

import (
	"encoding/base64"
	"encoding/hex"
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

// MasterKeyEnv names the variable holding a raw 32-byte master key (hex or
// base64), for stores sealed by a key from a secrets manager or KMS instead
// of a passphrase.
const MasterKeyEnv = "SEALMESH_KEYSTORE_KEY"

// unlock returns what opens the key store: a raw master key from
// $SEALMESH_KEYSTORE_KEY if set, else the passphrase.
func unlock(passFile string) ([]byte, []keys.Option, error) {
	if v := strings.TrimSpace(os.Getenv(MasterKeyEnv)); v != "" {
		raw, err := hex.DecodeString(v)
		if err != nil {
			raw, err = base64.StdEncoding.DecodeString(v)
		}
		if err != nil || len(raw) != keys.MasterKeySize {
			return nil, nil, fmt.Errorf("%s must hold %d random bytes in hex or base64 (e.g. openssl rand -hex 32)", MasterKeyEnv, keys.MasterKeySize)
		}
		a, err := keys.MasterKeyAEAD(raw)
		if err != nil {
			return nil, nil, err
		}
		return nil, []keys.Option{keys.WithMasterAEAD(a)}, nil
	}
	pass, err := passphrase(passFile)
	return pass, nil, err
}

// openKeystore opens the store and turns its errors into advice.
func openKeystore(path, passFile string) (*keys.FileStore, error) {
	pass, opts, err := unlock(passFile)
	if err != nil {
		return nil, err
	}
	ks, err := keys.Open(path, pass, opts...)
	switch {
	case err == nil:
		return ks, nil
	case errors.Is(err, keys.ErrNotInitialized):
		return nil, fmt.Errorf("key store %s does not exist: create it with 'sealmesh keys init --keystore %s'", path, path)
	case errors.Is(err, keys.ErrWrongPassphrase):
		return nil, fmt.Errorf("key store %s: wrong passphrase or master key (check %s or %s): %v", path, keys.PassphraseEnv, MasterKeyEnv, err)
	case errors.Is(err, keys.ErrLocked):
		return nil, fmt.Errorf("key store %s is locked by another sealmesh process: stop it or wait, then retry", path)
	case errors.Is(err, keys.ErrCorrupt):
		return nil, fmt.Errorf("key store %s is not a sealmesh key store or is damaged: %v", path, err)
	default:
		return nil, fmt.Errorf("open key store %s: %w", path, err)
	}
}
