package segment

import (
	"fmt"
	"math"
	"path/filepath"
	"time"
)

type periodPlan struct {
	ofSeg    []int     // period of each segment (by index)
	starts   []int     // first segment index of each period
	startSec []float64 // start time of each period
}

// planPeriods assigns segments to crypto periods by the reference track's
// times: a segment starting at or after the next multiple of cp opens a new
// period. All tracks share the reference's cuts, so one plan serves them all.
func planPeriods(ref *track, cp time.Duration) periodPlan {
	var pp periodPlan
	cur := -1
	bucket := int64(-1)
	for i, s := range ref.segs {
		sec := float64(s.start) / float64(ref.timescale)
		b := int64(0)
		if cp > 0 {
			b = int64((sec + 1e-6) / cp.Seconds())
		}
		if b != bucket {
			bucket = b
			cur++
			pp.starts = append(pp.starts, i)
			pp.startSec = append(pp.startSec, sec)
		}
		pp.ofSeg = append(pp.ofSeg, cur)
	}
	return pp
}

// planSegments cuts every track at the same instants. The reference (first)
// track is cut where an input ladder cut it, or else at its sync samples
// nearest each multiple of target; every other track is cut at the sample
// nearest those times, and video must have a keyframe there.
func planSegments(tracks []*track, target time.Duration) error {
	rebase(tracks)
	ref := tracks[0]
	cuts := ref.ladderCuts
	if cuts == nil {
		syncs, end := ref.idx.syncTimes()
		step := uint64(target.Seconds() * float64(ref.timescale))
		cuts = []uint64{0}
		next := step
		for _, s := range syncs {
			if s == 0 || s+step/8 < next {
				continue
			}
			if end-s < step/4 { // do not leave a sliver of a last segment
				break
			}
			cuts = append(cuts, s)
			for next <= s+step/8 {
				next += step
			}
		}
	}
	for _, t := range tracks {
		tc := make([]uint64, len(cuts))
		for i, c := range cuts {
			tc[i] = uint64((float64(c)/float64(ref.timescale))*float64(t.timescale) + 0.5)
		}
		if err := cutTrack(t, tc); err != nil {
			return err
		}
	}
	return nil
}

// longSegmentFactor is how much longer than the target a segment may be
// before Pack warns: cuts land on keyframes, so some excess is normal, but
// segments of twice the target delay start-up and seeking and make peers
// hold and relay larger pieces.
const longSegmentFactor = 1.5

// spacingWarning returns a one-sentence warning when the reference track's
// segments run much longer than target because its keyframes (or an input
// ladder's segments) are too far apart, or "" when they do not.
func spacingWarning(ref *track, target time.Duration) string {
	var longest uint64
	for _, s := range ref.segs {
		longest = max(longest, s.end-s.start)
	}
	sec := float64(longest) / float64(ref.timescale)
	if sec <= longSegmentFactor*target.Seconds() {
		return ""
	}
	if ref.ladderCuts != nil {
		return fmt.Sprintf("segments last up to %.1fs, %.1f× the %v segment duration asked for, because the input ladder's segments are that long: re-segment the input or pass --segment-duration %v",
			sec, sec/target.Seconds(), target, roundSec(sec))
	}
	syncs, end := ref.idx.syncTimes()
	var gap uint64
	for i, t := range syncs {
		next := end
		if i+1 < len(syncs) {
			next = syncs[i+1]
		}
		gap = max(gap, next-t)
	}
	return fmt.Sprintf("segments last up to %.1fs, %.1f× the %v segment duration asked for, because %s has keyframes up to %.1fs apart: re-encode it with a keyframe every %v (ffmpeg -g N -keyint_min N -sc_threshold 0) or pass --segment-duration %v",
		sec, sec/target.Seconds(), target, filepath.Base(ref.input), float64(gap)/float64(ref.timescale), target, roundSec(sec))
}

// roundSec is sec as a whole-second duration, at least one second.
func roundSec(sec float64) time.Duration {
	return max(time.Second, time.Duration(math.Round(sec))*time.Second)
}

// rebase moves a timeline that does not start at zero (a ladder cut from a
// live stream) to zero, by the same number of seconds on every track so that
// audio and video stay in sync.
func rebase(tracks []*track) {
	base := math.Inf(1)
	for _, t := range tracks {
		base = math.Min(base, float64(t.idx.dts[0])/float64(t.timescale))
	}
	if base <= 0 {
		return
	}
	for _, t := range tracks {
		b := uint64(base * float64(t.timescale))
		t.base = b
		for i := range t.idx.dts {
			t.idx.dts[i] -= b
		}
		for i := range t.ladderCuts {
			t.ladderCuts[i] -= min(b, t.ladderCuts[i])
		}
	}
}
