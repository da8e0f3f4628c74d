package swarmbench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/sealmesh/sealmesh/segment"
	"github.com/sealmesh/sealmesh/transport"
)

// ChildSpec is what a viewer process is told on its standard input (one
// JSON line; the token travels here, never in argv where ps shows it).
type ChildSpec struct {
	N            int               `json:"n"`
	Content      string            `json:"content"`
	OriginURL    string            `json:"origin_url"`
	LicenseURL   string            `json:"license_url"`
	Token        string            `json:"token"`
	LicenseKeys  [][]byte          `json:"license_keys"`
	ManifestKeys map[string][]byte `json:"manifest_keys"`
	Speed        float64           `json:"speed"`
	NoP2P        bool              `json:"no_p2p"`
	DownBytes    int64             `json:"down_bytes"`
	UpBytes      int64             `json:"up_bytes"`
	LatencyMS    int64             `json:"latency_ms"`
	Poisoner     string            `json:"poisoner,omitempty"`
}

// childEvent is one line a viewer process prints.
type childEvent struct {
	Event  string        `json:"event"` // open, played, final
	PeerID string        `json:"peer_id,omitempty"`
	Addrs  []string      `json:"addrs,omitempty"`
	Result *ViewerResult `json:"result,omitempty"`
}

// RunChild is the body of 'sealmesh bench viewer': it reads a ChildSpec
// from in, plays, and prints events to out: "open" (with its peer ID and
// addresses) once its session is up, "played" at the end of the content,
// and "final" (its ViewerResult with its own VmHWM) once in reaches EOF.
// EOF before the end of the content makes it leave mid-play (churn).
// Finished viewers keep serving until EOF, like in-process ones.
func RunChild(ctx context.Context, in io.Reader, out io.Writer) error {
	br := bufio.NewReader(in)
	line, err := br.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("bench viewer: read spec: %w", err)
	}
	var sp ChildSpec
	if err := json.Unmarshal(line, &sp); err != nil {
		return fmt.Errorf("bench viewer: spec: %w", err)
	}
	t := Target{Content: sp.Content, OriginURL: sp.OriginURL, LicenseURL: sp.LicenseURL, ManifestKeys: segment.TrustedKeys{},
		Token: func(string) func(context.Context) (string, error) {
			return func(context.Context) (string, error) { return sp.Token, nil }
		}}
	for _, k := range sp.LicenseKeys {
		t.LicenseKeys = append(t.LicenseKeys, ed25519.PublicKey(k))
	}
	for id, k := range sp.ManifestKeys {
		t.ManifestKeys[id] = ed25519.PublicKey(k)
	}
	sh := Shaping{DownBytes: sp.DownBytes, UpBytes: sp.UpBytes, Latency: time.Duration(sp.LatencyMS) * time.Millisecond}
	cfg := PeerConfig{Speed: sp.Speed, NoP2P: sp.NoP2P, Upload: transport.UploadPolicy{MaxRate: sp.UpBytes}, HTTPClient: sh.Client()}
	var mu sync.Mutex
	enc := json.NewEncoder(out)
	emit := func(e childEvent) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(e)
	}
	p := NewPeer(sp.N)
	defer p.Close()
	played := make(chan struct{})
	go func() {
		defer close(played)
		_ = p.Play(ctx, t, cfg)
	}()
	go func() {
		for {
			if s := p.Session(); s != nil && s.Host() != nil {
				ai := s.Host().AddrInfo()
				e := childEvent{Event: "open", PeerID: ai.ID.String()}
				for _, a := range ai.Addrs {
					e.Addrs = append(e.Addrs, a.String())
				}
				emit(e)
				return
			}
			select {
			case <-played:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	eof := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, br); close(eof) }()
	select {
	case <-played:
		emit(childEvent{Event: "played"})
		select {
		case <-eof:
		case <-ctx.Done():
		}
	case <-eof:
		p.Leave()
		<-played
	case <-ctx.Done():
		p.Leave()
		<-played
	}
	var h *transport.Host
	if s := p.Session(); s != nil {
		h = s.Host()
	}
	var pid peer.ID
	if sp.Poisoner != "" {
		pid, _ = peer.Decode(sp.Poisoner)
	}
	v := viewerResult(sp.N, p.Snapshot(), h, pid)
	v.PeakRSSKiB = selfHWM()
	emit(childEvent{Event: "final", Result: &v})
	return nil
}

// child is a member that plays as its own OS process.
type child struct {
	n        int
	o        Options
	t        Target
	poisoner string

	mu     sync.Mutex
	st     State
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	ai     *peer.AddrInfo
	final  *ViewerResult
	events chan childEvent
	exited chan struct{}
	stderr bytes.Buffer
}

func newChild(n int, o Options, t Target, p *Poisoner) *child {
	c := &child{n: n, o: o, t: t, st: StateWaiting, events: make(chan childEvent, 4), exited: make(chan struct{})}
	if p != nil {
		c.poisoner = p.ID().String()
	}
	return c
}

func (c *child) play(ctx context.Context) error {
	if c.o.Exe == "" {
		return errors.New("processes mode needs the sealmesh-bench binary (Options.Exe)")
	}
	tok, err := c.t.Token(fmt.Sprintf("viewer-%d", c.n))(ctx)
	if err != nil {
		return err
	}
	sp := ChildSpec{N: c.n, Content: c.t.Content, OriginURL: c.t.OriginURL, LicenseURL: c.t.LicenseURL, Token: tok,
		ManifestKeys: map[string][]byte{}, Speed: c.o.Speed, NoP2P: c.o.NoP2P,
		DownBytes: c.o.Shaping.DownBytes, UpBytes: c.o.Shaping.UpBytes, LatencyMS: c.o.Shaping.Latency.Milliseconds(), Poisoner: c.poisoner}
	for _, k := range c.t.LicenseKeys {
		sp.LicenseKeys = append(sp.LicenseKeys, k)
	}
	for id, k := range c.t.ManifestKeys {
		sp.ManifestKeys[id] = k
	}
	line, err := json.Marshal(sp)
	if err != nil {
		return err
	}
	// Not CommandContext: the child is ended by closing its stdin, so it
	// reports; the context only bounds the wait below.
	cmd := exec.Command(c.o.Exe, "viewer") // sealmesh-bench viewer
	cmd.Stderr = &limitedBuffer{b: &c.stderr, max: 8 << 10}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.st == StateLeft { // left before joining
		c.mu.Unlock()
		return nil
	}
	if err := cmd.Start(); err != nil {
		c.mu.Unlock()
		return fmt.Errorf("start viewer process: %w", err)
	}
	c.cmd, c.stdin, c.st = cmd, stdin, StateJoining
	c.mu.Unlock()
	go c.read(stdout)
	if _, err := stdin.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("viewer process: %w", err)
	}
	for {
		select {
		case e, ok := <-c.events:
			if !ok {
				return c.exitErr()
			}
			switch e.Event {
			case "played":
				c.setState(StateDone)
				return nil
			case "final":
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (c *child) read(r io.Reader) {
	defer close(c.exited)
	defer close(c.events)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var e childEvent
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		switch e.Event {
		case "open":
			ai := peer.AddrInfo{}
			ai.ID, _ = peer.Decode(e.PeerID)
			for _, s := range e.Addrs {
				if a, err := ma.NewMultiaddr(s); err == nil {
					ai.Addrs = append(ai.Addrs, a)
				}
			}
			c.mu.Lock()
			c.ai = &ai
			if c.st == StateJoining {
				c.st = StatePlaying
			}
			c.mu.Unlock()
		case "final":
			c.mu.Lock()
			c.final = e.Result
			c.mu.Unlock()
		}
		select {
		case c.events <- e:
		default:
		}
	}
	if c.cmd != nil {
		_ = c.cmd.Wait()
	}
}

func (c *child) exitErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.final != nil || c.st == StateLeft {
		return nil
	}
	c.st = StateError
	return fmt.Errorf("viewer process exited early: %s", bytes.TrimSpace(c.stderr.Bytes()))
}

func (c *child) setState(s State) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st != StateLeft && c.st != StateError {
		c.st = s
	}
}

func (c *child) leave() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st == StateDone || c.st == StateError || c.st == StateLeft {
		return
	}
	c.st = StateLeft
	if c.stdin != nil {
		c.stdin.Close()
	}
}

func (c *child) state() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st
}

func (c *child) addr() (peer.AddrInfo, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ai == nil {
		return peer.AddrInfo{}, false
	}
	return *c.ai, true
}

// finish asks the process to report and exit.
func (c *child) finish() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stdin != nil {
		c.stdin.Close()
	}
}

func (c *child) result(peer.ID) ViewerResult {
	c.finish()
	c.mu.Lock()
	started := c.cmd != nil
	c.mu.Unlock()
	if started {
		select {
		case <-c.exited:
		case <-time.After(30 * time.Second):
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.final == nil {
		v := ViewerResult{N: c.n, Error: "no result from the viewer process"}
		if c.st == StateError {
			v.Error = "viewer process exited early: " + string(bytes.TrimSpace(c.stderr.Bytes()))
		}
		return v
	}
	v := *c.final
	// The kernel's own peak for the process, as a cross-check of VmHWM.
	if c.cmd != nil && c.cmd.ProcessState != nil {
		v.PeakRSSKiB = max(v.PeakRSSKiB, peakRSSKiB(c.cmd.ProcessState))
	}
	if v.Left {
		c.st = StateLeft
	}
	return v
}

func (c *child) close() {
	c.finish()
	c.mu.Lock()
	cmd := c.cmd
	c.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-c.exited
	}
}

// limitedBuffer keeps the first max bytes of a child's stderr.
type limitedBuffer struct {
	b   *bytes.Buffer
	max int
	mu  sync.Mutex
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := l.max - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}
