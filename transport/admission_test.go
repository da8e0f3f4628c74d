package transport_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/transport"
)

// A peer without a valid ticket gets no byte, is disconnected within
// seconds and is refused by the gater afterwards.
func TestAdmissionRefused(t *testing.T) {
	cases := []struct {
		name   string
		ticket func(n *testNet, h *transport.Host) tickets
	}{
		{"no ticket", func(n *testNet, h *transport.Host) tickets {
			return tickets{fn: func() ([]byte, time.Time, error) { return nil, time.Time{}, errors.New("no entitlement") }}
		}},
		{"expired ticket", func(n *testNet, h *transport.Host) tickets {
			exp := n.clock.Now().Add(-time.Minute)
			return fixedTicket(n.auth.issue(h.ID(), content, exp), exp.Add(time.Hour)) // the source lies about expiry; the verifier does not
		}},
		{"ticket for another content", func(n *testNet, h *transport.Host) tickets {
			exp := n.clock.Now().Add(10 * time.Minute)
			return fixedTicket(n.auth.issue(h.ID(), "other-content", exp), exp)
		}},
		{"ticket naming another peer", func(n *testNet, h *transport.Host) tickets {
			victim := n.host()
			exp := n.clock.Now().Add(10 * time.Minute)
			return fixedTicket(n.auth.issue(victim.ID(), content, exp), exp) // stolen from victim
		}},
		{"ticket from another authority", func(n *testNet, h *transport.Host) tickets {
			exp := n.clock.Now().Add(10 * time.Minute)
			return fixedTicket(newAuthority(t).issue(h.ID(), content, exp), exp)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := newNet(t)
			seed := n.host()
			sSeed := n.join(seed, n.fx.full())
			// The attacker never drops a connection itself (an honest host
			// without a ticket would, after its own grace, since the seed
			// shows it no ticket either): the seed must.
			bad := n.host(func(c *transport.Config) { c.AdmissionGrace = -1 })
			sBad := n.join(bad, nil, func(o *transport.SwarmOptions) { o.Tickets = tc.ticket(n, bad) })

			start := time.Now()
			connect(t, bad, seed)
			// Straight after the handshake, before or after the ticket
			// exchange: a bare request gets no payload byte.
			status, payload := rawRequest(t, bad, seed, n.fx.paths[1])
			require.Zero(t, payload)
			require.Contains(t, []int{-1, 1}, status, "status NotAdmitted, or no answer at all")
			// Through the API: the fetch fails.
			_, err := sBad.Fetch(context.Background(), seed.ID(), n.fx.paths[1])
			require.Error(t, err)

			require.Eventually(t, func() bool { return !connected(seed, bad) }, 5*time.Second, 20*time.Millisecond)
			require.Less(t, time.Since(start), 4*time.Second, "disconnected within the grace period")
			require.Zero(t, sSeed.Stats().BytesUp)
			require.Zero(t, seed.Stats().AdmittedPeers)
			for _, ps := range sSeed.Peers() {
				require.NotEqual(t, bad.ID(), ps.ID)
			}
			require.Positive(t, seed.Stats().Evictions)

			// Gated: neither side can reconnect for a while. (The dialler
			// may finish its half of the handshake before the seed's gater
			// drops the connection, so look from the seed's side.)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			_ = bad.Connect(ctx, seed.AddrInfo())
			require.Never(t, func() bool { return connected(seed, bad) }, 500*time.Millisecond, 10*time.Millisecond, "the seed refuses the evicted peer")
			require.Error(t, seed.Connect(ctx, bad.AddrInfo()), "the seed will not dial it either")
			require.False(t, seed.Banned(bad.ID()), "evicted, not banned")
			// After EvictFor (1 min), it may come back.
			n.clock.Advance(61 * time.Second)
			require.NoError(t, seed.Connect(ctx, bad.AddrInfo()))
		})
	}
}

// An admission that expires without a renewed ticket ends the connection;
// a ticket renewed before expiry is re-presented and keeps it.
func TestAdmissionExpiryAndRenewal(t *testing.T) {
	n := newNet(t)
	seed, renewing, lapsing := n.host(), n.host(), n.host()
	issued := n.clock.Now()
	sSeed := n.join(seed, n.fx.full(), n.renewingTickets(seed))
	sRenewing := n.join(renewing, nil, n.renewingTickets(renewing))
	n.join(lapsing, nil) // fixed ticket: expires at issued+10min, never renewed
	connect(t, renewing, seed)
	connect(t, lapsing, seed)
	admitted(t, sSeed, renewing.ID())
	admitted(t, sSeed, lapsing.ID())
	admitted(t, sRenewing, seed.ID())

	until := func(id any) time.Time {
		for _, ps := range sSeed.Peers() {
			if ps.ID == id {
				return ps.AdmittedUntil
			}
		}
		return time.Time{}
	}
	require.WithinDuration(t, issued.Add(10*time.Minute), until(renewing.ID()), 2*time.Second)

	// Past 80% of the lifetime, the renewing peer fetches a new ticket and
	// re-presents it; the seed extends its admission.
	n.clock.Advance(8*time.Minute + 30*time.Second)
	require.Eventually(t, func() bool { return until(renewing.ID()).After(issued.Add(15 * time.Minute)) },
		5*time.Second, 20*time.Millisecond, "renewed ticket re-presented")

	// Past the first expiry: the lapsing peer is dropped and refused; the
	// renewing one stays, and still gets bytes.
	n.clock.Advance(2 * time.Minute)
	require.Eventually(t, func() bool { return !connected(seed, lapsing) }, 5*time.Second, 20*time.Millisecond)
	require.True(t, connected(seed, renewing))
	require.Error(t, seed.Connect(context.Background(), lapsing.AddrInfo()))
	got, err := sRenewing.Fetch(context.Background(), seed.ID(), n.fx.paths[1])
	require.NoError(t, err)
	require.Equal(t, n.fx.files[n.fx.paths[1]], got)
}

// A host that presents a valid ticket but then asks for a file outside the
// manifest gets NotFound; admission does not open the filesystem.
func TestServeOnlyManifestFiles(t *testing.T) {
	n := newNet(t)
	seed, viewer := n.host(), n.host()
	store := n.fx.full()
	require.NoError(t, store.Put("secret.key", []byte("not in the manifest")))
	sSeed := n.join(seed, store)
	sViewer := n.join(viewer, nil)
	connect(t, viewer, seed)
	admitted(t, sSeed, viewer.ID())
	admitted(t, sViewer, seed.ID())
	status, payload := rawRequest(t, viewer, seed, "secret.key")
	require.Equal(t, 2, status) // NotFound
	require.Zero(t, payload)
	status, payload = rawRequest(t, viewer, seed, n.fx.paths[1])
	require.Equal(t, 0, status)
	require.Equal(t, n.fx.size(n.fx.paths[1]), payload)
}
