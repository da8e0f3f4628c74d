package swarmbench

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/sealmesh/sealmesh/internal/stack"
	"github.com/sealmesh/sealmesh/internal/viewer"
	"github.com/sealmesh/sealmesh/player"
	"github.com/sealmesh/sealmesh/segment"
	"github.com/sealmesh/sealmesh/transport"
)

// Target is what a viewer needs to know about the service it watches.
type Target struct {
	Content      string
	OriginURL    string
	LicenseURL   string
	LicenseKeys  []ed25519.PublicKey
	ManifestKeys segment.TrustedKeys
	// Token mints the viewer's entitlement token.
	Token func(account string) func(context.Context) (string, error)
}

// TargetOf returns the target of a running stack.
func TargetOf(st *stack.Stack) Target {
	return Target{
		Content: st.ContentID, OriginURL: st.OriginURL, LicenseURL: st.LicenseURL,
		LicenseKeys: st.LicenseKeys, ManifestKeys: st.ManifestKeys, Token: st.TokenFunc,
	}
}

// PeerConfig says how one viewer plays. Zero values are documented.
type PeerConfig struct {
	// Speed: zero 1.
	Speed float64
	// NoP2P plays from the origin only.
	NoP2P bool
	// Upload limits what the viewer serves (UploadPolicy.MaxRate is the
	// upload cap).
	Upload transport.UploadPolicy
	// HTTPClient is the player's client for the origin and the license
	// server (a shaped one, see Shaper). Zero: the player's default.
	HTTPClient *http.Client
	// Logger: zero discards.
	Logger *slog.Logger
}

// State is where a viewer is in its life.
type State string

// States, in order.
const (
	StateWaiting State = "waiting"
	StateJoining State = "joining"
	StatePlaying State = "playing"
	StateDone    State = "done"
	StateLeft    State = "left"
	StateError   State = "error"
)

// Peer is one in-process viewer. Its methods are safe for concurrent use.
type Peer struct {
	N int // 1-based

	mu       sync.Mutex
	sess     *player.Session
	view     *viewer.Viewer
	res      viewer.Result
	err      error
	state    State
	left     bool
	cancel   context.CancelFunc
	final    *player.Stats // frozen at Leave
	joinedAt time.Time
}

// NewPeer returns a waiting viewer numbered n.
func NewPeer(n int) *Peer { return &Peer{N: n, state: StateWaiting} }

// Snapshot is a consistent view of a Peer.
type Snapshot struct {
	State    State
	Stats    player.Stats // zero before the session opens
	Progress viewer.Progress
	Result   viewer.Result // valid once State is StateDone
	Err      error
	JoinedAt time.Time
}

// Snapshot returns the viewer's state now.
func (p *Peer) Snapshot() Snapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Snapshot{State: p.state, Result: p.res, Err: p.err, JoinedAt: p.joinedAt}
	switch {
	case p.final != nil:
		s.Stats = *p.final
	case p.sess != nil:
		s.Stats = p.sess.Stats()
	}
	if p.view != nil {
		s.Progress = p.view.Progress()
	}
	return s
}

// Session returns the viewer's session (nil before it opens or if Open failed).
func (p *Peer) Session() *player.Session {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sess
}

// Play opens a session for t as account "viewer-N" and plays it to the end
// with a headless viewer; t0 is when the viewer started, for the start-up
// time. The session stays open (serving others) until Close. Play returns
// the error also kept in the snapshot; a viewer that Left returns nil.
func (p *Peer) Play(ctx context.Context, t Target, c PeerConfig) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	t0 := time.Now()
	p.mu.Lock()
	if p.left {
		p.mu.Unlock()
		return nil
	}
	p.state, p.cancel, p.joinedAt = StateJoining, cancel, t0
	p.mu.Unlock()
	logger := c.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("viewer", p.N)
	cfg := player.Config{
		Content: t.Content, OriginURL: t.OriginURL, LicenseURL: t.LicenseURL,
		Token: t.Token(fmt.Sprintf("viewer-%d", p.N)), LicenseKeys: t.LicenseKeys, ManifestKeys: t.ManifestKeys,
		Speed: c.Speed, Logger: logger, HTTPClient: c.HTTPClient,
		P2P: player.P2P{Disable: c.NoP2P, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, TrackerInterval: 500 * time.Millisecond, Upload: c.Upload},
	}
	sess, err := player.Open(ctx, cfg)
	p.mu.Lock()
	if err != nil {
		defer p.mu.Unlock()
		if p.left {
			return nil
		}
		p.state, p.err = StateError, err
		return err
	}
	p.sess = sess
	if p.left { // Leave came while Open ran
		p.mu.Unlock()
		sess.Close()
		return nil
	}
	v := viewer.New(viewer.Config{URL: sess.URL(), Speed: c.Speed})
	p.view, p.state = v, StatePlaying
	p.mu.Unlock()
	res, err := v.Play(ctx, t0)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.left {
		return nil
	}
	if err != nil {
		p.state, p.err = StateError, err
		return err
	}
	p.state, p.res = StateDone, res
	return nil
}

// Leave stops the viewer mid-play, the way a person closes the app: its
// counters are frozen and its session closed, so it serves no one any more.
func (p *Peer) Leave() {
	p.mu.Lock()
	if p.left || p.state == StateDone || p.state == StateError {
		p.mu.Unlock()
		return
	}
	p.left = true
	p.state = StateLeft
	if p.cancel != nil {
		p.cancel()
	}
	sess := p.sess
	if sess != nil {
		st := sess.Stats()
		p.final = &st
		if p.view != nil {
			pr := p.view.Progress()
			p.res.Stalls = pr.Stalls
			p.res.Startup = st.StartupTime
		}
	}
	p.mu.Unlock()
	if sess != nil {
		sess.Close()
	}
}

// Close closes the session. It is safe to call more than once.
func (p *Peer) Close() {
	p.mu.Lock()
	sess := p.sess
	p.mu.Unlock()
	if sess != nil {
		sess.Close()
	}
}
