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
