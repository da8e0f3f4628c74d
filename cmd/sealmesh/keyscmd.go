package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/sealmesh/sealmesh/keys"
	"github.com/sealmesh/sealmesh/segment"
)

const keysSynopsis = `Usage: sealmesh keys <init|list|export> [flags]

  init    create a new key store: a Tink AES-256-GCM keyset (the KEK) sealed
          under your passphrase (argon2id), and the manifest signing key
  list    content IDs with their KIDs per crypto period, the public signing
          keys that peers and players must trust, and the exact flags that
          pin them ('sealmesh peer play|seed'); --pins prints only those
          flags, --json everything for scripts
  export  print a content's clear keys as JSON; refused without
          --insecure-cleartext (for tests and migration only)

The passphrase comes from $SEALMESH_KEYSTORE_PASSPHRASE or --passphrase-file.
Instead of a passphrase, $SEALMESH_KEYSTORE_KEY may hold a random 32-byte
master key (hex or base64) delivered by a secrets manager or unwrapped by a
KMS: no key derivation runs, so opening the store costs microseconds instead
of argon2id's ~0.2 s and 64 MiB. A store made with one opens only with it.`

func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, keysSynopsis)
		return usageErr("keys: give a subcommand: init, list or export")
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stdout, keysSynopsis)
		return nil
	}
	sub, rest := args[0], args[1:]
	fs := newFlagSet("keys "+sub, keysSynopsis, stderr)
	ksPath := fs.String("keystore", "", "key store `path` (default $SEALMESH_KEYSTORE or "+DefaultKeystore+")")
	passFile := fs.String("passphrase-file", "", "read the passphrase from `file` instead of $"+keys.PassphraseEnv)
	switch sub {
	case "init":
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		path := keystorePath(*ksPath)
		pass, opts, err := unlock(*passFile)
		if err != nil {
			return err
		}
		ks, err := keys.Init(path, pass, opts...)
		if errors.Is(err, keys.ErrAlreadyInitialized) {
			return fmt.Errorf("key store %s already exists: keep using it, or move it away first (deleting it destroys every content key)", path)
		}
		if err != nil {
			return fmt.Errorf("create key store: %w", err)
		}
		defer ks.Close()
		for _, name := range []string{keys.SigningKeyManifest, keys.SigningKeyLicense} {
			sk, err := ks.SigningKey(ctx, name)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s signing key %s (public %s)\n", name, sk.ID(), hex.EncodeToString(sk.Public()))
		}
		fmt.Fprintf(stdout, "created key store %s\n", path)
		return nil
	case "list":
		asJSON := fs.Bool("json", false, "print JSON")
		pins := fs.Bool("pins", false, "print only the flags that pin the public keys in 'sealmesh peer' (--license-key HEX --manifest-key ID:HEX)")
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		ks, err := openKeystore(keystorePath(*ksPath), *passFile)
		if err != nil {
			return err
		}
		defer ks.Close()
		if *pins {
			flags, err := pinFlags(ctx, ks)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, strings.Join(flags, " "))
			return nil
		}
		return listKeys(ctx, ks, *asJSON, stdout)
	case "export":
		content := fs.String("content", "", "content `ID` whose keys to print")
		insecure := fs.Bool("insecure-cleartext", false, "really print clear content keys (tests and migration only)")
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		if !*insecure {
			return usageErr("keys export prints clear content keys: pass --insecure-cleartext if that is really what you want")
		}
		if *content == "" {
			return usageErr("keys export: give --content ID")
		}
		ks, err := openKeystore(keystorePath(*ksPath), *passFile)
		if err != nil {
			return err
		}
		defer ks.Close()
		cks, err := ks.ContentKeys(ctx, *content)
		if errors.Is(err, keys.ErrNotFound) {
			return fmt.Errorf("no keys for content %q: see 'sealmesh keys list'", *content)
		}
		if err != nil {
			return err
		}
		out := make([]exportedKey, 0, len(cks))
		for _, ck := range cks {
			out = append(out, exportedKey{KID: ck.KID().String(), Key: hex.EncodeToString(ck.InsecureRawKey()), Period: ck.Period()})
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	default:
		return usageErr("keys: unknown subcommand %q (init, list or export; see 'sealmesh keys --help')", sub)
	}
}

// pinFlags returns the 'sealmesh peer' flags that pin the store's public
// signing keys, so that no key is fetched from the license server.
func pinFlags(ctx context.Context, ks *keys.FileStore) ([]string, error) {
	msk, err := ks.SigningKey(ctx, keys.SigningKeyManifest)
	if err != nil {
		return nil, err
	}
	lsk, err := ks.SigningKey(ctx, keys.SigningKeyLicense)
	if err != nil {
		return nil, err
	}
	return []string{"--license-key", hex.EncodeToString(lsk.Public()), "--manifest-key", msk.ID() + ":" + hex.EncodeToString(msk.Public())}, nil
}

// signingKeyInfo is one public signing key in 'keys list --json'.
type signingKeyInfo struct {
	ID     string `json:"id"`
	Public string `json:"public"` // hex
}

// keyList is 'keys list --json'.
type keyList struct {
	// SigningKeys maps "<name> <id>" to the public key in hex (kept for
	// scripts written against earlier versions).
	SigningKeys map[string]string `json:"signing_keys"`
	LicenseKey  signingKeyInfo    `json:"license_key"`
	ManifestKey signingKeyInfo    `json:"manifest_key"`
	// PinFlags are the flags that pin both keys, ready to paste after
	// 'sealmesh peer play|seed'; PinArgs the same, one argument each.
	PinFlags string         `json:"pin_flags"`
	PinArgs  []string       `json:"pin_args"`
	Content  []contentEntry `json:"content"`
}

type contentEntry struct {
	Content string   `json:"content"`
	KIDs    []string `json:"kids"`
	Created string   `json:"created"`
}

func listKeys(ctx context.Context, ks *keys.FileStore, asJSON bool, w io.Writer) error {
	list, err := ks.ListContent(ctx)
	if err != nil {
		return err
	}
	out := keyList{SigningKeys: map[string]string{}}
	var signing []string
	for _, name := range []string{keys.SigningKeyManifest, keys.SigningKeyLicense} {
		sk, err := ks.SigningKey(ctx, name)
		if err != nil {
			return err
		}
		info := signingKeyInfo{ID: sk.ID(), Public: hex.EncodeToString(sk.Public())}
		if name == keys.SigningKeyLicense {
			out.LicenseKey = info
		} else {
			out.ManifestKey = info
		}
		out.SigningKeys[name+" "+sk.ID()] = info.Public
		signing = append(signing, fmt.Sprintf("%s signing key %s  public %s", name, sk.ID(), info.Public))
	}
	// The flags of 'sealmesh peer play|seed' that pin both keys, so that
	// neither is fetched from the license server (issue 12, L2).
	if out.PinArgs, err = pinFlags(ctx, ks); err != nil {
		return err
	}
	out.PinFlags = strings.Join(out.PinArgs, " ")
	for _, c := range list {
		it := contentEntry{Content: c.ID, Created: c.Created.UTC().Format("2006-01-02T15:04:05Z")}
		for _, k := range c.KIDs {
			it.KIDs = append(it.KIDs, k.String())
		}
		out.Content = append(out.Content, it)
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	for _, l := range signing {
		fmt.Fprintln(w, l)
	}
	fmt.Fprintf(w, "pin them in players: sealmesh peer ... %s\n", out.PinFlags)
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CONTENT\tPERIODS\tCREATED\tKIDS")
	for _, it := range out.Content {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%v\n", it.Content, len(it.KIDs), it.Created, it.KIDs)
	}
	return tw.Flush()
}

func runImport(ctx context.Context, playlist, content, ksPath, passFile string, keyArgs []string, keysFile string, force bool, stdout io.Writer) error {
	if playlist == "" || content == "" {
		return usageErr("--import needs --in PLAYLIST (the encrypted content's HLS playlist) and --content ID")
	}
	if _, err := os.Stat(playlist); err != nil {
		return usageErr("--in %s: %v", playlist, errors.Unwrap(err))
	}
	cks, err := parseImportKeys(keyArgs, keysFile)
	if err != nil {
		return err
	}
	ks, err := openKeystore(keystorePath(ksPath), passFile)
	if err != nil {
		return err
	}
	defer ks.Close()
	if _, err := ks.ContentKeys(ctx, content); err == nil && !force {
		return fmt.Errorf("content %q already has keys: pass --force to replace them", content)
	}
	sk, err := ks.SigningKey(ctx, "manifest")
	if err != nil {
		return err
	}
	kids := make([][16]byte, len(cks))
	for i, ck := range cks {
		kids[i] = ck.KID()
	}
	m, err := segment.Import(ctx, segment.ImportConfig{
		Playlist: playlist, ContentID: content, KIDs: kids, Force: force,
		Signer: sk.Signer(), SigningKeyID: sk.ID(),
		BeforeCommit: func(*segment.Manifest) error { return ks.PutContent(ctx, content, cks, force) },
	})
	if err != nil {
		return fmt.Errorf("import failed, no manifest written and no keys registered: %w", err)
	}
	fmt.Fprintf(stdout, "imported %q: %d renditions, %d crypto period(s); signed manifest written beside %s\n", content, len(m.Renditions), len(m.Periods), playlist)
	return nil
}
