package player

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sealmesh/sealmesh/segment"
)

// The gateway serves the platform player on loopback, under a random
// 128-bit path prefix so that other local users and web pages cannot guess
// it. In ModeClear it serves:
//
//	/<secret>/master.m3u8          multivariant playlist: one video and one audio track
//	/<secret>/video/index.m3u8     media playlists, clear fMP4 (no EXT-X-KEY)
//	/<secret>/video/init-N.mp4     clear init segment of crypto period N
//	/<secret>/video/K.m4s          clear media segment K, decrypted in memory on request
//
// and the same under audio/. In ModeEME it serves the packaged files as they
// are (master.m3u8, manifest.mpd, <rendition>/...), ciphertext only.

func (s *Session) startGateway() error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("player: gateway: %w", err)
	}
	s.ln = ln
	s.prefix = "/" + randomSecret() + "/"
	mux := http.NewServeMux()
	mux.HandleFunc(s.prefix, s.serveGateway)
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	s.wg.Go(func() { _ = s.srv.Serve(ln) })
	return nil
}

type gatewayError struct {
	status     int
	code       string
	msg        string
	retryAfter int // seconds; 0: no Retry-After
}

func (e *gatewayError) Error() string { return e.msg }

func writeError(w http.ResponseWriter, err error) {
	var ge *gatewayError
	if !errors.As(err, &ge) {
		ge = &gatewayError{status: http.StatusBadGateway, code: "unavailable", msg: err.Error()}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if ge.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(ge.retryAfter))
	}
	w.WriteHeader(ge.status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": ge.code, "message": ge.msg}})
}

func notFound(format string, a ...any) error {
	return &gatewayError{status: http.StatusNotFound, code: "not_found", msg: fmt.Sprintf(format, a...)}
}

func (s *Session) serveGateway(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeError(w, &gatewayError{status: http.StatusMethodNotAllowed, code: "method_not_allowed", msg: "GET only"})
		return
	}
	rel := strings.TrimPrefix(r.URL.Path, s.prefix)
	var (
		body  []byte
		ctype string
		err   error
	)
	if s.cfg.Mode == ModeEME {
		body, ctype, err = s.serveEME(r.Context(), rel)
	} else {
		body, ctype, err = s.serveClear(r.Context(), rel)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}

func (s *Session) track(name string) *segment.Rendition {
	switch name {
	case "video":
		return s.video
	case "audio":
		return s.audio
	}
	return nil
}

func (s *Session) serveClear(ctx context.Context, rel string) ([]byte, string, error) {
	if rel == "master.m3u8" {
		b, err := s.clearMaster()
		return b, "application/vnd.apple.mpegurl", err
	}
	name, file, ok := strings.Cut(rel, "/")
	r := s.track(name)
	if !ok || r == nil {
		return nil, "", notFound("no such file %q", rel)
	}
	switch {
	case file == "index.m3u8":
		b, err := clearMedia(r)
		return b, "application/vnd.apple.mpegurl", err
	case strings.HasPrefix(file, "init-") && strings.HasSuffix(file, ".mp4"):
		p, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(file, "init-"), ".mp4"))
		if err != nil {
			return nil, "", notFound("no such file %q", rel)
		}
		d, err := s.decryptor(ctx, r, p)
		if err != nil {
			return nil, "", err
		}
		return d.ClearInit(), "video/mp4", nil
	case strings.HasSuffix(file, ".m4s"):
		i, err := strconv.Atoi(strings.TrimSuffix(file, ".m4s"))
		if err != nil || i < 1 {
			return nil, "", notFound("no such file %q", rel)
		}
		return s.clearSegment(ctx, r, i)
	}
	return nil, "", notFound("no such file %q", rel)
}

func (s *Session) clearMaster() ([]byte, error) {
	pl := &segment.HLSMultivariant{Version: 7, IndependentSegments: true}
	if s.audio != nil {
		pl.Media = append(pl.Media, segment.HLSRendition{Type: "AUDIO", GroupID: "audio", Name: "audio", Default: true, AutoSelect: true, URI: "audio/index.m3u8"})
	}
	if s.video == nil {
		pl.Variants = append(pl.Variants, segment.HLSVariant{Bandwidth: s.audio.Bandwidth, Codecs: s.audio.Codec, URI: "audio/index.m3u8"})
		return pl.Encode()
	}
	v := segment.HLSVariant{Bandwidth: s.video.Bandwidth, Codecs: s.video.Codec, Width: s.video.Width, Height: s.video.Height, URI: "video/index.m3u8"}
	if s.audio != nil {
		v.Codecs += "," + s.audio.Codec
		v.Bandwidth += s.audio.Bandwidth
		v.Audio = "audio"
	}
	pl.Variants = append(pl.Variants, v)
	return pl.Encode()
}

// clearMedia is a media playlist of the clear track: each crypto period's
// init (identical in the clear, but a new EXT-X-MAP keeps the playlist
// honest about what changed) then its segments.
func clearMedia(r *segment.Rendition) ([]byte, error) {
	pl := &segment.HLSMedia{Version: 7, MediaSequence: 1, PlaylistType: "VOD", IndependentSegments: true, EndList: true}
	var durs []float64
	next := segment.HLSSegment{}
	for _, f := range r.Files {
		switch f.Kind {
		case segment.KindInit:
			next.Map = "init-" + strconv.Itoa(f.Period) + ".mp4"
		case segment.KindMedia:
			next.Duration, next.URI = f.Duration, strconv.Itoa(f.Index)+".m4s"
			pl.Segments = append(pl.Segments, next)
			durs = append(durs, f.Duration)
			next = segment.HLSSegment{}
		}
	}
	pl.TargetDuration = segment.TargetFor(durs)
	return pl.Encode()
}

// decryptor returns the decryptor of rendition r's crypto period p.
func (s *Session) decryptor(ctx context.Context, r *segment.Rendition, p int) (*segment.Decryptor, error) {
	var initFile *segment.File
	for i := range r.Files {
		if r.Files[i].Kind == segment.KindInit && r.Files[i].Period == p {
			initFile = &r.Files[i]
		}
	}
	if initFile == nil {
		return nil, notFound("%s has no crypto period %d", r.ID, p)
	}
	s.decMu.Lock()
	d := s.decs[initFile.Path]
	s.decMu.Unlock()
	if d != nil {
		return d, nil
	}
	sc, err := s.scheduler(r.ID)
	if err != nil {
		return nil, err
	}
	data, _, err := sc.GetInit(ctx, p)
	if err != nil {
		return nil, err
	}
	if d, err = segment.NewDecryptor(data); err != nil {
		return nil, err
	}
	s.decMu.Lock()
	s.decs[initFile.Path] = d
	s.decMu.Unlock()
	return d, nil
}

// clearSegment fetches media segment i of r (verified ciphertext) and
// decrypts it in memory, if and only if a valid license carries its key.
func (s *Session) clearSegment(ctx context.Context, r *segment.Rendition, i int) ([]byte, string, error) {
	var f *segment.File
	for k := range r.Files {
		if r.Files[k].Kind == segment.KindMedia && r.Files[k].Index == i {
			f = &r.Files[k]
		}
	}
	if f == nil {
		return nil, "", notFound("%s has no segment %d", r.ID, i)
	}
	kid, err := periodKID(s.m, f.Period)
	if err != nil {
		return nil, "", err
	}
	// A segment of a period the license does not cover yet (a seek, a
	// renewal that is late, a license server that was down): ask now rather
	// than fail.
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, retryIn, err := s.keys.ensure(rctx, kid, f.Start)
	cancel()
	if err != nil {
		return nil, "", s.keyError(err, retryIn)
	}
	d, err := s.decryptor(ctx, r, f.Period)
	if err != nil {
		return nil, "", err
	}
	sc, err := s.scheduler(r.ID)
	if err != nil {
		return nil, "", err
	}
	enc, _, err := sc.Get(ctx, i)
	if err != nil {
		return nil, "", err
	}
	// Check the license again after the wait: it may have lapsed meanwhile.
	key, err := s.keys.key(kid)
	if err != nil {
		return nil, "", s.keyError(err, 0)
	}
	clear, err := d.Decrypt(enc, map[[16]byte][]byte{kid: key})
	if err != nil {
		return nil, "", err
	}
	if r == s.video || (s.video == nil && r == s.audio) {
		s.play.servedSegment(i)
	}
	s.served.Add(1)
	s.servedBytes.Add(int64(len(clear)))
	return clear, "video/mp4", nil
}

// keyError answers a segment whose key is missing: 503 with Retry-After
// while the license server is only unavailable (the player should retry,
// and will get the segment once renewal succeeds), 403 when it refused (a
// retry will not help). Neither says anything about the keys themselves.
func (s *Session) keyError(err error, retryIn time.Duration) error {
	if errors.Is(err, ErrLicenseUnavailable) {
		s.unavailable.Add(1)
		secs := max(int((retryIn+time.Second-1)/time.Second), 1)
		return &gatewayError{status: http.StatusServiceUnavailable, code: "license_unavailable", msg: err.Error(), retryAfter: secs}
	}
	if errors.Is(err, context.Canceled) {
		return &gatewayError{status: http.StatusServiceUnavailable, code: "canceled", msg: err.Error(), retryAfter: 1}
	}
	s.refused.Add(1)
	return &gatewayError{status: http.StatusForbidden, code: "no_license", msg: err.Error()}
}

func periodKID(m *segment.Manifest, p int) ([16]byte, error) {
	var kid [16]byte
	if p < 0 || p >= len(m.Periods) {
		return kid, notFound("no crypto period %d", p)
	}
	b, err := hex.DecodeString(m.Periods[p].KID)
	if err != nil || len(b) != len(kid) {
		return kid, fmt.Errorf("player: manifest period %d has a bad KID", p)
	}
	copy(kid[:], b)
	return kid, nil
}

// serveEME serves the packaged ciphertext: playlists as verified against the
// manifest, init and media segments through the schedulers.
func (s *Session) serveEME(ctx context.Context, rel string) ([]byte, string, error) {
	f, ok := s.m.Lookup(rel)
	if !ok {
		return nil, "", notFound("no such file %q", rel)
	}
	ctype := "video/mp4"
	switch {
	case strings.HasSuffix(rel, ".m3u8"):
		ctype = "application/vnd.apple.mpegurl"
	case strings.HasSuffix(rel, ".mpd"):
		ctype = "application/dash+xml"
	}
	if f.Kind == segment.KindPlaylist {
		data, err := s.origin.Fetch(ctx, rel)
		return data, ctype, err
	}
	id, _, _ := strings.Cut(rel, "/")
	sc, err := s.scheduler(id)
	if err != nil {
		return nil, "", err
	}
	var data []byte
	if f.Kind == segment.KindInit {
		data, _, err = sc.GetInit(ctx, f.Period)
	} else {
		data, _, err = sc.Get(ctx, f.Index)
		if err == nil && s.video != nil && id == s.video.ID {
			s.play.servedSegment(f.Index)
		}
	}
	if err != nil {
		return nil, "", err
	}
	s.served.Add(1)
	s.servedBytes.Add(int64(len(data)))
	return data, ctype, nil
}
