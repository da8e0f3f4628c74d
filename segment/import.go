package segment

import (
	"context"
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
)

// ImportConfig describes content that another packager already encrypted.
type ImportConfig struct {
	Playlist     string // HLS multivariant or media playlist of the encrypted fMP4 content; required
	ContentID    string
	KIDs         [][16]byte    // the KIDs whose keys the caller holds, in crypto-period order
	Signer       crypto.Signer // Ed25519
	SigningKeyID string
	Force        bool                  // replace an existing sealmesh.json
	BeforeCommit func(*Manifest) error // runs before sealmesh.json is renamed into place
}

// Import writes a signed segment manifest for already-encrypted CMAF content
// described by an HLS playlist, without touching the media. Every init
// segment must be protected (cenc or cbcs) under one of cfg.KIDs; periods
// follow the order of cfg.KIDs.
func Import(ctx context.Context, cfg ImportConfig) (*Manifest, error) {
	if err := ValidContentID(cfg.ContentID); err != nil {
		return nil, err
	}
	if cfg.Signer == nil || cfg.SigningKeyID == "" {
		return nil, errors.New("no manifest signing key")
	}
	if len(cfg.KIDs) == 0 {
		return nil, errors.New("no keys given")
	}
	root := filepath.Dir(cfg.Playlist)
	target := filepath.Join(root, ManifestFile)
	if _, err := os.Stat(target); err == nil && !cfg.Force {
		return nil, fmt.Errorf("%w: %s (pass --force to replace it)", ErrOutputExists, target)
	}
	period := map[[16]byte]int{}
	m := &Manifest{Version: ManifestVersion, ContentID: cfg.ContentID, Created: time.Now().UTC().Truncate(time.Second), SigningKeyID: cfg.SigningKeyID}
	for i, k := range cfg.KIDs {
		if _, dup := period[k]; dup {
			return nil, fmt.Errorf("KID %x given twice", k)
		}
		period[k] = i
		m.Periods = append(m.Periods, Period{Index: i, KID: hex.EncodeToString(k[:]), Start: -1})
	}
	rel := func(p string) (string, error) {
		r, err := filepath.Rel(root, p)
		if err != nil || strings.HasPrefix(r, "..") {
			return "", fmt.Errorf("%w: %s lies outside %s", ErrUnsupportedInput, p, root)
		}
		return filepath.ToSlash(r), nil
	}
	mv, md, err := readHLS(cfg.Playlist, maxLadderPlaylist)
	if err != nil {
		return nil, err
	}
	playlists := []string{cfg.Playlist}
	var media []string
	if md != nil {
		media = []string{cfg.Playlist}
	} else {
		var uris []string
		for _, r := range mv.Media {
			if r.URI != "" {
				uris = append(uris, r.URI)
			}
		}
		for _, v := range mv.Variants {
			uris = append(uris, v.URI)
		}
		for _, uri := range uris {
			p, err := localRef(cfg.Playlist, uri)
			if err != nil {
				return nil, err
			}
			media = append(media, p)
		}
		playlists = append(playlists, media...)
	}
	for _, mp := range media {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		r, err := importRendition(mp, period, rel, m)
		if err != nil {
			return nil, err
		}
		m.Renditions = append(m.Renditions, r)
	}
	if mpd := filepath.Join(root, DASHManifest); fileExists(mpd) {
		playlists = append(playlists, mpd)
	}
	for _, p := range playlists {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		rp, err := rel(p)
		if err != nil {
			return nil, err
		}
		m.Playlists = append(m.Playlists, fileEntry(rp, KindPlaylist, data))
	}
	for i, p := range m.Periods {
		if p.Start < 0 {
			return nil, fmt.Errorf("KID %s protects no segment of this content: give only the content's keys", m.Periods[i].KID)
		}
	}
	m.Sequence = NextSequence(PreviousSequence(target, cfg.Signer.Public()), time.Now())
	signed, err := SignManifest(m, cfg.Signer)
	if err != nil {
		return nil, err
	}
	if cfg.BeforeCommit != nil {
		if err := cfg.BeforeCommit(m); err != nil {
			return nil, err
		}
	}
	tmp := target + ".tmp"
	if err := os.WriteFile(tmp, signed, 0o644); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, target); err != nil {
		os.Remove(tmp)
		return nil, err
	}
	return m, nil
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func importRendition(mp string, period map[[16]byte]int, rel func(string) (string, error), m *Manifest) (Rendition, error) {
	_, md, err := readHLS(mp, maxLadderPlaylist)
	if err == nil && md == nil {
		err = fmt.Errorf("%w: %s is not a media playlist", ErrUnsupportedInput, mp)
	}
	if err != nil {
		return Rendition{}, err
	}
	var r Rendition
	var di mp4.DecryptInfo
	var trex *mp4.TrexBox
	cur := -1
	index := 0
	for _, seg := range md.Segments {
		if seg.Map != "" {
			ip, err := localRef(mp, seg.Map)
			if err != nil {
				return r, err
			}
			f, err := decodeFileLimited(ip, maxLadderInit)
			if err != nil {
				return r, err
			}
			if f.Init == nil || len(f.Init.Moov.Traks) != 1 {
				return r, fmt.Errorf("%w: %s is not a single-track init segment", ErrUnsupportedInput, ip)
			}
			if f.Init.Moov.Mvex == nil {
				return r, fmt.Errorf("%w: %s is not a fragmented-MP4 init segment (no mvex)", ErrUnsupportedInput, ip)
			}
			trex = f.Init.Moov.Mvex.Trex
			data, _ := os.ReadFile(ip)
			if di, err = mp4.DecryptInit(f.Init); err != nil || len(di.TrackInfos) != 1 || di.TrackInfos[0].Sinf == nil || di.TrackInfos[0].Sinf.Schi == nil || di.TrackInfos[0].Sinf.Schi.Tenc == nil {
				return r, fmt.Errorf("%w: %s is not encrypted: pack clear content without --import", ErrUnsupportedInput, ip)
			}
			sinf := di.TrackInfos[0].Sinf
			scheme := Scheme(sinf.Schm.SchemeType)
			if m.Scheme == "" {
				m.Scheme = scheme
			} else if m.Scheme != scheme {
				return r, fmt.Errorf("%w: %s uses %s, other tracks %s", ErrUnsupportedInput, ip, scheme, m.Scheme)
			}
			var kid [16]byte
			copy(kid[:], sinf.Schi.Tenc.DefaultKID)
			p, ok := period[kid]
			if !ok {
				return r, fmt.Errorf("%s is encrypted under KID %x, for which no key was given", ip, kid)
			}
			cur = p
			if r.ID == "" {
				trak := f.Init.Moov.Trak
				kind, codec, w, h, _, err := sampleEntryInfo(trak.Mdia.Minf.Stbl.Stsd, ip)
				if err != nil {
					return r, err
				}
				id, err := rel(filepath.Dir(ip))
				if err != nil || id == "." || strings.Contains(id, "/") {
					return r, fmt.Errorf("%w: %s: each track must sit in its own folder directly under %s", ErrUnsupportedInput, ip, filepath.Dir(filepath.Dir(ip)))
				}
				r = Rendition{ID: id, Type: kind, Codec: codec, Width: w, Height: h, Timescale: trak.Mdia.Mdhd.Timescale, Language: trak.Mdia.Mdhd.GetLanguage()}
			}
			rp, err := rel(ip)
			if err != nil {
				return r, err
			}
			fe := fileEntry(rp, KindInit, data)
			fe.Period = cur
			r.Files = append(r.Files, fe)
		}
		if cur < 0 {
			return r, fmt.Errorf("%w: %s: a segment before any EXT-X-MAP", ErrUnsupportedInput, mp)
		}
		sp, err := localRef(mp, seg.URI)
		if err != nil {
			return r, err
		}
		f, err := decodeFileLimited(sp, maxLadderSegment)
		if err != nil {
			return r, err
		}
		var first, end uint64
		n := 0
		for _, ms := range f.Segments {
			for _, frag := range ms.Fragments {
				fs, err := frag.GetFullSamples(trex)
				if err != nil {
					return r, fmt.Errorf("%w: %s: %v", ErrUnsupportedInput, sp, err)
				}
				for _, s := range fs {
					if n == 0 {
						first = s.DecodeTime
					}
					end = s.DecodeTime + uint64(s.Dur)
					n++
				}
			}
		}
		if n == 0 {
			return r, fmt.Errorf("%w: %s holds no samples", ErrUnsupportedInput, sp)
		}
		data, _ := os.ReadFile(sp)
		rp, err := rel(sp)
		if err != nil {
			return r, err
		}
		index++
		fe := fileEntry(rp, KindMedia, data)
		fe.Index, fe.Period = index, cur
		fe.Start = float64(first) / float64(r.Timescale)
		fe.Duration = float64(end-first) / float64(r.Timescale)
		r.Files = append(r.Files, fe)
		if p := &m.Periods[cur]; p.Start < 0 || fe.Start < p.Start {
			p.Start = fe.Start
		}
		if e := fe.Start + fe.Duration; e > m.Duration {
			m.Duration = e
		}
		if bw := int(float64(fe.Size*8) / max(fe.Duration, 0.001)); bw > r.Bandwidth {
			r.Bandwidth = bw
		}
	}
	if index == 0 {
		return r, fmt.Errorf("%w: %s lists no segments", ErrUnsupportedInput, mp)
	}
	return r, nil
}
