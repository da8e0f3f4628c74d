package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sealmesh/sealmesh/keys"
	"github.com/sealmesh/sealmesh/license"
	"github.com/sealmesh/sealmesh/segment"
)

// contentCatalog builds the --content-dir catalog, trusting the key store's
// manifest signing key only.
func contentCatalog(ctx context.Context, kr *keys.Reader, dirs []string, logger *slog.Logger) (*license.DirCatalog, error) {
	mk, err := kr.SigningKey(ctx, keys.SigningKeyManifest)
	if errors.Is(err, keys.ErrNotFound) {
		return nil, fmt.Errorf("--content-dir: key store %s has no %q signing key to check manifests with: it is made by 'sealmesh keys init'", kr.Path(), keys.SigningKeyManifest)
	}
	if err != nil {
		return nil, fmt.Errorf("--content-dir: %w", err)
	}
	cat, err := license.NewDirCatalog(dirs, segment.TrustedKeys{mk.ID(): mk.Public()}, logger)
	if err != nil {
		return nil, fmt.Errorf("--content-dir: %w (give folders that 'sealmesh pack --out' wrote into, e.g. the parent of the --out folders)", err)
	}
	ids := cat.Contents()
	logger.Info("content catalog loaded", "contents", len(ids), "dirs", strings.Join(dirs, ","))
	if len(ids) == 0 {
		logger.Warn("no signed manifests found under --content-dir: position requests will fail until content is packed there", "pattern", "<DIR>/*/"+segment.ManifestFile)
	}
	return cat, nil
}

func runRevocations(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("license revocations", licenseSynopsis, stderr)
	statePath := fs.String("state", DefaultState, "state file `path` of the license server")
	asJSON := fs.Bool("json", false, "print a JSON array instead of a table")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	list, via, err := license.ReadRevocations(ctx, *statePath)
	if err != nil {
		return fmt.Errorf("license revocations: %w", err)
	}
	if *asJSON {
		if list == nil {
			list = []license.Revocation{}
		}
		b, _ := json.MarshalIndent(list, "", "  ")
		fmt.Fprintln(stdout, string(b))
		return nil
	}
	fmt.Fprintf(stderr, "%d revocations (read from the %s)\n", len(list), via)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tVALUE\tSINCE")
	for _, r := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Kind, r.Value, r.Time.Format(time.RFC3339))
	}
	return tw.Flush()
}

func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("license audit", licenseSynopsis, stderr)
	statePath := fs.String("state", DefaultState, "state file `path` of the license server")
	since := fs.Duration("since", 0, "only entries of the last `duration` (e.g. 1h; 0: all)")
	asJSON := fs.Bool("json", false, "print one JSON object per line (NDJSON) instead of a table")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *since < 0 {
		return usageErr("license audit: --since must be positive (e.g. --since 1h)")
	}
	var from time.Time
	if *since > 0 {
		from = time.Now().Add(-*since)
	}
	var tw *tabwriter.Writer
	enc := json.NewEncoder(stdout)
	if !*asJSON {
		tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tEVENT\tACCOUNT\tCONTENT\tKIDS\tDEVICE\tID")
	}
	n := 0
	via, err := license.ReadAudit(ctx, *statePath, from, func(e license.AuditEntry) error {
		n++
		if *asJSON {
			return enc.Encode(e)
		}
		id := e.LicenseID
		if id == "" {
			id = e.TicketID
		}
		if id == "" {
			id = e.SessionID
		}
		if e.PeerID != "" {
			id += " peer=" + e.PeerID
		}
		acct := e.AccountHash
		if len(acct) > 12 {
			acct = acct[:12] + "…"
		}
		short := make([]string, len(e.KIDs))
		for i, k := range e.KIDs {
			short[i] = k
			if len(k) > 8 {
				short[i] = k[:8] + "…"
			}
		}
		_, err := fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Format(time.RFC3339), e.Event, acct, e.Content, strings.Join(short, ","), e.Device, id)
		return err
	})
	if tw != nil {
		_ = tw.Flush()
	}
	if err != nil {
		return fmt.Errorf("license audit: %w", err)
	}
	if !*asJSON {
		fmt.Fprintf(stderr, "%d entries (read from the %s)\n", n, via)
	}
	return nil
}
