package segment

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
)

// Playlist file names at the top of a packaged folder.
const (
	HLSMaster     = "master.m3u8"
	DASHManifest  = "manifest.mpd"
	mediaPlaylist = "index.m3u8"
)

func writePlaylists(dir string, cfg *Config, m *Manifest, res []trackResult) ([]File, error) {
	var files []File
	add := func(rel string, body []byte) error {
		if err := writeFile(filepath.Join(dir, filepath.FromSlash(rel)), body); err != nil {
			return err
		}
		files = append(files, fileEntry(rel, KindPlaylist, body))
		return nil
	}
	for _, r := range m.Renditions {
		body, err := hlsMedia(cfg, m, r).Encode()
		if err != nil {
			return nil, fmt.Errorf("HLS playlist of %s: %w", r.ID, err)
		}
		if err := add(r.ID+"/"+mediaPlaylist, body); err != nil {
			return nil, err
		}
	}
	master, err := hlsMaster(m, res).Encode()
	if err != nil {
		return nil, fmt.Errorf("HLS multivariant playlist: %w", err)
	}
	if err := add(HLSMaster, master); err != nil {
		return nil, err
	}
	rates, err := audioRates(dir, m)
	if err != nil {
		return nil, err
	}
	mpd, err := dashMPD(cfg, m, rates)
	if err != nil {
		return nil, err
	}
	if err := add(DASHManifest, []byte(mpd)); err != nil {
		return nil, err
	}
	return files, nil
}

func hlsMethod(s Scheme) string {
	if s == SchemeCENC {
		return "SAMPLE-AES-CTR"
	}
	return "SAMPLE-AES"
}

func hlsMedia(cfg *Config, m *Manifest, r Rendition) *HLSMedia {
	pl := &HLSMedia{Version: 7, MediaSequence: 1, PlaylistType: "VOD", IndependentSegments: true, EndList: true}
	var durs []float64
	var next HLSSegment
	for _, f := range r.Files {
		switch f.Kind {
		case KindInit:
			// A new crypto period brings a new key (new KID in the new init):
			// signal both, so players fetch the key and the init together.
			// KEYID names the period's key, and the URI carries it too:
			// players such as hls.js map one key URI to one KID and would
			// stall at a rotation if every period shared the license URL.
			kid := m.Periods[f.Period].KID
			next.Key = &HLSKey{Method: hlsMethod(m.Scheme), URI: keyURI(cfg.LicenseURL, kid), KeyID: "0x" + kid,
				KeyFormat: "org.w3.clearkey", KeyFormatVersions: "1"}
			next.Map = strings.TrimPrefix(f.Path, r.ID+"/")
		case KindMedia:
			next.Duration, next.URI = f.Duration, strings.TrimPrefix(f.Path, r.ID+"/")
			pl.Segments = append(pl.Segments, next)
			durs = append(durs, f.Duration)
			next = HLSSegment{}
		}
	}
	pl.TargetDuration = TargetFor(durs)
	return pl
}

func hlsMaster(m *Manifest, res []trackResult) *HLSMultivariant {
	pl := &HLSMultivariant{Version: 7, IndependentSegments: true}
	var audio []int
	for i, r := range m.Renditions {
		if r.Type == "audio" {
			audio = append(audio, i)
		}
	}
	audioBW, audioAvg, audioCodec := 0, 0, ""
	for n, i := range audio {
		r := m.Renditions[i]
		lang := r.Language
		if lang == "" {
			lang = "und"
		}
		if n == 0 {
			audioBW, audioAvg, audioCodec = r.Bandwidth, res[i].avgBW, r.Codec
		}
		pl.Media = append(pl.Media, HLSRendition{Type: "AUDIO", GroupID: "audio", Name: lang, Language: lang,
			Default: n == 0, AutoSelect: true, URI: r.ID + "/" + mediaPlaylist})
	}
	for i, r := range m.Renditions {
		if r.Type != "video" {
			continue
		}
		v := HLSVariant{Bandwidth: r.Bandwidth + audioBW, AverageBandwidth: res[i].avgBW + audioAvg, Codecs: r.Codec,
			Width: r.Width, Height: r.Height, URI: r.ID + "/" + mediaPlaylist}
		if audioCodec != "" {
			v.Codecs += "," + audioCodec
			v.Audio = "audio"
		}
		pl.Variants = append(pl.Variants, v)
	}
	if len(audio) == len(m.Renditions) { // audio only
		r := m.Renditions[audio[0]]
		pl.Variants = append(pl.Variants, HLSVariant{Bandwidth: r.Bandwidth, Codecs: r.Codec, URI: r.ID + "/" + mediaPlaylist})
	}
	return pl
}

func kidUUID(h string) string {
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// keyURI is the license URL with the KID as a query parameter, which Clear
// Key license servers ignore and players use to tell keys apart. Without a
// license URL it is a data: URI holding the KID (as shaka-packager writes
// it), from which hls.js learns the KID; the app then gives the license
// server in its own configuration.
func keyURI(license, kid string) string {
	if license == "" {
		b, _ := hex.DecodeString(kid)
		return "data:text/plain;base64," + base64.StdEncoding.EncodeToString(b)
	}
	sep := "?"
	if strings.Contains(license, "?") {
		sep = "&"
	}
	return license + sep + "kid=" + kid
}
