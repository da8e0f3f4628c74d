package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/cryptosigner"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Issuer mints signed tokens. Production tokens come from the operator's own
// backend with any JOSE library; Issuer serves development, tests and Go
// backends. It is safe for concurrent use. Its String and LogValue show the
// key ID only.
type Issuer struct {
	signer jose.Signer
	alg    jose.SignatureAlgorithm
	kid    string
	pub    crypto.PublicKey
	now    func() time.Time
	iss    string // "iss" for claims that name none; "" for none
}

var (
	_ fmt.Stringer   = (*Issuer)(nil)
	_ slog.LogValuer = (*Issuer)(nil)
)

// NewIssuer returns an Issuer signing with key: EdDSA for an Ed25519 key,
// ES256 for an ECDSA P-256 key (software keys or any crypto.Signer, such as a
// KMS or HSM handle). An empty kid is replaced by KeyID(key.Public()).
func NewIssuer(key crypto.Signer, kid string) (*Issuer, error) {
	if key == nil {
		return nil, errors.New("token: nil signing key")
	}
	pub := key.Public()
	var alg jose.SignatureAlgorithm
	switch p := pub.(type) {
	case ed25519.PublicKey:
		alg = jose.EdDSA
	case *ecdsa.PublicKey:
		if p.Curve != elliptic.P256() {
			return nil, fmt.Errorf("token: ECDSA curve %s not supported, want P-256", p.Curve.Params().Name)
		}
		alg = jose.ES256
	default:
		return nil, fmt.Errorf("token: key type %T not supported, want Ed25519 or ECDSA P-256", pub)
	}
	if kid == "" {
		var err error
		if kid, err = KeyID(pub); err != nil {
			return nil, fmt.Errorf("token: %w", err)
		}
	}
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), kid)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: cryptosigner.Opaque(key)}, opts)
	if err != nil {
		return nil, fmt.Errorf("token: new signer: %w", err)
	}
	return &Issuer{signer: signer, alg: alg, kid: kid, pub: pub, now: time.Now}, nil
}

// Issue signs c and returns the compact JWT. It fills IssuedAt with the
// current time if zero, ID with 128 random bits if empty, and Issuer with the
// issuer's default name (DevIssuerName for the development issuer) if empty. It refuses claims
// that no Verifier would accept: those without Account, Content, Expiry or
// Audience (errors wrapping ErrMissingClaim), or with an empty Content entry
// (ErrMalformed).
func (i *Issuer) Issue(c Claims) (string, error) {
	if c.IssuedAt.IsZero() {
		c.IssuedAt = i.now()
	}
	if c.Issuer == "" {
		c.Issuer = i.iss
	}
	if c.ID == "" {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("token: random jti: %w", err)
		}
		c.ID = base64.RawURLEncoding.EncodeToString(b[:])
	}
	switch {
	case c.Account == "":
		return "", fmt.Errorf("token: issue: %w: Account", ErrMissingClaim)
	case len(c.Content) == 0:
		return "", fmt.Errorf("token: issue: %w: Content", ErrMissingClaim)
	case c.Expiry.IsZero():
		return "", fmt.Errorf("token: issue: %w: Expiry", ErrMissingClaim)
	case len(c.Audience) == 0:
		return "", fmt.Errorf("token: issue: %w: Audience", ErrMissingClaim)
	}
	for n, e := range c.Content {
		if e == "" {
			return "", fmt.Errorf("token: issue: %w: Content[%d] is empty", ErrMalformed, n)
		}
	}
	raw, err := jwt.Signed(i.signer).Claims(c.toWire()).Serialize()
	if err != nil {
		return "", fmt.Errorf("token: sign: %w", err)
	}
	return raw, nil
}

// KeyID returns the "kid" the issuer puts in its tokens.
func (i *Issuer) KeyID() string { return i.kid }

// Algorithm returns the signature algorithm: EdDSA or ES256.
func (i *Issuer) Algorithm() jose.SignatureAlgorithm { return i.alg }

// PublicJWK returns the public key as a JWK with its kid, "alg" and "use":"sig",
// for VerifierConfig.ExtraKeys or a key set file.
func (i *Issuer) PublicJWK() jose.JSONWebKey {
	return jose.JSONWebKey{Key: i.pub, KeyID: i.kid, Algorithm: string(i.alg), Use: "sig"}
}

// PublicJWKS returns a JWK Set (JSON) holding the public key, suitable as a
// VerifierConfig.KeySetFile.
func (i *Issuer) PublicJWKS() []byte {
	b, err := json.MarshalIndent(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{i.PublicJWK()}}, "", "  ")
	if err != nil {
		// Unreachable: NewIssuer admits only Ed25519 and P-256 keys, which
		// always marshal.
		panic("token: marshal public JWK set: " + err.Error())
	}
	return append(b, '\n')
}

// String shows the key ID and algorithm only.
func (i *Issuer) String() string { return fmt.Sprintf("token.Issuer(kid=%s, alg=%s)", i.kid, i.alg) }

// LogValue shows the key ID and algorithm only.
func (i *Issuer) LogValue() slog.Value {
	return slog.GroupValue(slog.String("kid", i.kid), slog.String("alg", string(i.alg)))
}
