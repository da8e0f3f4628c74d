package cache_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/segment"
)

// content is a synthetic packaged content: a manifest and the bytes it lists.
type content struct {
	m     *segment.Manifest
	data  map[string][]byte
	media []string // media paths in order
	init  string
}

// newContent makes a one-rendition content with an init file and n media
// files of the given size, filled with random bytes.
func newContent(t testing.TB, n, size int) *content {
	t.Helper()
	c, err := makeContent(n, size)
	require.NoError(t, err)
	return c
}

func makeContent(n, size int) (*content, error) {
	c := &content{data: map[string][]byte{}}
	r := segment.Rendition{ID: "v1", Type: "video", Codec: "avc1.64001f", Bandwidth: 1_000_000, Timescale: 90000}
	add := func(f segment.File) {
		d := make([]byte, f.Size)
		_, _ = rand.Read(d)
		sum := sha256.Sum256(d)
		f.SHA256 = hex.EncodeToString(sum[:])
		c.data[f.Path] = d
		r.Files = append(r.Files, f)
	}
	c.init = "v1/init.mp4"
	add(segment.File{Path: c.init, Kind: segment.KindInit, Size: 700})
	for i := 1; i <= n; i++ {
		p := fmt.Sprintf("v1/%d.m4s", i)
		c.media = append(c.media, p)
		add(segment.File{Path: p, Kind: segment.KindMedia, Index: i, Start: float64(i-1) * 2, Duration: 2, Size: int64(size)})
	}
	c.m = &segment.Manifest{
		Version: segment.ManifestVersion, ContentID: "clip", Scheme: segment.SchemeCBCS,
		Created: time.Unix(0, 0).UTC(), SegmentDuration: 2, Duration: float64(n) * 2, SigningKeyID: "k",
		Periods:    []segment.Period{{Index: 0, KID: "00112233445566778899aabbccddeeff"}},
		Renditions: []segment.Rendition{r},
	}
	return c, c.m.Validate()
}

// clock is a settable Now for mtime-ordered tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second) // every reading is a second later: strict order
	return c.t
}

// logBuf is a concurrency-safe log sink.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
