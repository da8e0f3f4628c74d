package license_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/license"
)

// TestLoadgen is the load generator for BENCHMARKS.md. It runs only when
// SEALMESH_LOADGEN is set to a duration per phase, e.g.
//
//	SEALMESH_LOADGEN=10s go test -run TestLoadgen -v ./license/
//
// It starts a real server on 127.0.0.1 (real key store, state file and
// tokens; rate limits and the stream limit off) and runs 64 concurrent
// clients against it, first asking for native licenses through
// license.Client (each one a nonce and a license request, with the client's
// own HPKE key generation, unwrapping and signature check), then Clear Key
// responses. It reports requests per second and p50/p99 latency per
// license, and the cost of the server-side crypto alone measured in the
// same run. Clients and server share the machine's cores.
func TestLoadgen(t *testing.T) {
	d := os.Getenv("SEALMESH_LOADGEN")
	if d == "" {
		t.Skip("set SEALMESH_LOADGEN=10s to run the load generator")
	}
	dur, err := time.ParseDuration(d)
	require.NoError(t, err)
	const clients = 64
	real := newEnvRealClock(t)
	tr := &http.Transport{MaxIdleConnsPerHost: 2 * clients, MaxIdleConns: 2 * clients}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	native := runPhase(t, clients, dur, func(i int) func() error {
		c := real.client(t, real.token(t, fmt.Sprintf("acct-%d", i), []string{movie}), func(cc *license.ClientConfig) {
			cc.HTTPClient = hc
			cc.Now = time.Now
		})
		return func() error {
			_, err := c.License(context.Background(), license.KeyRequest{Content: movie})
			return err
		}
	})
	kid := real.movieKeys[0].KID()
	ckBody := []byte(`{"kids":["` + b64.EncodeToString(kid[:]) + `"],"type":"temporary"}`)
	clearkey := runPhase(t, clients, dur, func(i int) func() error {
		tok := real.token(t, fmt.Sprintf("ck-%d", i), []string{movie})
		return func() error {
			req, _ := http.NewRequest(http.MethodPost, real.url+"/v1/clearkey", bytes.NewReader(ckBody))
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Content-Type", "application/json")
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		}
	})
	cx := license.CryptoCost(license.SuiteX25519)
	ch := license.CryptoCost(license.SuiteMLKEM768X25519)
	t.Logf("loadgen: %d clients, %v per phase, GOMAXPROCS cores shared by clients and server", clients, dur)
	t.Logf("native licenses (nonce + license, x25519): %s", native)
	t.Logf("Clear Key responses:                      %s", clearkey)
	t.Logf("server crypto alone per license (2x HPKE seal + Ed25519 sign): x25519 %v/op (%.0f/s on one core), mlkem768x25519 %v/op",
		time.Duration(cx.NsPerOp()), 1e9/float64(cx.NsPerOp()), time.Duration(ch.NsPerOp()))
}

type phaseResult struct {
	n, errs  int
	rate     float64
	p50, p99 time.Duration
	firstErr error
}

func (r phaseResult) String() string {
	s := fmt.Sprintf("%d ok in total, %.0f/s, p50 %v, p99 %v, %d errors", r.n, r.rate, r.p50.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond), r.errs)
	if r.firstErr != nil {
		s += fmt.Sprintf(" (first: %v)", r.firstErr)
	}
	return s
}

func runPhase(t *testing.T, clients int, dur time.Duration, mk func(i int) func() error) phaseResult {
	var mu sync.Mutex
	var lat []time.Duration
	var res phaseResult
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(dur)
	for i := range clients {
		op := mk(i)
		wg.Go(func() {
			var mine []time.Duration
			errs := 0
			var first error
			for time.Now().Before(deadline) {
				t0 := time.Now()
				if err := op(); err != nil {
					errs++
					if first == nil {
						first = err
					}
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			res.errs += errs
			if res.firstErr == nil {
				res.firstErr = first
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	res.n = len(lat)
	res.rate = float64(len(lat)) / elapsed.Seconds()
	if len(lat) > 0 {
		res.p50 = lat[len(lat)/2]
		res.p99 = lat[len(lat)*99/100]
	}
	return res
}

// newEnvRealClock is newEnv on the wall clock, with the limits off.
func newEnvRealClock(t *testing.T) *env {
	return newEnv(t, func(e *env) {
		e.cfg.MaxStreamsPerAccount = -1
		e.clock = &clock{real: true}
	})
}
