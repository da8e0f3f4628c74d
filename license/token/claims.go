package token

import (
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
)

// Claims are what a token entitles its holder to.
//
// On the wire they are a JWT claims set; the JSON name of each field is given
// beside it. Times travel as whole seconds since the epoch (NumericDate), so
// sub-second parts are dropped by Issue and absent from verified claims.
type Claims struct {
	// Account is the operator's account (subscriber) ID: "sub", required.
	Account string
	// Content lists the content IDs the token covers: "content", required,
	// non-empty. An entry ending in "*" is a prefix: "series-1/*" covers every
	// ID that starts with "series-1/", and "*" covers everything. A "*"
	// anywhere else is an ordinary character.
	Content []string
	// Device optionally binds the token to one device ID: "device".
	Device string
	// ID is a unique token ID, for revocation and replay accounting: "jti",
	// required (Issue fills a random one when empty).
	ID string
	// Audience names the license servers the token is meant for: "aud". A
	// Verifier accepts a token only if Audience contains its own audience.
	Audience []string
	// Issuer names who minted the token: "iss". A Verifier configured with
	// expected issuers accepts a token only if Issuer is one of them.
	Issuer string
	// IssuedAt ("iat"), NotBefore ("nbf") and Expiry ("exp", required)
	// bound the token's validity. The zero time means absent.
	IssuedAt, NotBefore, Expiry time.Time
}

// Entitles reports whether the claims cover contentID, by exact match or by
// a prefix entry ending in "*". An empty contentID is never entitled.
//
// Prefix entries match characters, not path segments: "series-1*" also covers
// "series-10/ep1". Operators should end prefixes with a separator ("series-1/*").
func (c *Claims) Entitles(contentID string) bool {
	if c == nil || contentID == "" {
		return false
	}
	for _, e := range c.Content {
		if prefix, ok := strings.CutSuffix(e, "*"); ok {
			if strings.HasPrefix(contentID, prefix) {
				return true
			}
		} else if e == contentID {
			return true
		}
	}
	return false
}

// wireClaims is the JSON form of Claims.
type wireClaims struct {
	jwt.Claims
	Content []string `json:"content,omitempty"`
	Device  string   `json:"device,omitempty"`
}

func (c *Claims) toWire() wireClaims {
	return wireClaims{
		Claims: jwt.Claims{
			Issuer:    c.Issuer,
			Subject:   c.Account,
			Audience:  jwt.Audience(c.Audience),
			Expiry:    jwt.NewNumericDate(c.Expiry),
			NotBefore: jwt.NewNumericDate(c.NotBefore),
			IssuedAt:  jwt.NewNumericDate(c.IssuedAt),
			ID:        c.ID,
		},
		Content: c.Content,
		Device:  c.Device,
	}
}

func (w *wireClaims) toClaims() *Claims {
	return &Claims{
		Account:   w.Subject,
		Content:   w.Content,
		Device:    w.Device,
		ID:        w.ID,
		Audience:  []string(w.Audience),
		Issuer:    w.Issuer,
		IssuedAt:  numericTime(w.IssuedAt),
		NotBefore: numericTime(w.NotBefore),
		Expiry:    numericTime(w.Expiry),
	}
}

// numericTime converts an optional NumericDate to UTC, keeping absent as the
// zero time.
func numericTime(n *jwt.NumericDate) time.Time {
	if n == nil {
		return time.Time{}
	}
	return n.Time().UTC()
}
