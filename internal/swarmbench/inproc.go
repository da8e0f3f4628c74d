package swarmbench

import (
	"bufio"
	"context"
	"os"
	"strconv"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/sealmesh/sealmesh/transport"
)

// inproc is a member that plays in this process.
type inproc struct {
	p   *Peer
	t   Target
	cfg PeerConfig
}

func (m *inproc) play(ctx context.Context) error { return m.p.Play(ctx, m.t, m.cfg) }
func (m *inproc) leave()                         { m.p.Leave() }
func (m *inproc) state() State                   { return m.p.Snapshot().State }
func (m *inproc) close()                         { m.p.Close() }

func (m *inproc) addr() (peer.AddrInfo, bool) {
	s := m.p.Session()
	if s == nil || s.Host() == nil {
		return peer.AddrInfo{}, false
	}
	return s.Host().AddrInfo(), true
}

func (m *inproc) result(poisoner peer.ID) ViewerResult {
	var h *transport.Host
	if s := m.p.Session(); s != nil {
		h = s.Host()
	}
	return viewerResult(m.p.N, m.p.Snapshot(), h, poisoner)
}

// viewerResult turns a snapshot into a record; h, the viewer's libp2p host
// (nil without P2P), adds its bans.
func viewerResult(n int, sn Snapshot, h *transport.Host, poisoner peer.ID) ViewerResult {
	v := ViewerResult{N: n, BytesFromPeers: sn.Stats.BytesFromPeers, BytesFromOrigin: sn.Stats.BytesFromOrigin, BytesUploaded: sn.Stats.BytesUploaded}
	switch sn.State {
	case StateDone:
		v.StartupMS, v.Stalls, v.StallMS = sn.Result.Startup.Milliseconds(), sn.Result.Stalls, sn.Result.StallTime.Milliseconds()
	case StateLeft:
		// The viewer's own counters stop at Play; the session's playback
		// model (same rules) gives the start-up and stall time until Leave.
		v.Left = true
		v.StartupMS, v.Stalls, v.StallMS = sn.Stats.StartupTime.Milliseconds(), sn.Result.Stalls, sn.Stats.StallTime.Milliseconds()
	case StateError:
		if sn.Err != nil {
			v.Error = sn.Err.Error()
		}
	default:
		v.Error = "did not finish (" + string(sn.State) + ")"
	}
	if h != nil {
		v.PeerID = h.ID().String()
		v.Bans = h.Stats().Bans
		if poisoner != "" {
			v.BannedPoisoner = h.Banned(poisoner)
		}
	}
	return v
}

// selfHWM is this process's peak resident set (VmHWM), KiB.
func selfHWM() int64 { return procHWM("self") }

func procHWM(pid string) int64 {
	f, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n
		}
	}
	return 0
}
