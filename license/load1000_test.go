package license_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestLoad1000ConcurrentClients is the load row of SECURITY.md's DoS
// defences and a line of BENCHMARKS.md. It runs only with SEALMESH_LOAD=1:
//
//	SEALMESH_LOAD=1 go test -run TestLoad1000ConcurrentClients -v -timeout 10m ./license/
//	SEALMESH_LOAD=1 SEALMESH_LOAD_DURATION=20s SEALMESH_LOAD_CLIENTS=1000 go test ...
//
// 1,000 concurrent honest clients (60 s by default), each with an account
// and a keep-alive connection of its own, loop over a nonce + native
// license (even clients) or a Clear Key request (odd clients) against a real
// server on 127.0.0.1 with its real state file and fsynced group commits.
// Honest clients must see zero errors; the rate limits and the stream limit
// are raised out of the way, since a 429 for an honest client here would be
// a misconfigured test, not a finding. Memory (HeapInuse of this process,
// which holds the server and the clients) is reported at the start, at the
// peak and at the end, and must stay under 1 GiB. The last line printed is
// the Markdown row for BENCHMARKS.md.
func TestLoad1000ConcurrentClients(t *testing.T) {
	if os.Getenv("SEALMESH_LOAD") != "1" {
		t.Skip("set SEALMESH_LOAD=1 to run the 1,000-client load test")
	}
	dur := 60 * time.Second
	if d := os.Getenv("SEALMESH_LOAD_DURATION"); d != "" {
		var err error
		dur, err = time.ParseDuration(d)
		require.NoError(t, err)
	}
	clients := 1000
	if c := os.Getenv("SEALMESH_LOAD_CLIENTS"); c != "" {
		var err error
		clients, err = strconv.Atoi(c)
		require.NoError(t, err)
	}
	e := newEnv(t, func(e *env) {
		e.cfg.MaxStreamsPerAccount = -1 // each client holds many sessions over the run
		e.clock = &clock{real: true}
	})
	tr := &http.Transport{MaxIdleConns: 2 * clients, MaxIdleConnsPerHost: 2 * clients}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	kid := e.movieKeys[0].KID()
	ckBody := []byte(`{"kids":["` + b64.EncodeToString(kid[:]) + `"],"type":"temporary"}`)
	pub, _ := rawKeyPair(t)
	toks := make([]string, clients)
	for i := range toks {
		toks[i] = e.token(t, fmt.Sprintf("load-%d", i), []string{movie})
	}

	runtime.GC()
	startHeap, startG := heapInuse(), runtime.NumGoroutine()
	var peak atomic.Uint64
	ctx, stop := context.WithCancel(context.Background())
	var sampler sync.WaitGroup
	sampler.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if h := heapInuse(); h > peak.Load() {
				peak.Store(h)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	var licenses, clearkeys atomic.Int64
	res := runPhase(t, clients, dur, func(i int) func() error {
		if i%2 == 0 {
			return func() error {
				err := honestLicense(context.Background(), hc, e.url, toks[i], pub)
				if err == nil {
					licenses.Add(1)
				}
				return err
			}
		}
		return func() error {
			err := honestPost(context.Background(), hc, e.url+"/v1/clearkey", toks[i], ckBody, nil)
			if err == nil {
				clearkeys.Add(1)
			}
			return err
		}
	})
	endHeap, endG := heapInuse(), runtime.NumGoroutine()
	stop()
	sampler.Wait()
	active := e.state.ActiveSessions(time.Now())

	line := fmt.Sprintf("| license server, %d concurrent clients for %v (half nonce + native license, half Clear Key; own account and keep-alive connection each) | %.0f ops/s (%d licenses, %d Clear Key; an op is nonce + license, or one Clear Key request) | p50 %s, p99 %s | %d errors | HeapInuse %d MiB at start, %d MiB peak, %d MiB at end (%d live sessions); goroutines %d → %d | %d CPUs, %s |",
		clients, dur, res.rate, licenses.Load(), clearkeys.Load(), fmtDur(res.p50), fmtDur(res.p99), res.errs,
		startHeap>>20, peak.Load()>>20, endHeap>>20, active, startG, endG, runtime.NumCPU(), runtime.Version())
	t.Log(line)
	fmt.Println(line)
	require.Zero(t, res.errs, "honest clients saw errors; first: %v", res.firstErr)
	require.Positive(t, licenses.Load())
	require.Positive(t, clearkeys.Load())
	require.Less(t, peak.Load(), uint64(1<<30), "heap in use reached %d MiB", peak.Load()>>20)
}
