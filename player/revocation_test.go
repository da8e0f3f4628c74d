package player_test

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/internal/stack"
	"github.com/sealmesh/sealmesh/player"
)

// L5: a seed learns of a revocation from its next announce answer (every
// TrackerInterval, 30 s by default) and cuts the revoked viewer off, though
// the viewer's ticket is valid for minutes more. Real license server, real
// hosts; the tracker interval is short here so the test runs in a second,
// and the deadline is far below the ticket's life (2 minutes), so only the
// announce answer can cut the viewer off in time. Fails if seeds ignore the
// revoked peers of announce answers.
func TestRevokedViewerCutOff(t *testing.T) {
	st := startStack(t, stack.Options{SegmentDuration: 2 * time.Second})
	ctx := context.Background()
	seed, err := player.Open(ctx, withTracker(config(st, "seed-account")))
	require.NoError(t, err)
	defer seed.Close()
	viewer, err := player.Open(ctx, withTracker(config(st, "viewer-account")))
	require.NoError(t, err)
	defer viewer.Close()

	connected := func() bool {
		return seed.Host().LibP2P().Network().Connectedness(viewer.Host().ID()) == network.Connected
	}
	require.Eventually(t, func() bool { return connected() && seed.Host().Stats().AdmittedPeers == 1 }, 30*time.Second, 20*time.Millisecond,
		"the seed never admitted the viewer")

	require.NoError(t, st.Revoke("viewer-account"))
	revoked := time.Now()
	require.Eventually(t, func() bool { return !connected() && seed.Host().Stats().AdmittedPeers == 0 }, 30*time.Second, 20*time.Millisecond,
		"the seed still serves the revoked viewer")
	t.Logf("revoked viewer cut off %v after the revocation (tracker interval 200 ms)", time.Since(revoked).Round(time.Millisecond))
	require.Positive(t, seed.Host().Stats().Evictions)
	// The viewer cannot come back with its still-valid ticket.
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_ = viewer.Host().Connect(dctx, seed.Host().AddrInfo())
	require.Never(t, func() bool { return seed.Host().Stats().AdmittedPeers > 0 }, time.Second, 20*time.Millisecond)
}
