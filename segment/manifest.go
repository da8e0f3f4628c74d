package segment

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path"
	"regexp"
	"strings"
	"time"
)

// ManifestFile is the name of the signed segment manifest inside a packaged folder.
const ManifestFile = "sealmesh.json"

// ManifestVersion is the only manifest format version this package reads and writes.
//
// Compatibility. The version changes only for a change that an older reader
// must not silently ignore. Fields are otherwise added to version 1, each
// optional, with its absence meaning what manifests from before it meant:
// "sequence" (see Manifest.Sequence) is such a field, and manifests packed
// before it read as sequence 0. Readers decode the signed body strictly, so a
// reader older than a field refuses a manifest that carries it (it fails
// closed rather than miss a rule it does not know). The envelope around the
// signed body is read leniently instead: it is where a live stream's signed
// append-only log will grow (a checkpoint per segment, each signed over its
// own exact bytes and chained to the digest of the body, see Manifest.Digest),
// and a reader that does not know the log still verifies the body it does know.
const ManifestVersion = 1

// Limits on manifests read from outside. A manifest comes from peers and origins
// that we do not trust until its signature checks, so the parser bounds every
// allocation before it can verify anything.
const (
	MaxManifestSize  = 16 << 20 // bytes of sealmesh.json
	MaxManifestFiles = 200_000  // files across all renditions
	MaxFileSize      = 1 << 30  // a single init or media file
)

// manifestSigContext separates manifest signatures from every other Ed25519
// signature made with the same key (licenses, tickets).
const manifestSigContext = "sealmesh manifest v1\x00"

// Errors that manifest and segment verification wrap; branch with errors.Is.
var (
	// ErrBadSignature: the manifest's signature does not verify under any trusted key.
	ErrBadSignature = errors.New("manifest signature does not verify")
	// ErrUnknownFile: the path is not listed in the manifest.
	ErrUnknownFile = errors.New("file not listed in manifest")
	// ErrIntegrity: bytes do not match the size or SHA-256 listed in the manifest.
	ErrIntegrity = errors.New("bytes do not match the manifest")
	// ErrMalformedManifest: the manifest cannot be parsed or breaks a structural rule.
	ErrMalformedManifest = errors.New("malformed manifest")
	// ErrRollback: a manifest older (by sequence number) than one already
	// accepted for the same content.
	ErrRollback = errors.New("manifest is older than one already seen (rollback)")
)

// FileKind says what a manifest entry holds.
type FileKind string

// File kinds listed in a manifest.
const (
	KindInit     FileKind = "init"
	KindMedia    FileKind = "media"
	KindPlaylist FileKind = "playlist"
)

// Manifest is the signed list of every file a packaged content is made of.
// Peers check each file's ciphertext against it before caching, relaying or
// decrypting.
type Manifest struct {
	Version   int    `json:"version"`
	ContentID string `json:"content_id"`
	// Sequence orders the manifests of one content: a manifest that replaces
	// another has a higher one, so a player that has seen sequence N refuses
	// an older, validly signed manifest of the same content (a rollback to
	// other files or keys). Pack and Import set it with NextSequence. Absent
	// (0) in manifests packed before the field existed. Milliseconds since
	// 1970 stay far below 2^53, so JavaScript readers read it exactly.
	Sequence        uint64      `json:"sequence,omitempty"`
	Scheme          Scheme      `json:"scheme"`
	Created         time.Time   `json:"created"`
	SegmentDuration float64     `json:"segment_duration"`        // target, seconds
	CryptoPeriod    float64     `json:"crypto_period,omitempty"` // seconds; 0: one key
	Duration        float64     `json:"duration"`                // seconds
	ClearLead       int         `json:"clear_lead,omitempty"`    // leading clear media segments per track
	SigningKeyID    string      `json:"signing_key_id"`
	Periods         []Period    `json:"periods"`
	Renditions      []Rendition `json:"renditions"`
	Playlists       []File      `json:"playlists,omitempty"`

	// digest is the SHA-256 of the exact signed bytes, set by ParseManifest
	// and SignManifest.
	digest [sha256.Size]byte
}

// Digest returns the hex SHA-256 of the manifest's exact signed bytes (the
// "manifest" member of the envelope, which the signature covers), or "" for a
// manifest that was neither parsed nor signed by this package. A license names
// the digest of the manifest it was issued for, so that a player refuses any
// other manifest of the content, however validly signed.
func (m *Manifest) Digest() string {
	if m.digest == [sha256.Size]byte{} {
		return ""
	}
	return hex.EncodeToString(m.digest[:])
}

// NextSequence is the rule for a manifest's sequence number: the packing time
// in Unix milliseconds, or one more than prev (the sequence of the manifest it
// replaces, 0 if none) when that is larger. The time keeps sequences rising
// when content is re-packed into a fresh folder (on another machine, then
// uploaded), provided the packaging clocks do not run backwards by more than
// the time between two packs; prev+1 keeps them rising however the clock runs
// when a pack replaces its previous output in place (--force).
func NextSequence(prev uint64, now time.Time) uint64 {
	seq := uint64(max(now.UnixMilli(), 1))
	if prev >= seq {
		seq = prev + 1
	}
	return seq
}

// PreviousSequence returns the sequence number of the signed manifest at
// path if it exists and verifies under pub, and 0 otherwise. Pack and Import
// use it to continue the sequence of the manifest they replace; a manifest
// signed by another (older) key is ignored and the clock decides.
func PreviousSequence(path string, pub crypto.PublicKey) uint64 {
	ed, ok := pub.(ed25519.PublicKey)
	if !ok {
		return 0
	}
	data, err := os.ReadFile(path)
	if err != nil || len(data) > MaxManifestSize {
		return 0
	}
	var env signedManifest
	if json.Unmarshal(data, &env) != nil {
		return 0
	}
	m, err := ParseManifest(data, TrustedKeys{env.KeyID: ed})
	if err != nil || m.Sequence == math.MaxUint64 {
		return 0
	}
	return m.Sequence
}

// Period is one crypto period: a span of media encrypted under one key.
type Period struct {
	Index int     `json:"index"`
	KID   string  `json:"kid"`   // 32 lowercase hex
	Start float64 `json:"start"` // seconds
}

// Rendition is one track of the content (one CMAF track per folder).
type Rendition struct {
	ID        string `json:"id"`
	Type      string `json:"type"` // "video" or "audio"
	Codec     string `json:"codec"`
	Bandwidth int    `json:"bandwidth"`
	Width     int    `json:"width,omitempty"`
	Height    int    `json:"height,omitempty"`
	Timescale uint32 `json:"timescale"`
	Language  string `json:"language,omitempty"`
	Files     []File `json:"files"`
}

// File is one file's identity: where it lives and what its ciphertext hashes to.
type File struct {
	Path     string   `json:"path"`
	Kind     FileKind `json:"kind"`
	Index    int      `json:"index,omitempty"`    // media: 1-based segment number
	Period   int      `json:"period"`             // crypto period of the file
	Start    float64  `json:"start,omitempty"`    // media: seconds
	Duration float64  `json:"duration,omitempty"` // media: seconds
	Size     int64    `json:"size"`
	SHA256   string   `json:"sha256"`
}

// signedManifest is the on-disk envelope. The signature covers the exact bytes
// of "manifest" as they stand in the file, so no canonical JSON is needed.
type signedManifest struct {
	Manifest  json.RawMessage `json:"manifest"`
	KeyID     string          `json:"key_id"`
	Signature []byte          `json:"signature"`
}

// SignManifest encodes m and signs it with an Ed25519 signer (an
// ed25519.PrivateKey or a key store's opaque signer). It refuses a manifest
// that fails Validate. It records the digest of the signed bytes in m (see
// Digest).
func SignManifest(m *Manifest, signer crypto.Signer) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if _, ok := signer.Public().(ed25519.PublicKey); !ok {
		return nil, errors.New("manifest signing key is not Ed25519")
	}
	body, err := json.MarshalIndent(m, "  ", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	sig, err := signer.Sign(nil, append([]byte(manifestSigContext), body...), crypto.Hash(0))
	if err != nil {
		return nil, fmt.Errorf("sign manifest: %w", err)
	}
	out, err := json.MarshalIndent(signedManifest{Manifest: body, KeyID: m.SigningKeyID, Signature: sig}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode manifest envelope: %w", err)
	}
	// The envelope's "manifest" member is body byte for byte: json.RawMessage
	// is copied verbatim (after compaction, which MarshalIndent re-indents
	// the same way), so readers hash what was signed. Check rather than trust.
	var back signedManifest
	if err := json.Unmarshal(out, &back); err != nil || !bytes.Equal(back.Manifest, body) {
		return nil, errors.New("encode manifest envelope: signed bytes changed in encoding")
	}
	m.digest = sha256.Sum256(body)
	return append(out, '\n'), nil
}

// TrustedKeys maps a signing key ID to its Ed25519 public key.
type TrustedKeys map[string]ed25519.PublicKey

// ParseManifest verifies data's signature against trusted and only then
// decodes and validates the manifest, and records the digest of the signed
// bytes (see Digest). Errors wrap ErrMalformedManifest or ErrBadSignature.
// Whether the manifest is the current one of its content (not an older one
// replayed) is for the caller to judge, by Sequence and Digest.
func ParseManifest(data []byte, trusted TrustedKeys) (*Manifest, error) {
	// Verify before use: nothing inside the manifest is looked at (beyond
	// locating the signed bytes) until the signature checks.
	if len(data) > MaxManifestSize {
		return nil, fmt.Errorf("%w: %d bytes is over the %d limit", ErrMalformedManifest, len(data), MaxManifestSize)
	}
	var env signedManifest
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedManifest, err)
	}
	pub, ok := trusted[env.KeyID]
	if !ok || len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: signing key %q is not trusted", ErrBadSignature, env.KeyID)
	}
	if len(env.Signature) != ed25519.SignatureSize || len(env.Manifest) == 0 {
		return nil, fmt.Errorf("%w: missing signature or body", ErrBadSignature)
	}
	if !ed25519.Verify(pub, append([]byte(manifestSigContext), env.Manifest...), env.Signature) {
		return nil, ErrBadSignature
	}
	dec := json.NewDecoder(bytes.NewReader(env.Manifest))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedManifest, err)
	}
	if m.SigningKeyID != env.KeyID {
		return nil, fmt.Errorf("%w: key ID inside (%q) differs from the envelope's (%q)", ErrMalformedManifest, m.SigningKeyID, env.KeyID)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	m.digest = sha256.Sum256(env.Manifest)
	return &m, nil
}

var (
	contentIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	hexKIDRe    = regexp.MustCompile(`^[0-9a-f]{32}$`)
	sha256Re    = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// ValidContentID reports whether id is usable as a content ID: 1 to 128
// characters of letters, digits, '.', '_' and '-', starting with a letter or
// digit. Content IDs name folders and URL paths, so nothing else is allowed.
func ValidContentID(id string) error {
	if !contentIDRe.MatchString(id) {
		return fmt.Errorf("content ID %q: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit", id)
	}
	return nil
}

// validRelPath guards the paths peers will use to name cache files: relative,
// clean, slash-separated, no "..", no hidden or absolute parts.
func validRelPath(p string) error {
	if p == "" || len(p) > 512 || strings.HasPrefix(p, "/") || strings.Contains(p, "\\") || path.Clean(p) != p {
		return fmt.Errorf("path %q is not a clean relative path", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == "" || part == "." || part == ".." || strings.HasPrefix(part, ".") {
			return fmt.Errorf("path %q has a forbidden element %q", p, part)
		}
	}
	return nil
}

// Validate checks the structural rules every manifest must meet. Errors wrap
// ErrMalformedManifest.
func (m *Manifest) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrMalformedManifest, fmt.Sprintf(format, a...))
	}
	if m.Version != ManifestVersion {
		return bad("version %d is not supported (want %d)", m.Version, ManifestVersion)
	}
	if err := ValidContentID(m.ContentID); err != nil {
		return bad("%v", err)
	}
	if m.Scheme != SchemeCBCS && m.Scheme != SchemeCENC {
		return bad("scheme %q", m.Scheme)
	}
	if len(m.Periods) == 0 {
		return bad("no crypto periods")
	}
	for i, p := range m.Periods {
		if p.Index != i || !hexKIDRe.MatchString(p.KID) {
			return bad("period %d: index %d, kid %q", i, p.Index, p.KID)
		}
	}
	if len(m.Renditions) == 0 {
		return bad("no renditions")
	}
	seen := map[string]bool{}
	n := 0
	check := func(f File) error {
		n++
		if n > MaxManifestFiles {
			return bad("more than %d files", MaxManifestFiles)
		}
		if err := validRelPath(f.Path); err != nil {
			return bad("%v", err)
		}
		if seen[f.Path] {
			return bad("path %q listed twice", f.Path)
		}
		seen[f.Path] = true
		if f.Size <= 0 || f.Size > MaxFileSize || !sha256Re.MatchString(f.SHA256) {
			return bad("file %q: size %d, sha256 %q", f.Path, f.Size, f.SHA256)
		}
		if f.Period < 0 || f.Period >= len(m.Periods) {
			return bad("file %q: period %d out of range", f.Path, f.Period)
		}
		return nil
	}
	for _, r := range m.Renditions {
		if err := validRelPath(r.ID); err != nil || strings.Contains(r.ID, "/") {
			return bad("rendition ID %q", r.ID)
		}
		if r.Type != "video" && r.Type != "audio" {
			return bad("rendition %q: type %q", r.ID, r.Type)
		}
		next := 1
		for _, f := range r.Files {
			if err := check(f); err != nil {
				return err
			}
			switch f.Kind {
			case KindInit:
			case KindMedia:
				if f.Index != next {
					return bad("rendition %q: media %q has index %d, want %d", r.ID, f.Path, f.Index, next)
				}
				next++
			default:
				return bad("rendition %q: file %q has kind %q", r.ID, f.Path, f.Kind)
			}
		}
	}
	for _, f := range m.Playlists {
		if err := check(f); err != nil {
			return err
		}
		if f.Kind != KindPlaylist {
			return bad("playlist %q has kind %q", f.Path, f.Kind)
		}
	}
	return nil
}

// Lookup returns the entry for path p.
func (m *Manifest) Lookup(p string) (File, bool) {
	for _, r := range m.Renditions {
		for _, f := range r.Files {
			if f.Path == p {
				return f, true
			}
		}
	}
	for _, f := range m.Playlists {
		if f.Path == p {
			return f, true
		}
	}
	return File{}, false
}

// Files returns every file of the manifest, renditions first, in order.
func (m *Manifest) Files() []File {
	var out []File
	for _, r := range m.Renditions {
		out = append(out, r.Files...)
	}
	return append(out, m.Playlists...)
}

// CheckFile reports whether data is exactly the file listed at path p.
// It returns an error wrapping ErrUnknownFile or ErrIntegrity otherwise.
func (m *Manifest) CheckFile(p string, data []byte) error {
	f, ok := m.Lookup(p)
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownFile, p)
	}
	return f.Check(data)
}

// Check reports whether data has the file's size and SHA-256; errors wrap ErrIntegrity.
func (f File) Check(data []byte) error {
	if int64(len(data)) != f.Size {
		return fmt.Errorf("%w: %q is %d bytes, manifest says %d", ErrIntegrity, f.Path, len(data), f.Size)
	}
	want, err := hex.DecodeString(f.SHA256)
	if err != nil {
		return fmt.Errorf("%w: %q has a bad hash in the manifest", ErrMalformedManifest, f.Path)
	}
	got := sha256.Sum256(data)
	if subtle.ConstantTimeCompare(got[:], want) != 1 {
		return fmt.Errorf("%w: %q SHA-256 differs", ErrIntegrity, f.Path)
	}
	return nil
}

func fileEntry(p string, kind FileKind, data []byte) File {
	sum := sha256.Sum256(data)
	return File{Path: p, Kind: kind, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
}
