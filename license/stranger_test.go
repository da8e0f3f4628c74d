package license_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/license"
)

// The stranger of issue 12 M3, as a process of its own: it holds a seed's
// ticket (captured off a connection or a disk) but not the seed's libp2p
// key, and no token. It tries to announce with it, to read the swarm's
// peer list and to point new viewers at an address of its choice.
const (
	strangerURL    = "SEALMESH_TEST_STRANGER_URL"
	strangerTicket = "SEALMESH_TEST_STRANGER_TICKET"
	strangerSeed   = "SEALMESH_TEST_STRANGER_SEED"
	strangerNow    = "SEALMESH_TEST_STRANGER_NOW"
)

// TestStrangerProcess is the stranger's main: it does nothing unless the
// parent test started this binary with the environment above. It prints
// one line per attempt: "<name> <status> <body>".
func TestStrangerProcess(t *testing.T) {
	url := os.Getenv(strangerURL)
	if url == "" {
		t.Skip("run by TestCapturedTicketCannotAnnounce in a process of its own")
	}
	ticket, seed := os.Getenv(strangerTicket), os.Getenv(strangerSeed)
	ms, _ := strconv.ParseInt(os.Getenv(strangerNow), 10, 64)
	now := time.UnixMilli(ms)
	own, _, err := crypto.GenerateEd25519Key(rand.Reader)
	require.NoError(t, err)
	evil := []string{"/ip4/198.51.100.7/tcp/4001"}
	signed, err := license.NewAnnounceRequest(own, ticket, evil, 50, now)
	require.NoError(t, err)
	namingSeed := signed
	namingSeed.PeerID = seed
	attempts := []struct {
		name string
		body any
	}{
		{"ticket-alone", license.AnnounceRequest{Ticket: ticket, Addrs: evil, Want: 50}},
		{"ticket-with-own-proof", signed},
		{"ticket-with-own-proof-naming-seed", namingSeed},
		{"ticket-with-garbage-signature", license.AnnounceRequest{Ticket: ticket, Addrs: evil, Want: 50, Time: ms, Signature: "AAAA"}},
	}
	for _, a := range attempts {
		b, err := json.Marshal(a.body)
		require.NoError(t, err)
		resp, err := http.Post(url+"/v1/announce", "application/json", bytes.NewReader(b))
		require.NoError(t, err)
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		fmt.Printf("ATTEMPT %s %d %s\n", a.name, resp.StatusCode, strings.ReplaceAll(string(body), "\n", " "))
	}
}

// M3: a stranger process holding a seed's captured ticket cannot announce,
// gets no peer list and cannot move the seed's entry. Fails if
// /v1/announce takes the ticket alone again (the attempts get 200 and the
// viewers' peer IDs).
func TestCapturedTicketCannotAnnounce(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	c := e.client(t, e.token(t, "acct-1", []string{movie}))
	seedTicket, err := c.Ticket(ctx, keyA, movie)
	require.NoError(t, err)
	viewerTicket, err := c.Ticket(ctx, keyB, movie)
	require.NoError(t, err)
	honest := []string{"/ip4/203.0.113.7/tcp/4001"}
	_, err = c.Announce(ctx, keyA, seedTicket.Encoded, honest, 0)
	require.NoError(t, err)
	_, err = c.Announce(ctx, keyB, viewerTicket.Encoded, []string{"/ip4/203.0.113.8/tcp/4001"}, 0)
	require.NoError(t, err)

	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestStrangerProcess$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), strangerURL+"="+e.url, strangerTicket+"="+seedTicket.Encoded, strangerSeed+"="+peerA,
		strangerNow+"="+strconv.FormatInt(e.clock.Now().UnixMilli(), 10))
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	n := 0
	for _, line := range strings.Split(string(out), "\n") {
		rest, ok := strings.CutPrefix(line, "ATTEMPT ")
		if !ok {
			continue
		}
		n++
		f := strings.SplitN(rest, " ", 3)
		require.Len(t, f, 3, line)
		status, _ := strconv.Atoi(f[1])
		require.True(t, status == 401 || status == 403, "stranger's %s got %d: %s", f[0], status, f[2])
		require.NotContains(t, f[2], peerB, "stranger's %s learnt a viewer's peer ID", f[0])
		require.NotContains(t, f[2], "203.0.113.8", "stranger's %s learnt a viewer's address", f[0])
	}
	require.Equal(t, 4, n, "the stranger made every attempt:\n%s", out)
	t.Logf("stranger process:\n%s", out)

	// The next honest viewer is still given the seed's own address.
	e.clock.Add(time.Millisecond)
	a, err := c.Announce(ctx, keyB, viewerTicket.Encoded, nil, 0)
	require.NoError(t, err)
	require.Len(t, a.Peers, 1)
	require.Equal(t, peerA, a.Peers[0].PeerID)
	require.Equal(t, honest, a.Peers[0].Addrs)
}
