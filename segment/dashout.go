package segment

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"
	"github.com/Eyevinn/mp4ff/mp4"
)

// DASH scheme URIs the MPD names.
const (
	mp4ProtectionScheme = "urn:mpeg:dash:mp4protection:2011"
	clearKeyScheme      = mpd.DRM_CLEAR_KEY_DASHIF // e2719d58-...: Clear Key as DASH-IF names it
)

// dashMPD writes a static MPD with one Period per crypto period, so each
// period's init (with its own default KID) and key are announced where they
// apply; Shaka Player switches keys at the period boundary. rates maps an
// audio rendition's ID to its sampling rate.
//
// Each AdaptationSet carries the mp4protection descriptor (scheme and
// default_KID) and the DASH-IF Clear Key descriptor with dashif:Laurl when a
// license URL is configured. It does not carry the W3C common-PSSH
// ContentProtection (1077efec-...): that PSSH stays in the init segments,
// where every player finds it through the "encrypted" event, while dash.js
// 5 hands an MPD copy to the browser as "keyids" init data built from the
// wrong bytes and fails with "unable to create session" (issue 13).
func dashMPD(cfg *Config, m *Manifest, rates map[string]int) (string, error) {
	doc := mpd.NewMPD(mpd.STATIC_TYPE)
	doc.Profiles = mpd.PROFILE_LIVE
	doc.MediaPresentationDuration = dur(m.Duration)
	doc.MinBufferTime = dur(2)
	for p, per := range m.Periods {
		end := m.Duration
		if p+1 < len(m.Periods) {
			end = m.Periods[p+1].Start
		}
		period := mpd.NewPeriod()
		period.Id = "p" + strconv.Itoa(p)
		period.Start = dur(per.Start)
		period.Duration = dur(end - per.Start)
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
			as := mpd.NewAdaptationSetWithParams(kind, kind+"/mp4", true, 1)
			if kind == "audio" {
				as.Lang = reps[0].Language
			}
			cp := mpd.NewContentProtection()
			cp.SchemeIdUri = mp4ProtectionScheme
			cp.Value = string(m.Scheme)
			cp.DefaultKID = kidUUID(per.KID)
			as.ContentProtections = append(as.ContentProtections, cp)
			ck := mpd.NewContentProtection()
			ck.SchemeIdUri = clearKeyScheme
			ck.Value = "ClearKey1.0"
			if cfg.LicenseURL != "" {
				ck.LaURL = &mpd.LaURLType{Value: mpd.AnyURI(cfg.LicenseURL)}
			}
			as.ContentProtections = append(as.ContentProtections, ck)
			for _, r := range reps {
				rep, err := dashRepresentation(r, p, rates[r.ID])
				if err != nil {
					return "", err
				}
				if rep != nil {
					as.AppendRepresentation(rep)
				}
			}
			if len(as.Representations) > 0 {
				period.AppendAdaptationSet(as)
			}
		}
		doc.AppendPeriod(period)
	}
	return doc.WriteToString("  ", true)
}

func dur(sec float64) *mpd.Duration {
	d := mpd.Duration(time.Duration(math.Round(sec*1000)) * time.Millisecond)
	return &d
}

func dashRepresentation(r Rendition, period, rate int) (*mpd.RepresentationType, error) {
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
		return nil, nil
	}
	var rep *mpd.RepresentationType
	if r.Type == "video" {
		rep = mpd.NewVideoRepresentation(r.ID, r.Codec, "", "", r.Bandwidth, r.Width, r.Height)
	} else {
		if rate <= 0 {
			return nil, fmt.Errorf("audio rendition %s: no sampling rate", r.ID)
		}
		rep = mpd.NewAudioRepresentation(r.ID, r.Codec, "", r.Bandwidth, rate)
	}
	ts := float64(r.Timescale)
	t0 := uint64(math.Round(media[0].Start * ts))
	st := mpd.NewSegmentTemplate()
	st.SetTimescale(r.Timescale)
	st.PresentationTimeOffset = &t0
	start := uint32(media[0].Index)
	st.StartNumber = &start
	st.Initialization = init
	st.Media = r.ID + "/$Number$.m4s"
	st.SegmentTimeline = mpd.NewSegmentTimeline()
	for i, f := range media {
		s := &mpd.S{D: uint64(math.Round(f.Duration * ts))}
		if i == 0 {
			s.T = &t0
		}
		st.SegmentTimeline.S = append(st.SegmentTimeline.S, s)
	}
	rep.SegmentTemplate = st
	return rep, nil
}

// audioRates reads the sampling rate of every audio rendition from its
// first init segment in dir (the packager's own output): the sample entry's
// samplerate field, or the media timescale when that field cannot hold the
// rate (16.16 fixed point tops out below 65536 Hz).
func audioRates(dir string, m *Manifest) (map[string]int, error) {
	rates := map[string]int{}
	for _, r := range m.Renditions {
		if r.Type != "audio" {
			continue
		}
		for _, f := range r.Files {
			if f.Kind != KindInit {
				continue
			}
			rate, err := initSampleRate(filepath.Join(dir, filepath.FromSlash(f.Path)))
			if err != nil {
				return nil, fmt.Errorf("audio rendition %s: %w", r.ID, err)
			}
			rates[r.ID] = rate
			break
		}
	}
	return rates, nil
}

func initSampleRate(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	f, err := mp4.DecodeFile(bytes.NewReader(data))
	if err != nil {
		return 0, err
	}
	if f.Init == nil || f.Init.Moov == nil || f.Init.Moov.Trak == nil {
		return 0, fmt.Errorf("%s: no track", path)
	}
	trak := f.Init.Moov.Trak
	return sampleRate(trak.Mdia.Minf.Stbl.Stsd, trak.Mdia.Mdhd.Timescale), nil
}

// sampleRate is an audio track's sampling rate from its sample entry, with
// the media timescale as the fallback.
func sampleRate(stsd *mp4.StsdBox, timescale uint32) int {
	if stsd != nil && len(stsd.Children) == 1 {
		if se, ok := stsd.Children[0].(*mp4.AudioSampleEntryBox); ok && se.SampleRate > 0 {
			return int(se.SampleRate)
		}
	}
	return int(timescale)
}
