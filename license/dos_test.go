package license_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/license"
)

// TestDoSSlowAndHugeBodiesDoNotStarveHonestClients backs the "license-server
// abuse and DoS" row of SECURITY.md. A real server on 127.0.0.1 with its
// default per-IP and per-account rate limits (the attackers and every honest
// worker dial from their own loopback address, 127.0.x.y, so each has a
// bucket of its own, as distinct hosts on the Internet would) is attacked by
//
//   - 200 idle connections that never send a byte (a connection flood),
//   - 50 slow-body clients: headers announcing a 4,000-byte JSON body, a few
//     bytes of it, then nothing (slowloris on the body),
//   - 20 huge-body clients streaming 10 MiB each,
//
// while 200 honest requests (nonce + native license, or a Clear Key request,
// each for an account of its own) run through it. It asserts that
//
//   - at least 90% of the honest requests succeed, and all of them finish
//     within a generous bound (they need no attacker to leave first: half
//     of them run at once, half 3 s into the attack, while the idle and
//     slow connections are still held);
//   - every huge body is refused with 413 after at most MaxBody bytes, so
//     the server's heap grows by far less than the 200 MiB sent;
//   - the server itself ends every idle and every slow connection (its
//     ReadHeaderTimeout and ReadTimeout: 5 s and 10 s), rather than waiting
//     for the attacker to give up;
//   - once the attackers are gone, the goroutines are back to where they
//     started.
//
// Timeouts and sizes are the server's constants; nothing here is shortened,
// so the test lasts about 11 s (the 10 s read timeout).
func TestDoSSlowAndHugeBodiesDoNotStarveHonestClients(t *testing.T) {
	const (
		idleConns   = 200
		slowClients = 50
		hugeClients = 20
		hugeBytes   = 10 << 20
		honestN     = 200
		workers     = 10
	)
	if runtime.GOOS != "linux" {
		t.Skip("dials from 127.0.x.y, which only Linux routes to loopback by default")
	}
	// Default rate limits and stream limit (testConfig turns them off).
	e := newEnv(t, withConfig(func(c *license.Config) { c.IPRate, c.AccountRate = 0, 0 }))
	addr := strings.TrimPrefix(e.url, "http://")

	// Honest work is prepared first: a token per request (so the per-account
	// stream limit of 4 is never the reason for a refusal).
	kid := e.movieKeys[0].KID()
	ckBody, err := json.Marshal(license.ClearKeyRequest{KIDs: []string{b64.EncodeToString(kid[:])}, Type: "temporary"})
	require.NoError(t, err)
	toks := make([]string, honestN)
	for i := range toks {
		toks[i] = e.token(t, fmt.Sprintf("honest-%d", i), []string{movie})
	}
	pub, _ := rawKeyPair(t)

	// Warm up (lazy initialisation in net/http and the server), then measure.
	warm := e.do(t, http.MethodPost, "/v1/nonce", "", nil)
	require.Equal(t, http.StatusOK, warm.status)
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	baseG := goroutinesSettled()
	baseHeap := heapInuse()

	var peakHeap atomic.Uint64
	sampleCtx, stopSampling := context.WithCancel(context.Background())
	var sampler sync.WaitGroup
	sampler.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if h := heapInuse(); h > peakHeap.Load() {
				peakHeap.Store(h)
			}
			select {
			case <-sampleCtx.Done():
				return
			case <-tick.C:
			}
		}
	})

	attackStart := time.Now()
	var attackers sync.WaitGroup

	// 1. Connection flood: idle connections. serverClosed records how long
	// the server took to hang up on each.
	idleClosed := make(chan time.Duration, idleConns)
	for i := range idleConns {
		c := dialFrom(t, fmt.Sprintf("127.0.2.%d", 1+i%200), addr)
		attackers.Go(func() {
			defer c.Close()
			_, _ = io.Copy(io.Discard, c) // returns when the server closes
			idleClosed <- time.Since(attackStart)
		})
	}

	// 2. Slow bodies: a valid header, 5 bytes of a 4,000-byte body, then
	// silence. The rate limiter lets them in (each class has its own
	// address, within the burst), so the body read is what must time out.
	slowClosed := make(chan time.Duration, slowClients)
	for range slowClients {
		c := dialFrom(t, "127.0.3.1", addr)
		_, err := fmt.Fprintf(c, "POST /v1/license HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n{\"con", addr)
		require.NoError(t, err)
		attackers.Go(func() {
			defer c.Close()
			_, _ = io.Copy(io.Discard, c)
			slowClosed <- time.Since(attackStart)
		})
	}

	// 3. Huge bodies: 10 MiB each, written as fast as the server reads,
	// while the answer is read concurrently.
	hugeStatus := make(chan string, hugeClients)
	var hugeSent atomic.Int64
	chunk := bytes.Repeat([]byte{'['}, 64<<10)
	for range hugeClients {
		c := dialFrom(t, "127.0.4.1", addr)
		attackers.Go(func() {
			defer c.Close()
			go func() {
				if _, err := fmt.Fprintf(c, "POST /v1/license HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", addr, hugeBytes); err != nil {
					return
				}
				for sent := 0; sent < hugeBytes; sent += len(chunk) {
					n, err := c.Write(chunk)
					hugeSent.Add(int64(n))
					if err != nil {
						return
					}
				}
			}()
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				hugeStatus <- "error: " + err.Error()
				return
			}
			hugeStatus <- strings.TrimSpace(line)
		})
	}

	// 4. Honest clients, during the attack: each worker dials from its own
	// address and alternates native licenses and Clear Key requests.
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	honestStart := time.Now()
	honestCtx, cancelHonest := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelHonest()
	var honest sync.WaitGroup
	for w := range workers {
		local := fmt.Sprintf("127.0.1.%d", w+1)
		tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}).DialContext}
		hc := &http.Client{Transport: tr, Timeout: 20 * time.Second}
		honest.Go(func() {
			defer tr.CloseIdleConnections()
			for i := w; i < honestN; i += workers {
				if i == honestN/2+w {
					// The second half runs 3 s into the attack, while the
					// idle and slow connections are still held open.
					time.Sleep(time.Until(attackStart.Add(3 * time.Second)))
				}
				var err error
				if i%2 == 0 {
					err = honestLicense(honestCtx, hc, e.url, toks[i], pub)
				} else {
					err = honestPost(honestCtx, hc, e.url+"/v1/clearkey", toks[i], ckBody, nil)
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				ok.Add(1)
			}
		})
	}
	honest.Wait()
	honestTook := time.Since(honestStart)
	t.Logf("honest: %d ok, %d failed in %v (first error: %v); huge bodies sent %d MiB", ok.Load(), failed.Load(), honestTook.Round(time.Millisecond), firstErr.Load(), hugeSent.Load()>>20)
	require.GreaterOrEqual(t, ok.Load(), int64(honestN*9/10), "honest clients starved; first error: %v", firstErr.Load())
	require.Less(t, honestTook, 30*time.Second)

	// The server, not the attacker, ends every attacking connection. The
	// attackers here never give up; the bound is twice the read timeout.
	waitAll := func(name string, ch chan time.Duration, n int, within time.Duration) time.Duration {
		t.Helper()
		var last time.Duration
		timeout := time.After(time.Until(attackStart.Add(within)))
		for i := range n {
			select {
			case d := <-ch:
				last = max(last, d)
			case <-timeout:
				t.Fatalf("%s: only %d of %d connections closed by the server within %v", name, i, n, within)
			}
		}
		return last
	}
	lastIdle := waitAll("idle connections", idleClosed, idleConns, 20*time.Second)
	lastSlow := waitAll("slow bodies", slowClosed, slowClients, 25*time.Second)
	t.Logf("server closed the idle connections within %v and the slow bodies within %v", lastIdle.Round(time.Millisecond), lastSlow.Round(time.Millisecond))

	got413 := 0
	for range hugeClients {
		s := <-hugeStatus
		require.NotContains(t, s, " 200 ", "a 10 MiB body was accepted")
		if strings.HasPrefix(s, "HTTP/1.1 413 ") {
			got413++
		}
	}
	attackers.Wait()
	stopSampling()
	sampler.Wait()
	t.Logf("huge bodies: %d of %d refused with 413", got413, hugeClients)
	require.GreaterOrEqual(t, got413, hugeClients*3/4, "huge bodies must be refused with 413 body_too_large")

	grown := int64(peakHeap.Load()) - int64(baseHeap)
	t.Logf("heap in use: %d MiB before, %d MiB at the peak of the attack", baseHeap>>20, peakHeap.Load()>>20)
	require.Less(t, grown, int64(64<<20), "the server's heap grew by %d MiB under %d MiB of hostile bodies", grown>>20, hugeClients*hugeBytes>>20)

	// Every connection's goroutine is gone once the attackers are.
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	require.Eventually(t, func() bool { return runtime.NumGoroutine() <= baseG+10 }, 10*time.Second, 50*time.Millisecond,
		"goroutines: %d before the attack, %d after", baseG, runtime.NumGoroutine())

	// And the server still serves.
	require.Equal(t, http.StatusOK, e.do(t, http.MethodPost, "/v1/nonce", "", nil).status)
}

// dialFrom opens a TCP connection to addr from the loopback address local.
func dialFrom(t testing.TB, local, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", addr)
	require.NoError(t, err)
	return c
}

// honestLicense asks for a nonce then a native license, as a player does
// (reusing one HPKE public key: the client's crypto is not under test).
func honestLicense(ctx context.Context, hc *http.Client, base, tok, pub string) error {
	var n license.NonceResponse
	if err := honestPost(ctx, hc, base+"/v1/nonce", "", nil, &n); err != nil {
		return err
	}
	body, err := json.Marshal(license.LicenseRequest{Content: movie, HPKEPublicKey: pub, Nonce: n.Nonce})
	if err != nil {
		return err
	}
	var lr struct {
		License   string `json:"license"`
		Signature string `json:"signature"`
	}
	if err := honestPost(ctx, hc, base+"/v1/license", tok, body, &lr); err != nil {
		return err
	}
	if lr.License == "" || lr.Signature == "" {
		return fmt.Errorf("license answer without license or signature")
	}
	return nil
}

// honestPost POSTs body and wants 200 with a JSON answer, decoded into out
// when out is not nil.
func honestPost(ctx context.Context, hc *http.Client, url, tok string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: status %d: %s", url, resp.StatusCode, b)
	}
	if out == nil {
		if !json.Valid(b) {
			return fmt.Errorf("%s: answer is not JSON", url)
		}
		return nil
	}
	return json.Unmarshal(b, out)
}

func heapInuse() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// goroutinesSettled waits briefly for goroutines that are finishing (closed
// connections, timers) and returns the count.
func goroutinesSettled() int {
	n := runtime.NumGoroutine()
	for range 20 {
		time.Sleep(10 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m == n {
			break
		}
		n = m
	}
	return n
}
