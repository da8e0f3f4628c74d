package keys_test

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/sealmesh/sealmesh/keys"
)

func ExampleInit() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "sealmesh-keys")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "keys.db")
	pass := []byte("correct horse battery staple") // in production: keys.PassphraseFromEnv()

	// Small argon2id parameters keep the example fast; omit the option in production.
	st, err := keys.Init(path, pass, keys.WithArgon2Params(1, 64, 1))
	if err != nil {
		log.Fatal(err)
	}

	// The packager: one key per crypto period, registered in one transaction.
	var ks []keys.ContentKey
	for period := range 3 {
		k, err := keys.NewContentKey(period)
		if err != nil {
			log.Fatal(err)
		}
		ks = append(ks, k)
	}
	if err := st.PutContent(ctx, "movie-42", ks, false); err != nil {
		log.Fatal(err)
	}
	err = st.PutContent(ctx, "movie-42", ks, false)
	fmt.Println("second put exists:", errors.Is(err, keys.ErrExists))
	manifestKey, err := st.SigningKey(ctx, keys.SigningKeyManifest)
	if err != nil {
		log.Fatal(err)
	}
	if err := st.Close(); err != nil {
		log.Fatal(err)
	}

	// The license server: open with the same passphrase, look keys up by KID.
	_, err = keys.Open(path, []byte("not the passphrase"))
	fmt.Println("wrong passphrase:", errors.Is(err, keys.ErrWrongPassphrase))
	st, err = keys.Open(path, pass)
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	contentID, k, err := st.ContentKey(ctx, ks[1].KID())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("content:", contentID, "period:", k.Period(), "same key:", string(k.InsecureRawKey()) == string(ks[1].InsecureRawKey()))

	// Signing keys persist, and sign through a crypto.Signer.
	sk, err := st.SigningKey(ctx, keys.SigningKeyManifest)
	if err != nil {
		log.Fatal(err)
	}
	sig, err := sk.Signer().Sign(rand.Reader, []byte("manifest"), crypto.Hash(0))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("same signing key:", sk.ID() == manifestKey.ID(), "verifies:", ed25519.Verify(manifestKey.Public(), []byte("manifest"), sig))

	// Printing a key shows its KID only.
	fmt.Println(fmt.Sprint(k) == "ContentKey{kid="+k.KID().String()+" period=1}")
	// Output:
	// second put exists: true
	// wrong passphrase: true
	// content: movie-42 period: 1 same key: true
	// same signing key: true verifies: true
	// true
}

func ExampleParseKID() {
	kid, err := keys.ParseKID("10000000-1000-4000-8000-000000000001")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(kid)
	fmt.Println(kid.UUID())
	_, err = keys.ParseKID("not-a-kid")
	fmt.Println(err)
	// Output:
	// 10000000100040008000000000000001
	// 10000000-1000-4000-8000-000000000001
	// keys: parse KID "not-a-kid": want 32 hex digits or 8-4-4-4-12 UUID form, got 9 characters
}
