package player_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/internal/stack"
	"github.com/sealmesh/sealmesh/player"
	"github.com/sealmesh/sealmesh/segment"
)

// manifestSwap is an origin that serves other manifest bytes while set,
// and counts the requests for a fresh copy (Cache-Control: no-cache).
type manifestSwap struct {
	bytes   atomic.Pointer[[]byte]
	noCache atomic.Int64
}

func (ms *manifestSwap) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/"+segment.ManifestFile) {
			if r.Header.Get("Cache-Control") == "no-cache" {
				ms.noCache.Add(1)
			}
			if b := ms.bytes.Load(); b != nil {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write(*b)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// resigned is the stack's manifest with sequence seq, signed with the
// packager's own key: what an older manifest of the content looks like.
func resigned(t *testing.T, st *stack.Stack, seq uint64) []byte {
	t.Helper()
	signer, err := st.ManifestSigner(context.Background())
	require.NoError(t, err)
	m := *st.Manifest
	m.Sequence = seq
	b, err := segment.SignManifest(&m, signer)
	require.NoError(t, err)
	return b
}

// TestOlderManifestRefusedBySequence: a seed (no license, so no digest to
// compare) that has accepted a content's manifest refuses an older one the
// packager signed, re-served by the origin: in one process through a shared
// ManifestHistory, and across restarts through the history in its cache
// folder. A fresh history accepts the same older manifest, so the refusal is
// the history's alone.
func TestOlderManifestRefusedBySequence(t *testing.T) {
	var swap manifestSwap
	st := startStack(t, stack.Options{Origin: swap.wrap})
	require.NotZero(t, st.Manifest.Sequence)
	older := resigned(t, st, st.Manifest.Sequence-1)
	seed := func(h *player.ManifestHistory, cacheDir string) (*player.Session, error) {
		cfg := config(st, "edge")
		cfg.SeedOnly, cfg.P2P.Disable, cfg.History, cfg.CacheDir = true, true, h, cacheDir
		return player.Open(context.Background(), cfg)
	}
	for _, tc := range []struct {
		name    string
		inCache bool // Config.History unset: the file in CacheDir
	}{
		{"shared history", false},
		{"history in the cache folder, across restarts", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			swap.bytes.Store(nil)
			h, dir := player.NewManifestHistory(), ""
			if tc.inCache {
				h, dir = nil, t.TempDir()
			}
			s, err := seed(h, dir)
			require.NoError(t, err)
			require.Equal(t, st.Manifest.Sequence, s.Manifest().Sequence)
			require.NoError(t, s.Close())

			swap.bytes.Store(&older)
			_, err = seed(h, dir)
			require.ErrorIs(t, err, player.ErrManifest)
			require.ErrorIs(t, err, segment.ErrRollback)
			require.Contains(t, err.Error(), "lower than")

			s, err = seed(player.NewManifestHistory(), t.TempDir())
			require.NoError(t, err, "the older manifest is valid in itself")
			require.Equal(t, st.Manifest.Sequence-1, s.Manifest().Sequence)
			require.NoError(t, s.Close())
		})
	}
}

// TestManifestOtherThanLicensedRefused: a player refuses a manifest, signed
// by the packager's own key, whose digest is not the one its license names:
// an older one (rollback) even with no history at all, and one with a
// higher sequence that the license server never issued for. It asks the
// origin once more, past caches, before refusing.
func TestManifestOtherThanLicensedRefused(t *testing.T) {
	var swap manifestSwap
	st := startStack(t, stack.Options{Origin: swap.wrap})
	open := func() (*player.Session, error) {
		cfg := config(st, "viewer")
		cfg.P2P.Disable = true
		return player.Open(context.Background(), cfg)
	}
	s, err := open()
	require.NoError(t, err, "the packaged manifest is the licensed one")
	require.Equal(t, st.Manifest.Digest(), s.Manifest().Digest())
	require.NoError(t, s.Close())
	require.Zero(t, swap.noCache.Load())

	for _, tc := range []struct {
		name string
		seq  uint64
	}{
		{"older (rollback)", st.Manifest.Sequence - 1},
		{"newer but not licensed", st.Manifest.Sequence + 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := resigned(t, st, tc.seq)
			swap.bytes.Store(&b)
			before := swap.noCache.Load()
			_, err := open()
			require.ErrorIs(t, err, player.ErrManifest)
			require.ErrorIs(t, err, player.ErrManifestNotLicensed)
			require.Contains(t, err.Error(), st.Manifest.Digest(), "the error names the licensed digest")
			require.Equal(t, before+1, swap.noCache.Load(), "one fresh fetch before refusing")
		})
	}
}
