// Package token issues and verifies entitlement tokens: the signed JWTs with
// which an operator's backend tells the sealmesh license server what a viewer
// may watch.
//
// The flow is: the viewer logs in to the operator's own service, which checks
// the subscription and mints a short-lived token; the player presents it to the
// license server, whose [Verifier] checks it before any license or swarm ticket
// is handed out. The license server never talks to the operator's user database.
//
// # Token format
//
// A token is a JWT (RFC 7519) in JWS compact serialization (RFC 7515), signed
// with EdDSA (Ed25519, RFC 8037) or ES256 (ECDSA P-256 with SHA-256). Nothing
// else is accepted: not "none", not HMAC (HS*), not RSA (RS*, PS*), not a JWE.
// The protected header carries "alg" and a "kid" naming the signing key:
//
//	{"alg":"EdDSA","kid":"9f2c41d07ab3e6c5","typ":"JWT"}
//
// The claims:
//
//	{
//	  "sub": "account-42",                  required: the operator's account ID
//	  "content": ["movie-7", "series-1/*"], required, non-empty: content IDs;
//	                                        a trailing "*" makes a prefix, "*" alone means all
//	  "device": "stb-0019",                 optional: a device the token is bound to
//	  "jti": "q2b8lJ1cX0m3s7hVb2Q9aA",      required: unique token ID (revocation, replay)
//	  "aud": ["license.example.com"],       required: must contain the server's audience
//	  "iat": 1767225600,                    optional: issued at (seconds since the epoch)
//	  "nbf": 1767225600,                    optional: not before
//	  "exp": 1767226200                     required: expiry
//	}
//
// "aud" may also be a single string. Unknown claims are ignored. A token is at
// most [MaxTokenSize] (8 KiB). Keep lifetimes short (minutes): a token is a
// bearer credential until it expires.
//
// Verify allows clock skew (the Leeway, 30 s by default, at most 60 s) on
// "exp", "nbf" and "iat". Every error it returns wraps exactly one sentinel
// ([ErrMalformed], [ErrAlgorithm], [ErrUnknownKey], [ErrSignature],
// [ErrMissingClaim], [ErrAudience], [ErrExpired], [ErrNotYetValid],
// [ErrClosed]); see [Verifier.Verify] for the order of checks. Errors never
// contain the token.
//
// # Minting tokens
//
// Any JOSE library can mint tokens; the rules are: sign with EdDSA over an
// Ed25519 key or ES256 over a P-256 key, put the key's "kid" in the protected
// header, and fill the claims above. With Node's jose package, for example:
//
//	await new SignJWT({ content: ["movie-7"] })
//	  .setProtectedHeader({ alg: "EdDSA", kid: "2025-06" })
//	  .setSubject("account-42").setJti(crypto.randomUUID())
//	  .setAudience("license.example.com").setIssuedAt().setExpirationTime("10m")
//	  .sign(privateKey)
//
// Go backends can use [NewIssuer] with any crypto.Signer, including KMS and
// HSM handles, and [Issuer.Issue].
//
// # Keys and rotation
//
// The license server trusts the public keys in a JWK Set file (RFC 7517),
// named by [VerifierConfig.KeySetFile]:
//
//	{"keys": [
//	  {"kty":"OKP","crv":"Ed25519","x":"...","kid":"2025-06","alg":"EdDSA","use":"sig"},
//	  {"kty":"EC","crv":"P-256","x":"...","y":"...","kid":"2025-09","alg":"ES256","use":"sig"}
//	]}
//
// Each key verifies only the algorithm its type implies; an "alg" member, if
// present, must agree. Private keys, other key types and duplicate kids make
// the file invalid. [Issuer.PublicJWKS] writes such a file for an Issuer's key.
//
// The Verifier re-reads the file when it changes, checking at most every
// ReloadInterval (5 s by default) and at once when a token names an unknown
// kid; a file that fails to load is logged and the previous keys stay in use.
// Replace the file atomically (write a temporary file, then rename it). To
// rotate: add the new key to the file, wait for every server to pick it up,
// start signing with it, and remove the old key once the last token it signed
// has expired.
//
// # Development tokens
//
// [LoadOrCreateDevIssuer] keeps an Ed25519 key in a file (JWK JSON with the
// private part, mode 0600), generated on first use, so local setups work
// without an operator backend. The license server trusts it only when asked
// (--dev-tokens), by adding [Issuer.PublicJWK] to [VerifierConfig.ExtraKeys].
// Never enable it in production: anyone who can read that file can mint tokens.
//
// # Compatibility
//
// The token format is a stable interface between operators and sealmesh:
// claims may be added, never repurposed, and the accepted algorithms will not
// be widened without a new major version.
package token
