package keys_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/keys"
)

func TestContentKeyFromBytes(t *testing.T) {
	kid, err := keys.NewKID()
	require.NoError(t, err)
	key := bytes.Repeat([]byte{0xab}, 16)
	tests := []struct {
		name    string
		kid     keys.KID
		period  int
		key     []byte
		wantErr string
	}{
		{name: "ok", kid: kid, period: 3, key: key},
		{name: "short key", kid: kid, key: key[:15], wantErr: "15 bytes, want 16"},
		{name: "long key", kid: kid, key: append(key, 0), wantErr: "17 bytes, want 16"},
		{name: "nil key", kid: kid, key: nil, wantErr: "0 bytes"},
		{name: "zero kid", key: key, wantErr: "zero KID"},
		{name: "negative period", kid: kid, period: -1, key: key, wantErr: "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := keys.ContentKeyFromBytes(tt.kid, tt.period, tt.key)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.kid, c.KID())
			require.Equal(t, tt.period, c.Period())
			require.Equal(t, tt.key, c.InsecureRawKey())
			// The constructor copied its input and the accessor returns a copy.
			tt.key[0] ^= 0xff
			raw := c.InsecureRawKey()
			require.Equal(t, byte(0xab), raw[0])
			raw[1] = 0
			require.Equal(t, byte(0xab), c.InsecureRawKey()[1])
			tt.key[0] ^= 0xff
		})
	}
}

func TestNewContentKey(t *testing.T) {
	a, err := keys.NewContentKey(0)
	require.NoError(t, err)
	b, err := keys.NewContentKey(1)
	require.NoError(t, err)
	require.NotEqual(t, a.KID(), b.KID())
	require.NotEqual(t, a.InsecureRawKey(), b.InsecureRawKey())
	require.Len(t, a.InsecureRawKey(), keys.ContentKeySize)
	require.Equal(t, 1, b.Period())
	_, err = keys.NewContentKey(-1)
	require.Error(t, err)
}

// TestContentKeyNeverPrints checks every way a key could reach a log line.
func TestContentKeyNeverPrints(t *testing.T) {
	c, err := keys.NewContentKey(7)
	require.NoError(t, err)
	raw := c.InsecureRawKey()
	want := "ContentKey{kid=" + c.KID().String() + " period=7}"

	var textLog, jsonLog bytes.Buffer
	slog.New(slog.NewTextHandler(&textLog, nil)).Info("k", "key", c)
	slog.New(slog.NewJSONHandler(&jsonLog, nil)).Info("k", "key", c, "ptr", &c)
	//lint:ignore SA9005 marshalling a type with no exported fields is the point: it must not leak the key
	jsonBytes, err := json.Marshal(c)
	require.NoError(t, err)

	outputs := map[string]string{
		"String":    c.String(),
		"%v":        fmt.Sprintf("%v", c),
		"%+v":       fmt.Sprintf("%+v", c),
		"%#v":       fmt.Sprintf("%#v", c),
		"%s":        fmt.Sprintf("%s", c),
		"%x":        fmt.Sprintf("%x", c),
		"%X":        fmt.Sprintf("%X", c),
		"%q":        fmt.Sprintf("%q", c),
		"%d":        fmt.Sprintf("%d", c),
		"ptr %v":    fmt.Sprintf("%v", &c),
		"slice":     fmt.Sprintf("%v %+v", []keys.ContentKey{c}, map[string]keys.ContentKey{"a": c}),
		"struct":    fmt.Sprintf("%+v", struct{ K keys.ContentKey }{c}),
		"error":     fmt.Errorf("wrap %v", c).Error(),
		"slog text": textLog.String(),
		"slog json": jsonLog.String(),
		"json":      string(jsonBytes),
	}
	for name, out := range outputs {
		t.Run(name, func(t *testing.T) {
			lower := strings.ToLower(out)
			require.NotContains(t, lower, hex.EncodeToString(raw))
			require.NotContains(t, out, string(raw))
			require.NotContains(t, out, fmt.Sprint(raw)) // "[171 12 ...]"
			if strings.HasPrefix(name, "slog") {
				require.Contains(t, out, c.KID().String())
			}
		})
	}
	require.Equal(t, want, c.String())
	require.Equal(t, want, fmt.Sprintf("%v", c))
	require.Equal(t, "keys."+want, fmt.Sprintf("%#v", c))
}
