package cache_test

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/segment"
	"github.com/sealmesh/sealmesh/transport/cache"
)

// kind is what the tests need from both cache types.
type kind interface {
	Get(string) ([]byte, bool)
	Put(string, []byte) error
	Has(string) bool
	Paths() []string
	Size() int64
	Close() error
}

var kinds = []struct {
	name string
	open func(t *testing.T, c *content, opts cache.Options) kind
}{
	{"disk", func(t *testing.T, c *content, opts cache.Options) kind {
		k, err := cache.Open(t.TempDir(), c.m, opts)
		require.NoError(t, err)
		return k
	}},
	{"mem", func(t *testing.T, c *content, opts cache.Options) kind {
		k, err := cache.NewMem(c.m, opts)
		require.NoError(t, err)
		return k
	}},
}

func TestPutGet(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			c := newContent(t, 3, 1000)
			ca := k.open(t, c, cache.Options{})
			defer ca.Close()
			_, ok := ca.Get(c.media[0])
			require.False(t, ok)
			for _, p := range append([]string{c.init}, c.media...) {
				require.NoError(t, ca.Put(p, c.data[p]))
				require.NoError(t, ca.Put(p, c.data[p]), "a second Put of the same bytes is a no-op")
			}
			for _, p := range c.media {
				got, ok := ca.Get(p)
				require.True(t, ok, p)
				require.Equal(t, c.data[p], got, p)
				require.True(t, ca.Has(p))
			}
			require.Equal(t, int64(700+3*1000), ca.Size())
			require.ElementsMatch(t, append([]string{c.init}, c.media...), ca.Paths())

			// The caller owns what Get returns: scribbling on it (say, decrypting
			// in place) must not reach the cache.
			got, _ := ca.Get(c.media[0])
			got[0] ^= 0xff
			again, ok := ca.Get(c.media[0])
			require.True(t, ok)
			require.Equal(t, c.data[c.media[0]], again)

			require.NoError(t, ca.Close())
			require.NoError(t, ca.Close(), "Close is idempotent")
			_, ok = ca.Get(c.media[0])
			require.False(t, ok)
			require.ErrorIs(t, ca.Put(c.media[0], c.data[c.media[0]]), cache.ErrClosed)
		})
	}
}

func TestPutRefuses(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			c := newContent(t, 2, 1000)
			ca := k.open(t, c, cache.Options{MaxBytes: 900})
			defer ca.Close()
			good := c.data[c.init]
			flipped := append([]byte(nil), good...)
			flipped[len(flipped)/2] ^= 1
			cases := []struct {
				name string
				path string
				data []byte
				want error
			}{
				{"unknown path", "v1/99.m4s", good, segment.ErrUnknownFile},
				{"escaping path", "../clip/v1/init.mp4", good, segment.ErrUnknownFile},
				{"flipped byte", c.init, flipped, segment.ErrIntegrity},
				{"truncated", c.init, good[:len(good)-1], segment.ErrIntegrity},
				{"extended", c.init, append(append([]byte(nil), good...), 0), segment.ErrIntegrity},
				{"swapped", c.init, c.data[c.media[0]], segment.ErrIntegrity},
				{"empty", c.init, nil, segment.ErrIntegrity},
				{"larger than the cache", c.media[0], c.data[c.media[0]], cache.ErrTooLarge},
			}
			for _, tc := range cases {
				require.ErrorIs(t, ca.Put(tc.path, tc.data), tc.want, tc.name)
			}
			require.Empty(t, ca.Paths())
			require.Zero(t, ca.Size())
			if d, ok := ca.(*cache.Cache); ok {
				require.Empty(t, filesUnder(t, d.Dir()), "a refused Put leaves nothing on disk")
			}
		})
	}
}

func TestEvictsLeastRecentlyUsed(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			c := newContent(t, 6, 1000)
			ca := k.open(t, c, cache.Options{MaxBytes: 3000, Now: newClock().Now})
			defer ca.Close()
			m := c.media
			for _, p := range m[:3] {
				require.NoError(t, ca.Put(p, c.data[p]))
			}
			_, ok := ca.Get(m[0]) // 1 is now the most recent: 2 is the oldest
			require.True(t, ok)
			require.True(t, ca.Has(m[1]), "Has does not touch")
			require.NoError(t, ca.Put(m[3], c.data[m[3]]))
			require.Equal(t, []string{m[2], m[0], m[3]}, ca.Paths())
			require.NoError(t, ca.Put(m[2], c.data[m[2]])) // re-Put touches
			require.NoError(t, ca.Put(m[4], c.data[m[4]]))
			require.Equal(t, []string{m[3], m[2], m[4]}, ca.Paths())
			require.Equal(t, int64(3000), ca.Size())
			if d, ok := ca.(*cache.Cache); ok {
				require.ElementsMatch(t, []string{m[2], m[3], m[4]}, filesUnder(t, d.Dir()), "evicted files are gone from disk")
			}
		})
	}
}

func TestAtomicWritesLeaveNoTempFiles(t *testing.T) {
	c := newContent(t, 5, 4000)
	ca, err := cache.Open(t.TempDir(), c.m, cache.Options{MaxBytes: 10_000})
	require.NoError(t, err)
	defer ca.Close()
	for _, p := range c.media {
		require.NoError(t, ca.Put(p, c.data[p]))
	}
	on := filesUnder(t, ca.Dir())
	require.ElementsMatch(t, ca.Paths(), on)
	for _, p := range on {
		require.False(t, strings.HasPrefix(filepath.Base(p), "."), p)
	}
}

// TestOpenDropsDamage simulates what crashes, disk faults and meddling leave
// behind and checks that Open deletes exactly the bad files, logs each, and
// that the dropped files can be fetched and stored again.
func TestOpenDropsDamage(t *testing.T) {
	c := newContent(t, 6, 1000)
	dir := t.TempDir()
	root := filepath.Join(dir, c.m.ContentID)
	write := func(rel string, data []byte) {
		full := filepath.Join(root, filepath.FromSlash(rel))
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o700))
		require.NoError(t, os.WriteFile(full, data, 0o600))
	}
	m := c.media
	write(m[0], c.data[m[0]]) // good
	write(m[1], c.data[m[1]][:500])
	flipped := append([]byte(nil), c.data[m[2]]...)
	flipped[999] ^= 0x80
	write(m[2], flipped)
	write("v1/."+filepath.Base(m[3])+".tmp-12345", c.data[m[3]][:300]) // crash mid-Put
	write(m[3], c.data[m[3]])                                          // good
	write("v1/evil.m4s", []byte("not listed"))
	write("other/stale/dir/x", []byte("not listed"))
	write(m[4], c.data[m[5]]) // swapped: right size, wrong bytes
	require.NoError(t, os.Symlink(filepath.Join(root, filepath.FromSlash(m[0])), filepath.Join(root, filepath.FromSlash(m[5]))))

	var logs logBuf
	ca, err := cache.Open(dir, c.m, cache.Options{Logger: newLogger(&logs)})
	require.NoError(t, err)
	defer ca.Close()

	require.ElementsMatch(t, []string{m[0], m[3]}, ca.Paths())
	require.ElementsMatch(t, []string{m[0], m[3]}, filesUnder(t, root), "everything else is deleted")
	require.NoDirExists(t, filepath.Join(root, "other"), "emptied folders are removed")
	for _, want := range []string{m[1], m[2], "tmp-12345", "evil.m4s", "other/stale/dir/x", m[4], m[5], "leftover temp file", "not in the manifest", "not a regular file"} {
		require.Contains(t, logs.String(), want)
	}
	for _, p := range []string{m[1], m[2], m[4], m[5]} {
		_, ok := ca.Get(p)
		require.False(t, ok, p)
		require.NoError(t, ca.Put(p, c.data[p]), "refetched %s", p)
		got, ok := ca.Get(p)
		require.True(t, ok)
		require.Equal(t, c.data[p], got)
	}
}

func TestCorruptedWhileOpenIsDropped(t *testing.T) {
	c := newContent(t, 2, 1000)
	var logs logBuf
	ca, err := cache.Open(t.TempDir(), c.m, cache.Options{Logger: newLogger(&logs)})
	require.NoError(t, err)
	defer ca.Close()
	p := c.media[0]
	require.NoError(t, ca.Put(p, c.data[p]))
	bad := append([]byte(nil), c.data[p]...)
	bad[0] ^= 1
	require.NoError(t, os.WriteFile(filepath.Join(ca.Dir(), filepath.FromSlash(p)), bad, 0o600))

	_, ok := ca.Get(p)
	require.False(t, ok, "damaged bytes are never returned")
	require.False(t, ca.Has(p))
	require.Zero(t, ca.Size())
	require.Empty(t, filesUnder(t, ca.Dir()))
	require.Contains(t, logs.String(), "dropped file on read")
	require.NoError(t, ca.Put(p, c.data[p]))
	got, ok := ca.Get(p)
	require.True(t, ok)
	require.Equal(t, c.data[p], got)
}

// TestRestartKeepsRecency closes a cache and reopens it with a smaller cap:
// the files evicted at Open are the least recently used before the restart.
func TestRestartKeepsRecency(t *testing.T) {
	c := newContent(t, 4, 1000)
	dir := t.TempDir()
	clk := newClock()
	ca, err := cache.Open(dir, c.m, cache.Options{Now: clk.Now})
	require.NoError(t, err)
	m := c.media
	for _, p := range m {
		require.NoError(t, ca.Put(p, c.data[p]))
	}
	_, ok := ca.Get(m[0])
	require.True(t, ok)
	_, ok = ca.Get(m[2])
	require.True(t, ok)
	require.Equal(t, []string{m[1], m[3], m[0], m[2]}, ca.Paths())
	require.NoError(t, ca.Close())

	ca, err = cache.Open(dir, c.m, cache.Options{MaxBytes: 2000, Now: clk.Now})
	require.NoError(t, err)
	defer ca.Close()
	require.Equal(t, []string{m[0], m[2]}, ca.Paths())
	require.ElementsMatch(t, []string{m[0], m[2]}, filesUnder(t, ca.Dir()))
}

func TestConcurrentPutGet(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			c := newContent(t, 20, 2000)
			ca := k.open(t, c, cache.Options{MaxBytes: 7 * 2000})
			defer ca.Close()
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() {
					r := rand.New(rand.NewPCG(uint64(g), 1))
					for range 300 {
						p := c.media[r.IntN(len(c.media))]
						if r.IntN(2) == 0 {
							if err := ca.Put(p, c.data[p]); err != nil {
								t.Error(err)
								return
							}
						} else if got, ok := ca.Get(p); ok && string(got) != string(c.data[p]) {
							t.Errorf("%s: wrong bytes", p)
							return
						}
						if r.IntN(10) == 0 {
							ca.Paths()
							ca.Has(p)
						}
					}
				})
			}
			wg.Wait()
			paths := ca.Paths()
			require.LessOrEqual(t, ca.Size(), int64(7*2000))
			require.Equal(t, int64(len(paths)*2000), ca.Size())
			if d, ok := ca.(*cache.Cache); ok {
				require.ElementsMatch(t, paths, filesUnder(t, d.Dir()), "index and folder agree")
			}
		})
	}
}

func TestOpenRefusesBadManifest(t *testing.T) {
	c := newContent(t, 1, 100)
	// Built in code and never validated: the cache re-checks the paths itself.
	for _, bad := range []string{"../escape.m4s", "/abs.m4s", "v1/../../x", "v1/.hidden", ""} {
		m := *c.m
		r := m.Renditions[0]
		r.Files = append([]segment.File(nil), r.Files...)
		r.Files[1].Path = bad
		m.Renditions = []segment.Rendition{r}
		_, err := cache.Open(t.TempDir(), &m, cache.Options{})
		require.Error(t, err, bad)
		_, err = cache.NewMem(&m, cache.Options{})
		require.Error(t, err, bad)
	}
	m := *c.m
	m.ContentID = "../up"
	_, err := cache.Open(t.TempDir(), &m, cache.Options{})
	require.Error(t, err)
	_, err = cache.Open(t.TempDir(), c.m, cache.Options{MaxBytes: -1})
	require.Error(t, err)
	_, err = cache.Open(t.TempDir(), nil, cache.Options{})
	require.Error(t, err)
}

// filesUnder lists every non-directory entry under root as slash paths.
func filesUnder(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	require.NoError(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	}))
	slices.Sort(out)
	return out
}

func ExampleOpen() {
	c, err := makeContent(1, 100) // a manifest and the files it lists
	if err != nil {
		panic(err)
	}
	dir, err := os.MkdirTemp("", "cache-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	ca, err := cache.Open(dir, c.m, cache.Options{MaxBytes: 1 << 20})
	if err != nil {
		panic(err)
	}
	defer ca.Close()
	err = ca.Put("v1/1.m4s", []byte("forged"))
	fmt.Println("refused:", errors.Is(err, segment.ErrIntegrity))
	if err := ca.Put("v1/1.m4s", c.data["v1/1.m4s"]); err != nil {
		panic(err)
	}
	_, ok := ca.Get("v1/1.m4s")
	fmt.Println("cached:", ok, ca.Size())
	// Output:
	// refused: true
	// cached: true 100
}
