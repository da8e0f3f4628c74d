package token

import "errors"

// Sentinel errors. Every error returned by [Verifier.Verify] wraps exactly one
// of them, so callers branch with [errors.Is] and never on message text. No
// error message ever contains the token or its payload.
var (
	// ErrMalformed: the token is not a compact JWS with a JSON claims set,
	// is larger than MaxTokenSize, or a claim has the wrong type or an
	// invalid value (for example an empty "content" entry).
	ErrMalformed = errors.New("token: malformed")

	// ErrSignature: the signature does not verify under the key that the
	// token's "kid" selects.
	ErrSignature = errors.New("token: invalid signature")

	// ErrAlgorithm: the header "alg" is not EdDSA or ES256 (this includes
	// "none", HS*, RS* and PS*), or it does not match the type and "alg" of
	// the key that the token's "kid" selects.
	ErrAlgorithm = errors.New("token: algorithm not allowed")

	// ErrExpired: "exp" is more than the leeway in the past.
	ErrExpired = errors.New("token: expired")

	// ErrNotYetValid: "nbf" or "iat" is more than the leeway in the future.
	ErrNotYetValid = errors.New("token: not yet valid")

	// ErrAudience: "aud" does not contain the verifier's audience.
	ErrAudience = errors.New("token: wrong audience")

	// ErrIssuer: the verifier expects given issuers and "iss" is none of
	// them (or absent).
	ErrIssuer = errors.New("token: wrong issuer")

	// ErrLifetime: the token is valid for longer than the verifier's
	// MaxLifetime: "exp" minus "iat", or "exp" minus now, exceeds it.
	ErrLifetime = errors.New("token: lifetime too long")

	// ErrMissingClaim: one of "sub", "jti", "exp" or "content" is absent or
	// empty ("aud" is reported as ErrAudience).
	ErrMissingClaim = errors.New("token: missing required claim")

	// ErrUnknownKey: no trusted key has the token's "kid", even after
	// re-reading the key set file; or the token has no "kid" and more than
	// one key is trusted.
	ErrUnknownKey = errors.New("token: unknown signing key")

	// ErrClosed: Verify was called after Close.
	ErrClosed = errors.New("token: verifier closed")
)
