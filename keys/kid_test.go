package keys_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/keys"
)

func TestNewKID(t *testing.T) {
	seen := map[keys.KID]bool{}
	for range 64 {
		k, err := keys.NewKID()
		require.NoError(t, err)
		require.False(t, k.IsZero())
		require.Equal(t, byte(0x40), k[6]&0xf0, "UUID version 4")
		require.Equal(t, byte(0x80), k[8]&0xc0, "RFC 9562 variant")
		require.False(t, seen[k], "duplicate KID")
		seen[k] = true
	}
}

func TestParseKID(t *testing.T) {
	want := keys.KID{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{name: "hex lower", in: "0123456789abcdef0123456789abcdef"},
		{name: "hex upper", in: "0123456789ABCDEF0123456789ABCDEF"},
		{name: "uuid", in: "01234567-89ab-cdef-0123-456789abcdef"},
		{name: "uuid upper", in: "01234567-89AB-CDEF-0123-456789ABCDEF"},
		{name: "empty", in: "", wantErr: "32 hex digits"},
		{name: "too short", in: "0123456789abcdef", wantErr: "got 16 characters"},
		{name: "too long", in: "0123456789abcdef0123456789abcdef00", wantErr: "32 hex digits"},
		{name: "not hex", in: "0123456789abcdef0123456789abcdeg", wantErr: "not hex"},
		{name: "dashes misplaced", in: "0123456-789ab-cdef-0123-456789abcdef", wantErr: "dashes"},
		{name: "uuid not hex", in: "01234567-89ab-cdef-0123-456789abcdeX", wantErr: "not hex"},
		{name: "braces", in: "{01234567-89ab-cdef-0123-456789abcd}", wantErr: "dashes"},
		{name: "hex with dash", in: "0123456789abcdef-123456789abcdef", wantErr: "not hex"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := keys.ParseKID(tt.in)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, want, got)
			require.Equal(t, "0123456789abcdef0123456789abcdef", got.String())
			require.Equal(t, "01234567-89ab-cdef-0123-456789abcdef", got.UUID())
		})
	}
}

func TestKIDText(t *testing.T) {
	k, err := keys.NewKID()
	require.NoError(t, err)
	b, err := json.Marshal(map[string]keys.KID{"kid": k})
	require.NoError(t, err)
	require.Equal(t, `{"kid":"`+k.String()+`"}`, string(b))
	var back map[string]keys.KID
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, k, back["kid"])
	require.Error(t, json.Unmarshal([]byte(`{"kid":"nope"}`), &back))
}

func FuzzParseKID(f *testing.F) {
	for _, s := range []string{
		"0123456789abcdef0123456789abcdef",
		"01234567-89ab-cdef-0123-456789abcdef",
		"", "-", strings.Repeat("-", 36), "0123456789ABCDEF0123456789ABCDEF",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := keys.ParseKID(s)
		if err != nil {
			return
		}
		// Whatever parses round-trips through both printed forms.
		k2, err := keys.ParseKID(k.String())
		if err != nil || k2 != k {
			t.Fatalf("String round trip of %q: %v %v", s, k2, err)
		}
		k3, err := keys.ParseKID(k.UUID())
		if err != nil || k3 != k {
			t.Fatalf("UUID round trip of %q: %v %v", s, k3, err)
		}
		if !strings.EqualFold(strings.ReplaceAll(s, "-", ""), k.String()) {
			t.Fatalf("%q parsed to %s", s, k)
		}
	})
}
