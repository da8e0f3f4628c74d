package sched_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/segment"
	"github.com/sealmesh/sealmesh/transport/sched"
)

func TestHTTPOrigin(t *testing.T) {
	c := newContent(t, 2, 10_000)
	good := c.data[media(1)]
	bad := append([]byte(nil), good...)
	bad[5000] ^= 1
	cases := []struct {
		name    string
		handler http.HandlerFunc
		ctx     time.Duration // request timeout; 0: none
		want    error         // errors.Is target; nil: success
		status  int           // *StatusError code expected
		msg     string
		read    int64 // BytesRead after
	}{
		{name: "ok", handler: serve(good), read: 10_000},
		{name: "404", handler: func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, status: 404, msg: "missing or refused"},
		{name: "503", handler: func(w http.ResponseWriter, r *http.Request) { http.Error(w, "busy", http.StatusServiceUnavailable) }, status: http.StatusServiceUnavailable, msg: "retry later"},
		{name: "flipped byte", handler: serve(bad), want: segment.ErrIntegrity, read: 10_000},
		{name: "declared too long", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "1000000")
			_, _ = w.Write(good)
		}, want: segment.ErrIntegrity, msg: "Content-Length 1000000"},
		{name: "oversize body, no length", handler: chunked(append(append([]byte(nil), good...), make([]byte, 1<<20)...)), want: segment.ErrIntegrity, read: 10_001},
		{name: "truncated body, no length", handler: chunked(good[:9000]), want: segment.ErrIntegrity, read: 9000},
		{name: "timeout", handler: func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, ctx: 50 * time.Millisecond, want: context.DeadlineExceeded, msg: "timed out"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			o := &sched.HTTPOrigin{BaseURL: srv.URL + "/clip/", Client: srv.Client(), Manifest: c.m}
			ctx := t.Context()
			if tc.ctx > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.ctx)
				defer cancel()
			}
			data, err := o.Fetch(ctx, media(1))
			switch {
			case tc.status != 0:
				var se *sched.StatusError
				require.ErrorAs(t, err, &se)
				require.Equal(t, tc.status, se.StatusCode)
			case tc.want != nil:
				require.ErrorIs(t, err, tc.want)
			default:
				require.NoError(t, err)
				require.Equal(t, good, data)
			}
			if tc.msg != "" {
				require.Contains(t, err.Error(), tc.msg)
			}
			require.Equal(t, tc.read, o.BytesRead())
		})
	}
}

func TestHTTPOriginUnknownPathMakesNoRequest(t *testing.T) {
	c := newContent(t, 1, 100)
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	o := &sched.HTTPOrigin{BaseURL: srv.URL, Manifest: c.m}
	for _, p := range []string{"v1/99.m4s", "../etc/passwd", "sealmesh.json"} {
		_, err := o.Fetch(t.Context(), p)
		require.ErrorIs(t, err, segment.ErrUnknownFile, p)
	}
	require.Zero(t, hits.Load())
}

func TestHTTPOriginPathLayout(t *testing.T) {
	c := newContent(t, 1, 100)
	var got atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.URL.Path)
		_, _ = w.Write(c.data[strings.TrimPrefix(r.URL.Path, "/vod/clip/")])
	}))
	defer srv.Close()
	for _, base := range []string{srv.URL + "/vod/clip", srv.URL + "/vod/clip/"} {
		o := &sched.HTTPOrigin{BaseURL: base, Manifest: c.m}
		_, err := o.Fetch(t.Context(), media(1))
		require.NoError(t, err, base)
		require.Equal(t, "/vod/clip/v1/1.m4s", got.Load())
	}
}

func serve(data []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		_, _ = w.Write(data)
	}
}

// chunked answers without a Content-Length, so only the bounded read can
// tell the body is the wrong size.
func chunked(data []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.(http.Flusher).Flush()
		_, _ = w.Write(data)
	}
}
