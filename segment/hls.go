package segment

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// This file is the one place where sealmesh reads and writes HLS (RFC 8216)
// playlists: the packager's output, the clear ladders and encrypted content
// it takes in, the player's loopback gateway and the headless viewer all go
// through [ParseHLS] and the Encode methods below, and the round-trip tests
// (hls_test.go) and FuzzParseHLS hold them to each other.
//
// Only the subset that fMP4/CMAF VOD needs is modelled: a multivariant
// playlist's EXT-X-MEDIA and EXT-X-STREAM-INF, and a media playlist's
// header, EXT-X-KEY, EXT-X-MAP and EXTINF. Other tags are skipped when
// parsing. A maintained library was considered (Eyevinn/hls-m3u8, a fork of
// grafov/m3u8): its EXT-X-KEY has no KEYID, which hls.js needs to tell the
// keys of a rotation apart, and its reader keeps per-process pools; what is
// needed here is a few hundred lines with tests.

// ErrBadPlaylist is wrapped by every error of [ParseHLS] and the Encode
// methods.
var ErrBadPlaylist = errors.New("bad HLS playlist")

// HLSMultivariant is a multivariant (master) playlist.
type HLSMultivariant struct {
	Version             int
	IndependentSegments bool
	Media               []HLSRendition // EXT-X-MEDIA
	Variants            []HLSVariant   // EXT-X-STREAM-INF and the URI line after it
}

// HLSRendition is one EXT-X-MEDIA tag.
type HLSRendition struct {
	Type, GroupID, Name, Language string
	Default, AutoSelect           bool
	URI                           string // "" when absent
}

// HLSVariant is one EXT-X-STREAM-INF tag and its URI.
type HLSVariant struct {
	Bandwidth, AverageBandwidth int
	Codecs                      string
	Width, Height               int    // RESOLUTION; 0 when absent
	Audio                       string // AUDIO group ID
	URI                         string
}

// HLSMedia is a media playlist.
type HLSMedia struct {
	Version             int
	TargetDuration      int
	MediaSequence       int
	PlaylistType        string // "VOD", "EVENT" or ""
	IndependentSegments bool
	Segments            []HLSSegment
	EndList             bool
}

// HLSSegment is one media segment with the EXT-X-KEY and EXT-X-MAP tags
// written just before it (which then apply to it and the segments after).
type HLSSegment struct {
	Key      *HLSKey // an EXT-X-KEY before this segment; nil for none
	Map      string  // the URI of an EXT-X-MAP before this segment; "" for none
	Duration float64 // EXTINF, seconds
	URI      string
}

// HLSKey is an EXT-X-KEY tag. KeyID is the KEYID attribute as written
// ("0x" and 32 hex digits), which hls.js uses to tell keys apart.
type HLSKey struct {
	Method, URI, KeyID, KeyFormat, KeyFormatVersions string
}

// Encode writes p. It fails, wrapping [ErrBadPlaylist], when a value cannot
// be written faithfully (a quote or line break in a quoted string, a URI
// line starting with '#').
func (p *HLSMultivariant) Encode() ([]byte, error) {
	w := &hlsWriter{}
	w.header(p.Version, p.IndependentSegments)
	for _, m := range p.Media {
		w.tag("#EXT-X-MEDIA:", attr{"TYPE", m.Type, false}, attr{"GROUP-ID", m.GroupID, true}, attr{"NAME", m.Name, true},
			attr{"LANGUAGE", m.Language, true}, attr{"DEFAULT", yesNo(m.Default), false},
			attr{"AUTOSELECT", yesNo(m.AutoSelect), false}, attr{"URI", m.URI, true})
	}
	for _, v := range p.Variants {
		res := ""
		if v.Width > 0 || v.Height > 0 {
			res = fmt.Sprintf("%dx%d", v.Width, v.Height)
		}
		w.tag("#EXT-X-STREAM-INF:", attr{"BANDWIDTH", strconv.Itoa(v.Bandwidth), false}, attr{"AVERAGE-BANDWIDTH", intOrEmpty(v.AverageBandwidth), false},
			attr{"CODECS", v.Codecs, true}, attr{"RESOLUTION", res, false}, attr{"AUDIO", v.Audio, true})
		w.uri(v.URI)
	}
	return w.bytes()
}

// Encode writes p; see [HLSMultivariant.Encode].
func (p *HLSMedia) Encode() ([]byte, error) {
	w := &hlsWriter{}
	w.header(p.Version, false)
	w.line("#EXT-X-TARGETDURATION:" + strconv.Itoa(p.TargetDuration))
	w.line("#EXT-X-MEDIA-SEQUENCE:" + strconv.Itoa(p.MediaSequence))
	if p.PlaylistType != "" {
		w.tag("#EXT-X-PLAYLIST-TYPE:", attr{"", p.PlaylistType, false})
	}
	if p.IndependentSegments {
		w.line("#EXT-X-INDEPENDENT-SEGMENTS")
	}
	for _, s := range p.Segments {
		if k := s.Key; k != nil {
			w.tag("#EXT-X-KEY:", attr{"METHOD", k.Method, false}, attr{"URI", k.URI, true}, attr{"KEYID", k.KeyID, false},
				attr{"KEYFORMAT", k.KeyFormat, true}, attr{"KEYFORMATVERSIONS", k.KeyFormatVersions, true})
		}
		if s.Map != "" {
			w.tag("#EXT-X-MAP:", attr{"URI", s.Map, true})
		}
		w.line("#EXTINF:" + strconv.FormatFloat(s.Duration, 'f', 5, 64) + ",")
		w.uri(s.URI)
	}
	if p.EndList {
		w.line("#EXT-X-ENDLIST")
	}
	return w.bytes()
}

// TargetFor returns the EXT-X-TARGETDURATION for segments of the given
// durations: the longest rounded up (rfc8216bis wants every EXTINF at most
// the target; 1 ms of slack absorbs timescale rounding), never below 1.
func TargetFor(durations []float64) int {
	t := 1
	for _, d := range durations {
		t = max(t, int(math.Ceil(d-1e-3)))
	}
	return t
}

type attr struct {
	name, value string
	quoted      bool
}

type hlsWriter struct {
	b   bytes.Buffer
	err error
}

func (w *hlsWriter) header(version int, independent bool) {
	w.line("#EXTM3U")
	if version > 0 {
		w.line("#EXT-X-VERSION:" + strconv.Itoa(version))
	}
	if independent {
		w.line("#EXT-X-INDEPENDENT-SEGMENTS")
	}
}

func (w *hlsWriter) line(s string) { w.b.WriteString(s); w.b.WriteByte('\n') }

// tag writes name and the non-empty attributes. An attribute with an empty
// name is the tag's single value (EXT-X-PLAYLIST-TYPE).
func (w *hlsWriter) tag(name string, attrs ...attr) {
	w.b.WriteString(name)
	first := true
	for _, a := range attrs {
		if a.value == "" {
			continue
		}
		if bad := strings.ContainsAny(a.value, "\"\r\n") || (!a.quoted && strings.ContainsAny(a.value, ", ")); bad && w.err == nil {
			w.err = fmt.Errorf("%w: %s %s %q cannot be written", ErrBadPlaylist, strings.TrimSuffix(name, ":"), a.name, a.value)
		}
		if !first {
			w.b.WriteByte(',')
		}
		first = false
		if a.name != "" {
			w.b.WriteString(a.name + "=")
		}
		if a.quoted {
			w.b.WriteString(`"` + a.value + `"`)
		} else {
			w.b.WriteString(a.value)
		}
	}
	w.b.WriteByte('\n')
}

func (w *hlsWriter) uri(u string) {
	if (u == "" || strings.HasPrefix(u, "#") || strings.ContainsAny(u, "\r\n") || strings.TrimSpace(u) != u) && w.err == nil {
		w.err = fmt.Errorf("%w: URI line %q cannot be written", ErrBadPlaylist, u)
	}
	w.line(u)
}

func (w *hlsWriter) bytes() ([]byte, error) {
	if w.err != nil {
		return nil, w.err
	}
	return w.b.Bytes(), nil
}

func yesNo(b bool) string {
	if b {
		return "YES"
	}
	return "NO"
}

func intOrEmpty(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

// ParseHLS reads a playlist: exactly one of the results is non-nil. The
// caller bounds len(data). Tags this package does not model are skipped; a
// tag it models with a malformed value, a URI line missing after EXTINF or
// EXT-X-STREAM-INF, or a playlist mixing multivariant and media tags is an
// error wrapping [ErrBadPlaylist]. URIs are returned as written: resolving
// them, and refusing those that leave a folder, is the caller's job.
func ParseHLS(data []byte) (*HLSMultivariant, *HLSMedia, error) {
	lines := strings.Split(string(data), "\n")
	var clean []string
	for _, l := range lines {
		if l = strings.TrimSpace(l); l != "" {
			clean = append(clean, l)
		}
	}
	if len(clean) == 0 || clean[0] != "#EXTM3U" {
		return nil, nil, fmt.Errorf("%w: no #EXTM3U first line", ErrBadPlaylist)
	}
	mv, md := &HLSMultivariant{}, &HLSMedia{}
	isMV, isMedia := false, false
	var pending HLSSegment
	bad := func(n int, format string, a ...any) error {
		return fmt.Errorf("%w: line %d: %s", ErrBadPlaylist, n+1, fmt.Sprintf(format, a...))
	}
	for i := 1; i < len(clean); i++ {
		l := clean[i]
		name, value, _ := strings.Cut(l, ":")
		var err error
		switch name {
		case "#EXT-X-VERSION":
			if mv.Version, err = strconv.Atoi(value); err != nil || mv.Version < 1 {
				return nil, nil, bad(i, "EXT-X-VERSION %q", value)
			}
			md.Version = mv.Version
		case "#EXT-X-INDEPENDENT-SEGMENTS":
			mv.IndependentSegments, md.IndependentSegments = true, true
		case "#EXT-X-MEDIA":
			isMV = true
			a, err := parseAttrs(value)
			if err != nil {
				return nil, nil, bad(i, "EXT-X-MEDIA: %v", err)
			}
			mv.Media = append(mv.Media, HLSRendition{Type: a["TYPE"], GroupID: a["GROUP-ID"], Name: a["NAME"], Language: a["LANGUAGE"],
				Default: a["DEFAULT"] == "YES", AutoSelect: a["AUTOSELECT"] == "YES", URI: a["URI"]})
		case "#EXT-X-STREAM-INF":
			isMV = true
			a, err := parseAttrs(value)
			if err != nil {
				return nil, nil, bad(i, "EXT-X-STREAM-INF: %v", err)
			}
			v := HLSVariant{Codecs: a["CODECS"], Audio: a["AUDIO"]}
			if v.Bandwidth, err = atoiOr0(a["BANDWIDTH"]); err != nil {
				return nil, nil, bad(i, "BANDWIDTH: %v", err)
			}
			if v.AverageBandwidth, err = atoiOr0(a["AVERAGE-BANDWIDTH"]); err != nil {
				return nil, nil, bad(i, "AVERAGE-BANDWIDTH: %v", err)
			}
			if r := a["RESOLUTION"]; r != "" {
				ws, hs, _ := strings.Cut(r, "x")
				w, err1 := strconv.Atoi(ws)
				h, err2 := strconv.Atoi(hs)
				if err1 != nil || err2 != nil || w <= 0 || h <= 0 {
					return nil, nil, bad(i, "RESOLUTION %q", r)
				}
				v.Width, v.Height = w, h
			}
			if i+1 >= len(clean) || strings.HasPrefix(clean[i+1], "#") {
				return nil, nil, bad(i, "EXT-X-STREAM-INF without a URI line")
			}
			i++
			v.URI = clean[i]
			mv.Variants = append(mv.Variants, v)
		case "#EXT-X-TARGETDURATION":
			isMedia = true
			if md.TargetDuration, err = strconv.Atoi(value); err != nil || md.TargetDuration < 0 {
				return nil, nil, bad(i, "EXT-X-TARGETDURATION %q", value)
			}
		case "#EXT-X-MEDIA-SEQUENCE":
			isMedia = true
			if md.MediaSequence, err = strconv.Atoi(value); err != nil || md.MediaSequence < 0 {
				return nil, nil, bad(i, "EXT-X-MEDIA-SEQUENCE %q", value)
			}
		case "#EXT-X-PLAYLIST-TYPE":
			isMedia = true
			md.PlaylistType = value
		case "#EXT-X-ENDLIST":
			isMedia = true
			md.EndList = true
		case "#EXT-X-KEY":
			isMedia = true
			a, err := parseAttrs(value)
			if err != nil {
				return nil, nil, bad(i, "EXT-X-KEY: %v", err)
			}
			if a["METHOD"] == "" {
				return nil, nil, bad(i, "EXT-X-KEY without METHOD")
			}
			pending.Key = &HLSKey{Method: a["METHOD"], URI: a["URI"], KeyID: a["KEYID"], KeyFormat: a["KEYFORMAT"], KeyFormatVersions: a["KEYFORMATVERSIONS"]}
		case "#EXT-X-MAP":
			isMedia = true
			a, err := parseAttrs(value)
			if err != nil {
				return nil, nil, bad(i, "EXT-X-MAP: %v", err)
			}
			if a["URI"] == "" {
				return nil, nil, bad(i, "EXT-X-MAP without URI")
			}
			pending.Map = a["URI"]
		case "#EXTINF":
			isMedia = true
			d, _, _ := strings.Cut(value, ",")
			if pending.Duration, err = strconv.ParseFloat(d, 64); err != nil || !(pending.Duration >= 0 && pending.Duration <= 1e6) {
				return nil, nil, bad(i, "EXTINF duration %q", d)
			}
			if i+1 >= len(clean) || strings.HasPrefix(clean[i+1], "#") {
				return nil, nil, bad(i, "EXTINF without a URI line")
			}
			i++
			pending.URI = clean[i]
			md.Segments = append(md.Segments, pending)
			pending = HLSSegment{}
		default:
			if !strings.HasPrefix(l, "#") {
				return nil, nil, bad(i, "URI line %q without EXTINF or EXT-X-STREAM-INF", l)
			}
		}
	}
	switch {
	case isMV && isMedia:
		return nil, nil, fmt.Errorf("%w: it mixes multivariant tags (EXT-X-STREAM-INF, EXT-X-MEDIA) with media-playlist tags", ErrBadPlaylist)
	case isMedia:
		if pending.Key != nil || pending.Map != "" {
			return nil, nil, fmt.Errorf("%w: EXT-X-KEY or EXT-X-MAP after the last segment", ErrBadPlaylist)
		}
		return nil, md, nil
	case isMV:
		return mv, nil, nil
	}
	return nil, nil, fmt.Errorf("%w: neither a multivariant nor a media playlist", ErrBadPlaylist)
}

func atoiOr0(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a non-negative integer", s)
	}
	return n, nil
}

// parseAttrs reads an attribute list (RFC 8216 4.2): NAME=value pairs
// separated by commas, values either quoted strings (which may hold commas)
// or unquoted tokens. One pass, no backtracking.
func parseAttrs(s string) (map[string]string, error) {
	out := map[string]string{}
	for len(s) > 0 {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return nil, fmt.Errorf("attribute without a name or value in %q", s)
		}
		name := strings.TrimSpace(s[:eq])
		s = s[eq+1:]
		var v string
		if strings.HasPrefix(s, `"`) {
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("unterminated quoted string for %s", name)
			}
			v, s = s[1:1+end], s[2+end:]
			if s != "" && s[0] != ',' {
				return nil, fmt.Errorf("text after the quoted value of %s", name)
			}
		} else {
			end := strings.IndexByte(s, ',')
			if end < 0 {
				end = len(s)
			}
			v, s = strings.TrimSpace(s[:end]), s[end:]
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("attribute %s given twice", name)
		}
		out[name] = v
		s = strings.TrimPrefix(s, ",")
	}
	return out, nil
}
