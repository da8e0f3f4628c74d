package segment_test

import (
	"bytes"
	"encoding/gob"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/segment"
)

// TestKeyNeverPrints: a Key shows its KID and nothing of the key under every
// fmt verb, inside structs and pointers, through slog's text and JSON
// handlers, and refuses JSON, XML and gob.
func TestKeyNeverPrints(t *testing.T) {
	raw := bytes.Repeat([]byte{0xab}, segment.KeySize)
	kid := [16]byte{0x12, 0x34, 0x56, 0x78, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	k, err := segment.NewKey(kid, raw)
	require.NoError(t, err)
	kidHex := hex.EncodeToString(kid[:])
	// Every rendering of the key bytes a leak could take.
	leaks := []string{hex.EncodeToString(raw), strings.ToUpper(hex.EncodeToString(raw)), "171 171 171", "0xab, 0xab", "\xab\xab\xab", "q6urq6ur"}
	noLeak := func(t *testing.T, s string) {
		t.Helper()
		for _, l := range leaks {
			require.NotContains(t, s, l)
		}
	}
	type holder struct {
		Name string
		K    segment.Key
		P    *segment.Key
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "% x", "%d", "%o", "%b", "%T %v"} {
		t.Run(verb, func(t *testing.T) {
			for _, v := range []any{k, &k, holder{"h", k, &k}, []segment.Key{k}, map[string]segment.Key{"a": k}} {
				s := fmt.Sprintf(verb, v)
				noLeak(t, s)
				if verb != "%T %v" {
					require.Contains(t, s, kidHex[:8], "the KID shows, so logs stay useful")
				}
			}
		})
	}
	t.Run("slog", func(t *testing.T) {
		for _, h := range []func(*bytes.Buffer) slog.Handler{
			func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
			func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
		} {
			var buf bytes.Buffer
			slog.New(h(&buf)).Info("packing", "key", k, "ptr", &k)
			noLeak(t, buf.String())
			require.Contains(t, buf.String(), kidHex)
		}
	})
	t.Run("json", func(t *testing.T) {
		for _, v := range []any{k, &k, holder{"h", k, &k}} {
			b, err := json.Marshal(v)
			require.ErrorIs(t, err, segment.ErrKeyMarshal)
			noLeak(t, string(b))
		}
	})
	t.Run("xml", func(t *testing.T) {
		b, err := xml.Marshal(holder{"h", k, &k})
		require.ErrorIs(t, err, segment.ErrKeyMarshal)
		noLeak(t, string(b))
	})
	t.Run("gob", func(t *testing.T) {
		var buf bytes.Buffer
		err := gob.NewEncoder(&buf).Encode(holder{"h", k, &k})
		require.Error(t, err)
		noLeak(t, buf.String())
	})
	t.Run("accessor", func(t *testing.T) {
		require.Equal(t, raw, k.InsecureRawKey())
		require.Equal(t, kid, k.KID())
		got := k.InsecureRawKey()
		got[0] = 0
		require.Equal(t, raw, k.InsecureRawKey(), "the accessor returns a copy")
	})
	t.Run("bad length", func(t *testing.T) {
		_, err := segment.NewKey(kid, raw[:15])
		require.ErrorContains(t, err, "15 bytes")
		noLeak(t, err.Error())
	})
}
