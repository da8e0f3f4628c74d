package license

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sealmesh/sealmesh/keys"
)

// TestWindowAdmit is the window's decision as a pure function.
func TestWindowAdmit(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	nominal := periodClock{nominal: 2}
	uneven := periodClock{starts: map[int]float64{0: 0, 1: 10, 2: 12, 3: 30, 4: 31}}
	for _, tc := range []struct {
		name      string
		w         keyWindow
		lo, hi    int
		after     time.Duration
		pc        periodClock
		wantLo    int
		wantHi    int
		wantRetry time.Duration // 0: admitted
	}{
		{"start pair", newWindow(4, t0), 4, 5, 0, nominal, 4, 5, 0},
		{"three at once", newWindow(4, t0), 4, 6, 0, nominal, 0, 0, time.Second},
		{"next pair at 1 s (speed 2)", keyWindow{Start: 4, Lo: 4, Hi: 5, Began: t0}, 5, 6, time.Second, nominal, 4, 6, 0},
		{"re-asking given keys", keyWindow{Start: 4, Lo: 4, Hi: 5, Began: t0}, 4, 5, 0, nominal, 4, 5, 0},
		{"one back counts as one ahead", keyWindow{Start: 4, Lo: 4, Hi: 5, Began: t0}, 3, 3, 0, nominal, 0, 0, time.Second},
		{"far ahead", keyWindow{Start: 0, Lo: 0, Hi: 1, Began: t0}, 10, 11, 3 * time.Second, nominal, 0, 0, 7 * time.Second},
		{"uneven: period 1 is 10 s in", keyWindow{Start: 0, Lo: 0, Hi: 1, Began: t0}, 2, 2, 4 * time.Second, uneven, 0, 0, time.Second},
		{"uneven: then 2 and 3 come quickly", keyWindow{Start: 0, Lo: 0, Hi: 1, Began: t0}, 2, 3, 6 * time.Second, uneven, 0, 3, 0},
		{"uneven: period 3 at 6 s", keyWindow{Start: 0, Lo: 0, Hi: 2, Began: t0}, 3, 3, 6 * time.Second, uneven, 0, 3, 0},
		{"beyond the last period", keyWindow{Start: 0, Lo: 0, Hi: 4, Began: t0}, 5, 6, time.Hour, uneven, 0, 0, 24 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.w.admit(tc.lo, tc.hi, t0.Add(tc.after), 2, tc.pc)
			if tc.wantRetry == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if got.Lo != tc.wantLo || got.Hi != tc.wantHi {
					t.Fatalf("window %d..%d, want %d..%d", got.Lo, got.Hi, tc.wantLo, tc.wantHi)
				}
				return
			}
			var ae *apiError
			if !errors.As(err, &ae) || ae.code != CodeKeyWindowAhead || ae.status != http.StatusTooManyRequests {
				t.Fatalf("want 429 %s, got %v", CodeKeyWindowAhead, err)
			}
			if got := time.Duration(ae.retryAfter) * time.Second; got != tc.wantRetry {
				t.Fatalf("Retry-After %v, want %v", got, tc.wantRetry)
			}
			if got != tc.w {
				t.Fatalf("a refusal changed the window: %+v", got)
			}
		})
	}
}

// keepingWriter records the very slices written to it (no copy), as a
// ResponseWriter whose buffer is the caller's would.
type keepingWriter struct {
	*httptest.ResponseRecorder
	written [][]byte
}

func (w *keepingWriter) Write(b []byte) (int, error) {
	w.written = append(w.written, b)
	return w.ResponseRecorder.Write(b)
}

// TestClearKeyBodyWiped: the Clear Key body is correct JSON, and the buffer
// it was written from holds only zeros once writeClearKey returns; the
// server's copies of the keys are zeroed by wipeKeys.
func TestClearKeyBodyWiped(t *testing.T) {
	var ks []keys.ContentKey
	for p := range 3 {
		k, err := keys.NewContentKey(p)
		if err != nil {
			t.Fatal(err)
		}
		ks = append(ks, k)
	}
	w := &keepingWriter{ResponseRecorder: httptest.NewRecorder()}
	writeClearKey(w, ks)
	var resp ClearKeyResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	if resp.Type != "temporary" || len(resp.Keys) != 3 {
		t.Fatalf("body %+v", resp)
	}
	for i, k := range resp.Keys {
		kid := ks[i].KID()
		if k.Kty != "oct" || k.KID != b64.EncodeToString(kid[:]) || k.K != b64.EncodeToString(ks[i].InsecureRawKey()) {
			t.Fatalf("key %d: %+v", i, k)
		}
	}
	for _, b := range w.written {
		if !bytes.Equal(b, make([]byte, len(b))) {
			t.Fatalf("the body buffer still holds %q after the write", b)
		}
	}
	wipeKeys(ks)
	for _, k := range ks {
		if !bytes.Equal(k.InsecureRawKey(), make([]byte, keys.ContentKeySize)) {
			t.Fatal("wipeKeys left key bytes")
		}
	}
}
