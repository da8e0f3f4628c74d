package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sealmesh/sealmesh/player"
)

// status prints a live status until done: one line redrawn every second on
// a terminal, a line every 10 s (or every) elsewhere, so that logs and
// pipes see progress too. License trouble and its end are printed as lines
// of their own the moment the status notices them, on a terminal or not.
func status(ctx context.Context, s *player.Session, mode string, done <-chan struct{}, w io.Writer, every time.Duration) {
	tty := isTerminal(w)
	if every == 0 {
		every = time.Second
		if !tty {
			every = 10 * time.Second
		}
	}
	// License events are checked more often than a slow status line is
	// printed: an outage should show within a second.
	check := min(every, time.Second)
	t := time.NewTicker(check)
	defer t.Stop()
	var licErr error
	fails := 0
	last := time.Now()
	for {
		select {
		case <-done:
		case <-ctx.Done():
		case <-t.C:
			st := s.Stats()
			if ev := licenseEvent(licErr, fails, st); ev != "" {
				if tty {
					fmt.Fprint(w, "\r\033[K")
				}
				fmt.Fprintln(w, ev)
			}
			if st.LicenseErr == nil {
				fails = 0
			} else if licErr == nil {
				fails = st.RenewFailures
			}
			licErr = st.LicenseErr
			if time.Since(last) < every-check/2 {
				continue
			}
			last = time.Now()
			if tty {
				fmt.Fprintf(w, "\r\033[K%s", statusLine(mode, st))
			} else {
				fmt.Fprintf(w, "%s %s\n", time.Now().Format("15:04:05"), statusLine(mode, st))
			}
			continue
		}
		if tty {
			fmt.Fprintln(w)
		}
		return
	}
}

func statusLine(mode string, st player.Stats) string {
	if mode == "seed" {
		return fmt.Sprintf("seed  peers %2d  held %d/%d  from peers %s  from origin %s  uploaded %s", st.Peers, st.Held, st.Files, mb(st.BytesFromPeers), mb(st.BytesFromOrigin), mb(st.BytesUploaded))
	}
	line := fmt.Sprintf("%s  pos %6.1fs  buffer %5.1fs  peers %2d  P2P %3.0f%%  up %s  stalls %d", mode, st.Playhead, st.Buffered.Seconds(), st.Peers, 100*st.PeerShare(), mb(st.BytesUploaded), st.Stalls)
	if st.Stalled {
		line += " (stalled now)"
	}
	switch {
	case errors.Is(st.LicenseErr, player.ErrLicenseUnavailable):
		line += fmt.Sprintf("  license: server unavailable, retry in %s", until(st.NextRenewal))
	case st.LicenseErr != nil:
		line += fmt.Sprintf("  license: refused, retry in %s", until(st.NextRenewal))
	}
	return line
}

// licenseEvent is the line to print when the license state changed since
// the last check (prevErr, with prevFails failures counted then), or "".
func licenseEvent(prevErr error, prevFails int, st player.Stats) string {
	switch {
	case st.LicenseErr != nil && (prevErr == nil || errors.Is(prevErr, player.ErrLicenseUnavailable) != errors.Is(st.LicenseErr, player.ErrLicenseUnavailable)):
		what := "license: the license server refused to renew"
		if errors.Is(st.LicenseErr, player.ErrLicenseUnavailable) {
			what = "license: cannot renew, the license server is unreachable or failing"
		}
		exp := "the license has expired: new segments wait for keys"
		if d := time.Until(st.LicenseExpiry); d > 0 {
			exp = "the license expires in " + d.Round(time.Second).String()
		}
		return fmt.Sprintf("%s (%v); retrying in %s; %s", what, st.LicenseErr, until(st.NextRenewal), exp)
	case st.LicenseErr == nil && prevErr != nil:
		return fmt.Sprintf("license: renewed again after %d failed attempts", st.RenewFailures-prevFails+1)
	}
	return ""
}

func until(t time.Time) string {
	return max(time.Until(t), 0).Round(100 * time.Millisecond).String()
}

// summary prints what the session did, on exit.
func summary(w io.Writer, st player.Stats, mode, content string, ran time.Duration) {
	fmt.Fprintf(w, "summary of %s %q after %s:\n", mode, content, ran.Round(100*time.Millisecond))
	if mode == "play" {
		startup := "not started"
		if st.Started {
			startup = st.StartupTime.Round(time.Millisecond).String()
		}
		fmt.Fprintf(w, "  played        %.1f s (start-up %s)\n", st.Playhead, startup)
		fmt.Fprintf(w, "  stalls        %d (%s)\n", st.Stalls, st.StallTime.Round(time.Millisecond))
	} else {
		fmt.Fprintf(w, "  held          %d of %d files\n", st.Held, st.Files)
	}
	fmt.Fprintf(w, "  from peers    %s (%d bytes)\n", mb(st.BytesFromPeers), st.BytesFromPeers)
	fmt.Fprintf(w, "  from origin   %s (%d bytes)\n", mb(st.BytesFromOrigin), st.BytesFromOrigin)
	fmt.Fprintf(w, "  offload       %.1f %%\n", 100*st.PeerShare())
	fmt.Fprintf(w, "  uploaded      %s (%d bytes)\n", mb(st.BytesUploaded), st.BytesUploaded)
	if mode == "play" {
		fmt.Fprintf(w, "  segments      %d served, %d refused (no license), %d unavailable (license server down)\n", st.Segments, st.Refused, st.Unavailable)
		fmt.Fprintf(w, "  license       %d renewals, %d failed attempts", st.Renewals, st.RenewFailures)
		if st.LicenseErr != nil {
			fmt.Fprintf(w, ", failing at exit: %v", st.LicenseErr)
		}
		fmt.Fprintln(w)
	}
}
