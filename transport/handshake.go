package transport

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/transport"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/libp2p/go-libp2p/p2p/transport/tcpreuse"
	manet "github.com/multiformats/go-multiaddr/net"
)

// A short deadline on inbound TCP handshakes.
//
// go-libp2p gives an accepted TCP connection 15 s to finish multistream,
// the security handshake and the muxer negotiation, and offers no option to
// change it through libp2p.New. For those 15 s a socket that sends nothing
// holds a slot of the resource manager's transient scope, shared by every
// stranger, so 24 such sockets (the default scope) made every new honest
// connection fail. The TCP transport below gets an upgrader whose
// listeners run the same upgrade (Upgrader.Upgrade, which honours its
// context at every step and closes the socket when it ends) under
// Config.HandshakeTimeout instead. Dialling is unchanged.

// tcpTransportWithTimeout returns the TCP transport constructor for
// libp2p.Transport; timeout <= 0 keeps go-libp2p's listener.
func tcpTransportWithTimeout(timeout time.Duration) any {
	if timeout <= 0 {
		return tcp.NewTCPTransport
	}
	return func(u transport.Upgrader, rcmgr network.ResourceManager, shared *tcpreuse.ConnMgr) (*tcp.TcpTransport, error) {
		return tcp.NewTCPTransport(&shortAcceptUpgrader{Upgrader: u, timeout: timeout}, rcmgr, shared)
	}
}

// shortAcceptUpgrader is an Upgrader whose listeners cut inbound
// handshakes at timeout.
type shortAcceptUpgrader struct {
	transport.Upgrader
	timeout time.Duration
}

var _ transport.Upgrader = (*shortAcceptUpgrader)(nil)

// UpgradeListener is the deprecated form of UpgradeGatedMaListener.
func (u *shortAcceptUpgrader) UpgradeListener(t transport.Transport, l manet.Listener) transport.Listener {
	return u.UpgradeGatedMaListener(t, u.GateMaListener(l))
}

// UpgradeGatedMaListener accepts from l (which gates the connection and
// opens its resource scope) and upgrades each connection in its own
// goroutine under the timeout.
func (u *shortAcceptUpgrader) UpgradeGatedMaListener(t transport.Transport, l transport.GatedMaListener) transport.Listener {
	ctx, cancel := context.WithCancel(context.Background())
	sl := &shortAcceptListener{
		GatedMaListener: l, u: u, t: t, ctx: ctx, cancel: cancel,
		incoming: make(chan transport.CapableConn),
	}
	go sl.run()
	return sl
}

type shortAcceptListener struct {
	transport.GatedMaListener
	u        *shortAcceptUpgrader
	t        transport.Transport
	ctx      context.Context
	cancel   context.CancelFunc
	incoming chan transport.CapableConn
	err      error // why run stopped; written before incoming is closed
}

var _ transport.Listener = (*shortAcceptListener)(nil)

func (l *shortAcceptListener) run() {
	var wg sync.WaitGroup
	defer func() {
		_ = l.GatedMaListener.Close()
		wg.Wait()
		close(l.incoming)
	}()
	backoff := 5 * time.Millisecond
	for l.ctx.Err() == nil {
		maconn, scope, err := l.GatedMaListener.Accept()
		if err != nil {
			// Out of file descriptors and the like: wait and go on, as
			// go-libp2p's listener does.
			var temp interface{ Temporary() bool }
			if errors.As(err, &temp) && temp.Temporary() && !errors.Is(err, net.ErrClosed) {
				select {
				case <-time.After(backoff):
				case <-l.ctx.Done():
				}
				backoff = min(2*backoff, time.Second)
				continue
			}
			l.err = err
			return
		}
		backoff = 5 * time.Millisecond
		if scope == nil {
			_ = maconn.Close()
			continue
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(l.ctx, l.u.timeout)
			defer cancel()
			// Upgrade releases the scope and closes the socket on failure,
			// including when ctx ends mid-handshake.
			c, err := l.u.Upgrade(ctx, l.t, maconn, network.DirInbound, "", scope)
			if err != nil {
				_ = maconn.Close()
				return
			}
			select {
			case l.incoming <- c:
			case <-ctx.Done():
				// The swarm did not take it in time (or we are closing).
				_ = c.CloseWithError(network.ConnRateLimited)
			}
		})
	}
}

// Accept returns the next upgraded connection.
func (l *shortAcceptListener) Accept() (transport.CapableConn, error) {
	for c := range l.incoming {
		if !c.IsClosed() {
			return c, nil
		}
	}
	if l.err == nil || errors.Is(l.err, net.ErrClosed) || errors.Is(l.err, transport.ErrListenerClosed) {
		return nil, transport.ErrListenerClosed
	}
	return nil, l.err
}

// Close stops accepting and closes connections upgraded but not taken.
func (l *shortAcceptListener) Close() error {
	err := l.GatedMaListener.Close()
	l.cancel()
	for c := range l.incoming {
		_ = c.Close()
	}
	return err
}
