package sched

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"

	"github.com/sealmesh/sealmesh/segment"
)

// HTTPOrigin fetches files from an HTTP origin or CDN that serves the
// packaged folder: GET BaseURL + "/" + manifest path. It verifies every
// answer against Manifest before returning it. Use it by pointer; the zero
// value of the unexported counters is ready.
type HTTPOrigin struct {
	BaseURL  string            // e.g. "https://cdn.example.com/vod/movie-42"
	Client   *http.Client      // nil: http.DefaultClient (bound each fetch with its ctx)
	Manifest *segment.Manifest // the verified manifest of the content

	once  sync.Once
	files map[string]segment.File
	read  atomic.Int64
}

var _ Origin = (*HTTPOrigin)(nil)

// StatusError is an origin answer other than 200 OK.
type StatusError struct {
	URL        string
	StatusCode int
}

func (e *StatusError) Error() string {
	hint := "the origin failed; it may recover, retry later"
	if e.StatusCode >= 400 && e.StatusCode < 500 {
		hint = "the file is missing or refused: check the origin URL and that the packaged folder is published whole"
	}
	return fmt.Sprintf("origin: GET %s: %d %s (%s)", e.URL, e.StatusCode, http.StatusText(e.StatusCode), hint)
}

// Fetch GETs path and returns its bytes once they match the manifest.
// Errors wrap segment.ErrUnknownFile (path not in the manifest; no request
// is made), segment.ErrIntegrity (wrong size, including an oversize body or
// Content-Length, or wrong SHA-256), *StatusError for a non-200 answer, and
// ctx's error or the transport's timeout error when the request times out.
func (o *HTTPOrigin) Fetch(ctx context.Context, path string) ([]byte, error) {
	o.once.Do(func() {
		o.files = map[string]segment.File{}
		if o.Manifest != nil {
			for _, f := range o.Manifest.Files() {
				o.files[f.Path] = f
			}
		}
	})
	f, ok := o.files[path]
	if !ok {
		return nil, fmt.Errorf("origin: %w: %q", segment.ErrUnknownFile, path)
	}
	u, err := url.JoinPath(o.BaseURL, path)
	if err != nil {
		return nil, fmt.Errorf("origin: base URL %q: %w", o.BaseURL, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("origin: %w", err)
	}
	client := o.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, o.wrapErr(u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10)) // let the connection be reused
		return nil, &StatusError{URL: u, StatusCode: resp.StatusCode}
	}
	// The origin is not trusted any more than a peer: a declared length
	// other than the manifest's is refused before reading, and the read is
	// bounded to Size+1 bytes, enough to tell "too long" without letting a
	// hostile or broken server make us buffer without limit.
	if resp.ContentLength >= 0 && resp.ContentLength != f.Size {
		return nil, fmt.Errorf("origin: GET %s: %w: Content-Length %d, manifest says %d", u, segment.ErrIntegrity, resp.ContentLength, f.Size)
	}
	var buf bytes.Buffer
	buf.Grow(int(f.Size) + 1)
	n, err := buf.ReadFrom(io.LimitReader(resp.Body, f.Size+1))
	o.read.Add(n)
	if err != nil {
		return nil, o.wrapErr(u, err)
	}
	if err := f.Check(buf.Bytes()); err != nil {
		return nil, fmt.Errorf("origin: GET %s: %w", u, err)
	}
	return buf.Bytes(), nil
}

func (o *HTTPOrigin) wrapErr(u string, err error) error {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Errorf("origin: GET %s timed out: %w", u, err)
	}
	return fmt.Errorf("origin: GET %s: %w", u, err)
}

// BytesRead returns the body bytes read from the origin so far, verified or
// not: what the CDN billed.
func (o *HTTPOrigin) BytesRead() int64 { return o.read.Load() }
