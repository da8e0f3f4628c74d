package segment

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"html"
	"math"
	"path/filepath"
	"strings"

	"github.com/Eyevinn/mp4ff/mp4"
)

// Playlist file names at the top of a packaged folder.
const (
	HLSMaster     = "master.m3u8"
	DASHManifest  = "manifest.mpd"
	mediaPlaylist = "index.m3u8"
)

func writePlaylists(dir string, cfg *Config, m *Manifest, res []trackResult) ([]File, error) {
	var files []File
	add := func(rel, body string) error {
		if err := writeFile(filepath.Join(dir, filepath.FromSlash(rel)), []byte(body)); err != nil {
			return err
		}
		files = append(files, fileEntry(rel, KindPlaylist, []byte(body)))
		return nil
	}
	for i, r := range m.Renditions {
		if err := add(r.ID+"/"+mediaPlaylist, hlsMedia(cfg, m, r, res[i])); err != nil {
			return nil, err
		}
	}
	if err := add(HLSMaster, hlsMaster(m, res)); err != nil {
		return nil, err
	}
	mpd, err := dashMPD(cfg, m)
	if err != nil {
		return nil, err
	}
	if err := add(DASHManifest, mpd); err != nil {
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

func hlsMedia(cfg *Config, m *Manifest, r Rendition, res trackResult) string {
	var b strings.Builder
	target := 0.0
	for _, f := range r.Files {
		target = math.Max(target, f.Duration)
	}
	fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:%d\n#EXT-X-MEDIA-SEQUENCE:1\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n", int(math.Ceil(target-1e-3)))
	for _, f := range r.Files {
		switch f.Kind {
		case KindInit:
			// A new crypto period brings a new key (new KID in the new init):
			// signal both, so players fetch the key and the init together.
			// KEYID names the period's key, and the URI carries it too:
			// players such as hls.js map one key URI to one KID and would
			// stall at a rotation if every period shared the license URL.
			kid := m.Periods[f.Period].KID
			fmt.Fprintf(&b, "#EXT-X-KEY:METHOD=%s,URI=%q,KEYID=0x%s,KEYFORMAT=\"org.w3.clearkey\",KEYFORMATVERSIONS=\"1\"\n", hlsMethod(m.Scheme), keyURI(cfg.LicenseURL, kid), kid)
			fmt.Fprintf(&b, "#EXT-X-MAP:URI=%q\n", strings.TrimPrefix(f.Path, r.ID+"/"))
		case KindMedia:
			fmt.Fprintf(&b, "#EXTINF:%.5f,\n%s\n", f.Duration, strings.TrimPrefix(f.Path, r.ID+"/"))
		}
	}
	b.WriteString("#EXT-X-ENDLIST\n")
	return b.String()
}

func hlsMaster(m *Manifest, res []trackResult) string {
	var b strings.Builder
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n")
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
		def := "NO"
		if n == 0 {
			def = "YES"
			audioBW, audioAvg, audioCodec = r.Bandwidth, res[i].avgBW, r.Codec
		}
		fmt.Fprintf(&b, "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=%q,LANGUAGE=%q,DEFAULT=%s,AUTOSELECT=YES,URI=%q\n", lang, lang, def, r.ID+"/"+mediaPlaylist)
	}
	for i, r := range m.Renditions {
		if r.Type != "video" {
			continue
		}
		codecs := r.Codec
		group := ""
		if audioCodec != "" {
			codecs += "," + audioCodec
			group = ",AUDIO=\"audio\""
		}
		fmt.Fprintf(&b, "#EXT-X-STREAM-INF:BANDWIDTH=%d,AVERAGE-BANDWIDTH=%d,CODECS=%q,RESOLUTION=%dx%d%s\n%s\n",
			r.Bandwidth+audioBW, res[i].avgBW+audioAvg, codecs, r.Width, r.Height, group, r.ID+"/"+mediaPlaylist)
	}
	if len(audio) == len(m.Renditions) { // audio only
		r := m.Renditions[audio[0]]
		fmt.Fprintf(&b, "#EXT-X-STREAM-INF:BANDWIDTH=%d,CODECS=%q\n%s\n", r.Bandwidth, r.Codec, r.ID+"/"+mediaPlaylist)
	}
	return b.String()
}

func kidUUID(h string) string {
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func isoDur(sec float64) string { return fmt.Sprintf("PT%.3fS", sec) }

// dashMPD writes a static MPD with one Period per crypto period, so each
// period's init (with its own default KID) and key are announced where they
// apply; Shaka Player switches keys at the period boundary.
func dashMPD(cfg *Config, m *Manifest) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" xmlns:cenc="urn:mpeg:cenc:2013" xmlns:dashif="https://dashif.org/CPS" profiles="urn:mpeg:dash:profile:isoff-live:2011" type="static" mediaPresentationDuration="%s" minBufferTime="PT2S">
`, isoDur(m.Duration))
	for p, per := range m.Periods {
		end := m.Duration
		if p+1 < len(m.Periods) {
			end = m.Periods[p+1].Start
		}
		fmt.Fprintf(&b, "  <Period id=\"p%d\" start=\"%s\" duration=\"%s\">\n", p, isoDur(per.Start), isoDur(end-per.Start))
		pssh, err := mp4.NewPsshBox(CommonSystemID, []string{per.KID}, nil)
		if err != nil {
			return "", err
		}
		psshBytes, err := encodeBox(pssh)
		if err != nil {
			return "", err
		}
		for _, kind := range []string{"video", "audio"} {
			var reps []Rendition
			for _, r := range m.Renditions {
				if r.Type == kind {
					reps = append(reps, r)
				}
			}
			if len(reps) == 0 {
				continue
			}
			mime := kind + "/mp4"
			fmt.Fprintf(&b, "    <AdaptationSet contentType=%q mimeType=%q segmentAlignment=\"true\" startWithSAP=\"1\"", kind, mime)
			if kind == "audio" && reps[0].Language != "" {
				fmt.Fprintf(&b, " lang=%q", reps[0].Language)
			}
			b.WriteString(">\n")
			fmt.Fprintf(&b, "      <ContentProtection schemeIdUri=\"urn:mpeg:dash:mp4protection:2011\" value=%q cenc:default_KID=%q/>\n", string(m.Scheme), kidUUID(per.KID))
			if cfg.LicenseURL == "" { // no URL given: players bring their own
				b.WriteString("      <ContentProtection schemeIdUri=\"urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e\" value=\"ClearKey1.0\"/>\n")
			} else {
				fmt.Fprintf(&b, "      <ContentProtection schemeIdUri=\"urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e\" value=\"ClearKey1.0\">\n        <dashif:Laurl>%s</dashif:Laurl>\n      </ContentProtection>\n", html.EscapeString(cfg.LicenseURL))
			}
			fmt.Fprintf(&b, "      <ContentProtection schemeIdUri=\"urn:uuid:1077efec-c0b2-4d02-ace3-3c1e52e2fb4b\">\n        <cenc:pssh>%s</cenc:pssh>\n      </ContentProtection>\n", base64.StdEncoding.EncodeToString(psshBytes))
			for _, r := range reps {
				writeRepresentation(&b, r, p)
			}
			b.WriteString("    </AdaptationSet>\n")
		}
		b.WriteString("  </Period>\n")
	}
	b.WriteString("</MPD>\n")
	return b.String(), nil
}

func writeRepresentation(b *strings.Builder, r Rendition, period int) {
	var init string
	var media []File
	for _, f := range r.Files {
		if f.Period != period {
			continue
		}
		if f.Kind == KindInit {
			init = f.Path
		} else if f.Kind == KindMedia {
			media = append(media, f)
		}
	}
	if init == "" || len(media) == 0 {
		return
	}
	fmt.Fprintf(b, "      <Representation id=%q bandwidth=\"%d\" codecs=%q", r.ID, r.Bandwidth, r.Codec)
	if r.Type == "video" {
		fmt.Fprintf(b, " width=\"%d\" height=\"%d\"", r.Width, r.Height)
	} else {
		b.WriteString(" audioSamplingRate=\"48000\"")
	}
	b.WriteString(">\n")
	ts := float64(r.Timescale)
	t0 := uint64(math.Round(media[0].Start * ts))
	fmt.Fprintf(b, "        <SegmentTemplate timescale=\"%d\" presentationTimeOffset=\"%d\" startNumber=\"%d\" initialization=%q media=%q>\n          <SegmentTimeline>\n",
		r.Timescale, t0, media[0].Index, init, r.ID+"/$Number$.m4s")
	for i, f := range media {
		d := uint64(math.Round(f.Duration * ts))
		if i == 0 {
			fmt.Fprintf(b, "            <S t=\"%d\" d=\"%d\"/>\n", t0, d)
		} else {
			fmt.Fprintf(b, "            <S d=\"%d\"/>\n", d)
		}
	}
	b.WriteString("          </SegmentTimeline>\n        </SegmentTemplate>\n      </Representation>\n")
}

// keyURI is the license URL with the KID as a query parameter, which Clear
// Key license servers ignore and players use to tell keys apart. Without a
// license URL it is a data URI of the KID's bytes (EXT-X-KEY needs a URI;
// hls.js reads a data URI as the KID and takes the license URL from its own
// configuration).
func keyURI(license, kid string) string {
	if license == "" {
		raw, _ := hex.DecodeString(kid)
		return "data:text/plain;base64," + base64.StdEncoding.EncodeToString(raw)
	}
	sep := "?"
	if strings.Contains(license, "?") {
		sep = "&"
	}
	return license + sep + "kid=" + kid
}
