package stack

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
)

// licenseListener is the license server's current listener, which tests
// close and reopen to play an outage.
type licenseListener struct {
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

func (st *Stack) serveLicense(ln net.Listener) {
	ctx, cancel := context.WithCancel(st.sctx)
	done := make(chan struct{})
	st.lic.mu.Lock()
	st.lic.cancel, st.lic.done = cancel, done
	st.lic.mu.Unlock()
	go func() { defer close(done); _ = st.server.Serve(ctx, ln) }()
}

// StopLicense closes the license server's listener and its connections, as
// a crash or a network cut would look to players: connections are refused
// until StartLicense. It returns once the listener is closed; it is a no-op
// when the server is already stopped.
func (st *Stack) StopLicense() {
	st.lic.mu.Lock()
	cancel, done := st.lic.cancel, st.lic.done
	st.lic.cancel, st.lic.done = nil, nil
	st.lic.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

// StartLicense serves the license server again on the address it had (same
// state, keys and sessions), after StopLicense.
func (st *Stack) StartLicense() error {
	st.lic.mu.Lock()
	running := st.lic.cancel != nil
	st.lic.mu.Unlock()
	if running {
		return errors.New("stack: the license server is running")
	}
	ln, err := net.Listen("tcp", strings.TrimPrefix(st.LicenseURL, "http://"))
	if err != nil {
		return err
	}
	st.serveLicense(ln)
	return nil
}
