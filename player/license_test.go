package player_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/internal/stack"
	"github.com/sealmesh/sealmesh/player"
)

// TestNoLicenseNoSession: a viewer the license server refuses (revoked, or
// with an expired token) gets no session, so nothing can be decrypted.
func TestNoLicenseNoSession(t *testing.T) {
	st := startStack(t, stack.Options{})
	require.NoError(t, st.Revoke("revoked"))
	cases := map[string]player.Config{
		"revoked account": config(st, "revoked"),
		"expired token": func() player.Config {
			c := config(st, "late")
			c.Token = func(context.Context) (string, error) { return st.Token("late", -2*time.Minute) }
			return c
		}(),
	}
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			cfg.P2P.Disable = true
			s, err := player.Open(context.Background(), cfg)
			require.ErrorIs(t, err, player.ErrNoLicense)
			require.Nil(t, s)
		})
	}
}

// TestLapsedLicenseServesNothingNew: once the license expires without
// renewal (the account was revoked), the gateway refuses every segment it
// had not served, with a JSON 403.
func TestLapsedLicenseServesNothingNew(t *testing.T) {
	st := startStack(t, stack.Options{LicenseTTL: 3 * time.Second, RenewAfter: time.Second, SegmentDuration: 2 * time.Second})
	cfg := config(st, "viewer")
	cfg.P2P.Disable = true
	s, err := player.Open(context.Background(), cfg)
	require.NoError(t, err)
	defer s.Close()
	base := strings.TrimSuffix(s.URL(), "master.m3u8")
	code, _ := get(t, base+"video/init-0.mp4")
	require.Equal(t, http.StatusOK, code)
	code, _ = get(t, base+"video/1.m4s")
	require.Equal(t, http.StatusOK, code)

	require.NoError(t, st.Revoke("viewer"))
	require.Eventually(t, func() bool { return time.Now().After(s.Stats().LicenseExpiry) }, 10*time.Second, 50*time.Millisecond)
	code, body := get(t, base+"video/2.m4s")
	require.Equal(t, http.StatusForbidden, code, "a lapsed license still decrypted: %s", body)
	require.Contains(t, string(body), `"no_license"`)
	require.GreaterOrEqual(t, s.Stats().Refused, int64(1))
	require.Greater(t, s.Stats().RenewFailures, 0)
}

// TestRenewalKeepsPlaying: with a license shorter than the content and
// renewals allowed, playback crosses crypto periods and license lifetimes.
func TestRenewalKeepsPlaying(t *testing.T) {
	st := startStack(t, stack.Options{LicenseTTL: 3 * time.Second, RenewAfter: time.Second, SegmentDuration: 2 * time.Second, CryptoPeriod: 2 * time.Second})
	cfg := config(st, "viewer")
	cfg.P2P.Disable = true
	s, err := player.Open(context.Background(), cfg)
	require.NoError(t, err)
	defer s.Close()
	base := strings.TrimSuffix(s.URL(), "master.m3u8")
	first := s.Stats().LicenseExpiry
	for i := 1; i <= 6; i++ {
		code, body := get(t, base+"video/"+itoa(i)+".m4s")
		require.Equal(t, http.StatusOK, code, "segment %d: %s", i, body)
		if i == 3 {
			// Cross a license lifetime: the license Open got lapses, and
			// only renewals can carry playback past it. (A condition on
			// the clock, not a pace: it waits for at most LicenseTTL.)
			require.Eventually(t, func() bool {
				return time.Now().After(first) && s.Stats().LicenseExpiry.After(time.Now())
			}, 20*time.Second, 20*time.Millisecond, "the license was not renewed past its first expiry")
		}
	}
	require.Greater(t, s.Stats().Renewals, 0)
}

func itoa(i int) string { return strconv.Itoa(i) }
