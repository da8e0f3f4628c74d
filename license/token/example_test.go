package token_test

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/sealmesh/sealmesh/license/token"
)

func Example() {
	// The operator's backend holds the signing key. (A fixed seed keeps the
	// example reproducible; real keys come from crypto/rand or a KMS.)
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	issuer, err := token.NewIssuer(key, "2026-01")
	if err != nil {
		panic(err)
	}
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	raw, err := issuer.Issue(token.Claims{
		Account:  "account-42",
		Content:  []string{"movie-7", "series-1/*"},
		Audience: []string{"license.example.com"},
		IssuedAt: now,
		Expiry:   now.Add(10 * time.Minute),
	})
	if err != nil {
		panic(err)
	}

	// The license server trusts the public key, normally through
	// KeySetFile (a JWK Set such as issuer.PublicJWKS() writes).
	v, err := token.NewVerifier(token.VerifierConfig{
		Audience:  "license.example.com",
		Now:       func() time.Time { return now.Add(time.Minute) },
		ExtraKeys: []jose.JSONWebKey{issuer.PublicJWK()},
	})
	if err != nil {
		panic(err)
	}
	defer v.Close()

	claims, err := v.Verify(raw)
	if err != nil {
		panic(err)
	}
	fmt.Println("account:", claims.Account)
	for _, id := range []string{"movie-7", "series-1/ep3", "movie-8"} {
		fmt.Printf("%s: %v\n", id, claims.Entitles(id))
	}

	// An hour later the same token has expired.
	late, err := token.NewVerifier(token.VerifierConfig{
		Audience:  "license.example.com",
		Now:       func() time.Time { return now.Add(time.Hour) },
		ExtraKeys: []jose.JSONWebKey{issuer.PublicJWK()},
	})
	if err != nil {
		panic(err)
	}
	defer late.Close()
	_, err = late.Verify(raw)
	fmt.Println("expired:", errors.Is(err, token.ErrExpired))

	// Output:
	// account: account-42
	// movie-7: true
	// series-1/ep3: true
	// movie-8: false
	// expired: true
}
