package license

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sealmesh/sealmesh/license/token"
)

// countingVerifier accepts tokens "ok-<account>" expiring at exp[account],
// refuses everything else, and counts its calls.
type countingVerifier struct {
	mu    sync.Mutex
	calls int
	now   func() time.Time
	exp   map[string]time.Time
}

func (v *countingVerifier) Verify(raw string) (*token.Claims, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.calls++
	var acct string
	if _, err := fmt.Sscanf(raw, "ok-%s", &acct); err != nil {
		return nil, fmt.Errorf("%w: not ok", token.ErrSignature)
	}
	exp := v.exp[acct]
	if !v.now().Before(exp) {
		return nil, token.ErrExpired
	}
	return &token.Claims{Account: acct, Content: []string{"c"}, ID: "j", Expiry: exp}, nil
}

func TestTokenCache(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	now := t0
	clock := func() time.Time { return now }
	st, err := OpenState(filepath.Join(t.TempDir(), "s.db"), 0, clock)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	v := &countingVerifier{now: clock, exp: map[string]time.Time{"a": t0.Add(90 * time.Second), "b": t0.Add(10 * time.Minute), "c": t0.Add(10 * time.Minute)}}
	s := &Server{cfg: Config{Now: clock}, deps: Deps{Tokens: v, State: st}, tokens: newTokenCache(2)}

	verify := func(raw string) error { _, err := s.verifyToken(raw); return err }
	step := func(name, raw string, wantErr bool, wantCalls int) {
		t.Helper()
		err := verify(raw)
		if (err != nil) != wantErr {
			t.Fatalf("%s: err %v, want error %v", name, err, wantErr)
		}
		if v.calls != wantCalls {
			t.Fatalf("%s: %d verifier calls, want %d", name, v.calls, wantCalls)
		}
	}
	step("first use verifies", "ok-a", false, 1)
	step("second use hits", "ok-a", false, 1)
	step("refused tokens are not cached", "bad", true, 2)
	step("refused tokens are not cached (again)", "bad", true, 3)
	now = t0.Add(59 * time.Second)
	step("within 60 s", "ok-a", false, 3)
	now = t0.Add(61 * time.Second)
	step("60 s after verification: verified again", "ok-a", false, 4)
	now = t0.Add(89 * time.Second)
	step("hit", "ok-a", false, 4)
	now = t0.Add(90 * time.Second)
	step("at exp: not served from the cache, and the verifier refuses", "ok-a", true, 5)
	var ae *apiError
	if err := verify("ok-a"); !errors.As(err, &ae) || ae.code != CodeTokenExpired {
		t.Fatalf("expired token: %v", err)
	}

	// Bounded: a third token evicts one of two.
	now = t0
	v.calls = 0
	step("b", "ok-b", false, 1)
	step("c", "ok-c", false, 2)
	step("a again", "ok-a", false, 3)
	if n := len(s.tokens.m); n != 2 {
		t.Fatalf("%d entries, want at most 2", n)
	}
	// The clock going back before a verification misses.
	now = t0.Add(-time.Second)
	step("clock back", "ok-a", false, 4)

	// A disabled cache verifies every time.
	s.tokens = newTokenCache(-1)
	v.calls = 0
	step("no cache", "ok-b", false, 1)
	step("no cache", "ok-b", false, 2)
}
