package license_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
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
// It starts a real server on 127.0.0.1 (real key store, state file with
// fsynced group commits, real EdDSA tokens and their cache; rate limits and
// the stream limit off) and drives it with 64 concurrent clients over
// HTTP/1.1 keep-alive connections, in phases:
//
//  1. crypto alone: the server's per-license crypto (one HPKE context, two
//     seals, an Ed25519 signature and the payload JSON) run inline, and a
//     full token verification, before any load;
//  2. native licenses, full client: every license through license.Client,
//     i.e. a nonce request and a license request, with the client's own
//     HPKE key generation, signature check and unwrapping on the same cores;
//  3. native licenses, server capacity: each worker reuses one HPKE key pair
//     and one token, asks for a nonce and a license, and checks only that
//     the answer is 200 and JSON, as wrk-style load generators measure a
//     server (the client's crypto is not what is being measured);
//  4. Clear Key responses (one request each).
//
// Latencies are per license (both requests). It prints a Markdown table
// with the command line, and writes it to $SEALMESH_LOADGEN_OUT if set.
// SEALMESH_LOADGEN_CLIENTS changes the 64 clients; SEALMESH_LOADGEN_PHASES
// picks phases (full, capacity, clearkey; comma-separated); a CPU profile of the
// whole run comes with -cpuprofile as usual.
func TestLoadgen(t *testing.T) {
	d := os.Getenv("SEALMESH_LOADGEN")
	if d == "" {
		t.Skip("set SEALMESH_LOADGEN=10s to run the load generator")
	}
	dur, err := time.ParseDuration(d)
	require.NoError(t, err)
	clients := 64
	if c := os.Getenv("SEALMESH_LOADGEN_CLIENTS"); c != "" {
		clients, err = strconv.Atoi(c)
		require.NoError(t, err)
	}
	phases := os.Getenv("SEALMESH_LOADGEN_PHASES") // e.g. "capacity,clearkey" to profile some; default all
	want := func(name string) bool { return phases == "" || slices.Contains(strings.Split(phases, ","), name) }
	real := newEnvRealClock(t)
	tr := &http.Transport{MaxIdleConnsPerHost: 2 * clients, MaxIdleConns: 2 * clients}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	loadBefore := loadAvg()
	// 1. Crypto alone, before the load, in this run.
	const cryptoN = 2000
	cx, err := license.CryptoCostN(license.SuiteX25519, cryptoN)
	require.NoError(t, err)
	ch, err := license.CryptoCostN(license.SuiteMLKEM768X25519, cryptoN/4)
	require.NoError(t, err)
	vtok := real.token(t, "verify", []string{movie})
	start := time.Now()
	for range cryptoN {
		_, err := real.verifier.Verify(vtok)
		require.NoError(t, err)
	}
	tv := time.Since(start) / cryptoN

	// 2. Native licenses through license.Client.
	var full, capacity, clearkey phaseResult
	if want("full") {
		full = runPhase(t, clients, dur, func(i int) func() error {
			c := real.client(t, real.token(t, fmt.Sprintf("acct-%d", i), []string{movie}), func(cc *license.ClientConfig) {
				cc.HTTPClient = hc
				cc.Now = time.Now
			})
			return func() error {
				_, err := c.License(context.Background(), license.KeyRequest{Content: movie})
				return err
			}
		})
	}

	// 3. Native licenses, server capacity.
	post := func(path, tok string, body []byte) ([]byte, error) {
		req, _ := http.NewRequest(http.MethodPost, real.url+path, bytes.NewReader(body))
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("%s: status %d: %s", path, resp.StatusCode, b)
		}
		if !json.Valid(b) {
			return nil, fmt.Errorf("%s: answer is not JSON", path)
		}
		return b, nil
	}
	if want("capacity") {
		capacity = runPhase(t, clients, dur, func(i int) func() error {
			tok := real.token(t, fmt.Sprintf("cap-%d", i), []string{movie})
			pub, _ := rawKeyPair(t)
			head := []byte(`{"content":"` + movie + `","hpke_public_key":"` + pub + `","nonce":"`)
			return func() error {
				b, err := post("/v1/nonce", "", nil)
				if err != nil {
					return err
				}
				var n license.NonceResponse
				if err := json.Unmarshal(b, &n); err != nil {
					return err
				}
				body := append(append(slices.Clip(head), n.Nonce...), `"}`...)
				_, err = post("/v1/license", tok, body)
				return err
			}
		})
	}

	// 4. Clear Key.
	kid := real.movieKeys[0].KID()
	ckBody := []byte(`{"kids":["` + b64.EncodeToString(kid[:]) + `"],"type":"temporary"}`)
	if want("clearkey") {
		clearkey = runPhase(t, clients, dur, func(i int) func() error {
			tok := real.token(t, fmt.Sprintf("ck-%d", i), []string{movie})
			return func() error {
				_, err := post("/v1/clearkey", tok, ckBody)
				return err
			}
		})
	}

	var b strings.Builder
	fmt.Fprintf(&b, "Command: `SEALMESH_LOADGEN=%s go test -run TestLoadgen -v ./license/`", d)
	if os.Getenv("SEALMESH_LOADGEN_CLIENTS") != "" {
		fmt.Fprintf(&b, " (SEALMESH_LOADGEN_CLIENTS=%d)", clients)
	}
	fmt.Fprintf(&b, "\n\n%d concurrent clients over loopback HTTP/1.1 keep-alive, %v per phase; %s, %d CPUs (GOMAXPROCS %d) shared by the clients and the server; %s, %s/%s.\n\n",
		clients, dur, cpuModel(), runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(&b, "Load average (1/5/15 min) before the run: %s; after: %s. Other processes on the machine take CPU from both clients and server.\n\n", loadBefore, loadAvg())
	b.WriteString("| measurement | rate | p50 | p99 | errors |\n| --- | ---: | ---: | ---: | ---: |\n")
	row := func(name string, r phaseResult) {
		fmt.Fprintf(&b, "| %s | %.0f/s | %s | %s | %d |\n", name, r.rate, fmtDur(r.p50), fmtDur(r.p99), r.errs)
	}
	row("native license, server capacity (nonce + license; worker reuses its HPKE key and token, checks 200 + JSON)", capacity)
	row("native license, full client (license.Client: nonce + license + client HPKE keygen, Ed25519 verify, unwrap)", full)
	row("Clear Key response", clearkey)
	crypto := func(name string, per time.Duration, n int) {
		fmt.Fprintf(&b, "| crypto alone: %s (%d iterations inline) | %.0f/s on one core | %s/op | | |\n", name, n, 1e9/float64(per.Nanoseconds()), fmtDur(per))
	}
	crypto("license, x25519: 1 HPKE context + 2 seals + Ed25519 sign + payload JSON", cx, cryptoN)
	crypto("license, mlkem768x25519: the same with the hybrid KEM", ch, cryptoN/4)
	crypto("entitlement token verification, EdDSA (skipped on a token cache hit)", tv, cryptoN)
	for _, r := range []phaseResult{capacity, full, clearkey} {
		if r.firstErr != nil {
			fmt.Fprintf(&b, "\nfirst error: %v\n", r.firstErr)
		}
	}
	fmt.Println(b.String())
	if out := os.Getenv("SEALMESH_LOADGEN_OUT"); out != "" {
		require.NoError(t, os.WriteFile(out, []byte(b.String()), 0o644))
	}
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.0f ms", float64(d)/1e6)
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.0f µs", float64(d)/1e3)
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

type phaseResult struct {
	n, errs  int
	rate     float64
	p50, p99 time.Duration
	firstErr error
}

func runPhase(t *testing.T, clients int, dur time.Duration, mk func(i int) func() error) phaseResult {
	var mu sync.Mutex
	var lat []time.Duration
	var res phaseResult
	var wg sync.WaitGroup
	ops := make([]func() error, clients)
	for i := range clients {
		ops[i] = mk(i)
	}
	start := time.Now()
	deadline := start.Add(dur)
	for i := range clients {
		op := ops[i]
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
