package token_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/license/token"
)

func TestEntitles(t *testing.T) {
	tests := []struct {
		name    string
		content []string
		id      string
		want    bool
	}{
		{"exact match", []string{"movie-1"}, "movie-1", true},
		{"exact mismatch", []string{"movie-1"}, "movie-2", false},
		{"exact is not a prefix", []string{"movie-1"}, "movie-10", false},
		{"second entry", []string{"movie-1", "movie-2"}, "movie-2", true},
		{"prefix match", []string{"series-1/*"}, "series-1/ep3", true},
		{"prefix nested", []string{"series-1/*"}, "series-1/season-2/ep3", true},
		{"prefix mismatch", []string{"series-1/*"}, "series-2/ep3", false},
		{"prefix needs its separator", []string{"series-1/*"}, "series-1", false},
		{"prefix without separator is by character", []string{"series-1*"}, "series-10/ep1", true},
		{"star alone covers all", []string{"*"}, "anything", true},
		{"star inside is literal", []string{"a*b"}, "axxb", false},
		{"star inside exact match", []string{"a*b"}, "a*b", true},
		{"empty content ID never entitled", []string{"*"}, "", false},
		{"no content", nil, "movie-1", false},
		{"case sensitive", []string{"Movie-1"}, "movie-1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &token.Claims{Content: tt.content}
			require.Equal(t, tt.want, c.Entitles(tt.id))
		})
	}
	t.Run("nil claims", func(t *testing.T) {
		var c *token.Claims
		require.False(t, c.Entitles("movie-1"))
	})
}
