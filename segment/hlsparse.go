package segment

import (
	"fmt"
	"strconv"
	"strings"
)

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
