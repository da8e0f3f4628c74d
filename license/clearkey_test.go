package license_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sealmesh/sealmesh/license"
)

func TestClearKey(t *testing.T) {
	e := newEnv(t, withConfig(func(c *license.Config) { c.CORSOrigins = []string{"https://player.example"} }))
	tok := e.token(t, "acct-1", []string{movie})
	kid0, kid1 := e.movieKeys[0].KID(), e.movieKeys[1].KID()
	body := map[string]any{"kids": []string{b64.EncodeToString(kid0[:]), b64.EncodeToString(kid1[:])}, "type": "temporary"}

	r := e.do(t, http.MethodPost, "/v1/clearkey", tok, body, "Origin", "https://player.example")
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.Equal(t, "https://player.example", r.header.Get("Access-Control-Allow-Origin"))
	require.NotRegexp(t, regexp.MustCompile(`=`), string(r.body), "base64url without padding")
	var resp license.ClearKeyResponse
	require.NoError(t, json.Unmarshal(r.body, &resp))
	require.Equal(t, "temporary", resp.Type)
	require.Len(t, resp.Keys, 2)
	for i, k := range resp.Keys {
		require.Equal(t, "oct", k.Kty)
		kid := e.movieKeys[i].KID()
		require.Equal(t, b64.EncodeToString(kid[:]), k.KID)
		require.Equal(t, b64.EncodeToString(e.movieKeys[i].InsecureRawKey()), k.K)
		require.Len(t, k.KID, 22)
		require.Len(t, k.K, 22)
	}

	// KIDs from the ?kid= query that sealmesh HLS playlists append, with an empty body.
	r = e.do(t, http.MethodPost, "/v1/clearkey?kid="+e.movieKeys[2].KID().String(), tok, []byte{})
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.NoError(t, json.Unmarshal(r.body, &resp))
	require.Len(t, resp.Keys, 1)
	require.Equal(t, b64.EncodeToString(e.movieKeys[2].InsecureRawKey()), resp.Keys[0].K)

	// Only entitled KIDs: a mix returns the entitled ones; others only → 403; unknown → 404.
	okid := e.otherKeys[0].KID()
	r = e.do(t, http.MethodPost, "/v1/clearkey", tok, map[string]any{"kids": []string{b64.EncodeToString(kid0[:]), b64.EncodeToString(okid[:])}})
	require.Equal(t, http.StatusOK, r.status)
	require.NoError(t, json.Unmarshal(r.body, &resp))
	require.Len(t, resp.Keys, 1)
	r = e.do(t, http.MethodPost, "/v1/clearkey", tok, map[string]any{"kids": []string{b64.EncodeToString(okid[:])}})
	require.Equal(t, http.StatusForbidden, r.status)
	require.Equal(t, license.CodeNotEntitled, r.errCode(t))
	r = e.do(t, http.MethodPost, "/v1/clearkey", tok, map[string]any{"kids": []string{b64.EncodeToString(make([]byte, 16))}})
	require.Equal(t, http.StatusNotFound, r.status)
	require.Equal(t, license.CodeUnknownKID, r.errCode(t))

	// CDMs may send no Content-Type; the endpoint accepts it.
	r = e.do(t, http.MethodPost, "/v1/clearkey", tok, body, "Content-Type", "")
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
}

func TestClearKeyCORSPreflight(t *testing.T) {
	e := newEnv(t, withConfig(func(c *license.Config) { c.CORSOrigins = []string{"https://player.example"} }))
	r := e.do(t, http.MethodOptions, "/v1/clearkey", "", nil,
		"Origin", "https://player.example", "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization,content-type")
	require.Equal(t, http.StatusNoContent, r.status)
	require.Equal(t, "https://player.example", r.header.Get("Access-Control-Allow-Origin"))
	require.Contains(t, r.header.Get("Access-Control-Allow-Methods"), "POST")
	require.Contains(t, r.header.Get("Access-Control-Allow-Headers"), "Authorization")
	require.Contains(t, r.header.Values("Vary"), "Origin")

	r = e.do(t, http.MethodOptions, "/v1/clearkey", "", nil, "Origin", "https://evil.example", "Access-Control-Request-Method", "POST")
	require.Equal(t, http.StatusForbidden, r.status)
	require.Equal(t, license.CodeOriginNotAllowed, r.errCode(t))
	require.Empty(t, r.header.Get("Access-Control-Allow-Origin"))

	// A response to a disallowed origin carries no CORS grant.
	tok := e.token(t, "acct-1", []string{movie})
	kid := e.movieKeys[0].KID()
	r = e.do(t, http.MethodPost, "/v1/clearkey", tok, map[string]any{"kids": []string{b64.EncodeToString(kid[:])}}, "Origin", "https://evil.example")
	require.Empty(t, r.header.Get("Access-Control-Allow-Origin"))
}

func TestClearKeyCountsAsStream(t *testing.T) {
	e := newEnv(t, withConfig(func(c *license.Config) { c.MaxStreamsPerAccount = 1 }))
	tok := e.token(t, "acct-1", []string{movie})
	kid0, kid1 := e.movieKeys[0].KID(), e.movieKeys[1].KID()
	r := e.do(t, http.MethodPost, "/v1/clearkey", tok, map[string]any{"kids": []string{b64.EncodeToString(kid0[:])}})
	require.Equal(t, http.StatusOK, r.status)
	// The same player (token) asking for the next period's key shares the session.
	r = e.do(t, http.MethodPost, "/v1/clearkey", tok, map[string]any{"kids": []string{b64.EncodeToString(kid1[:])}})
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	// A second player of the account (another token) is over the limit, natively too.
	tok2 := e.token(t, "acct-1", []string{movie})
	r = e.do(t, http.MethodPost, "/v1/clearkey", tok2, map[string]any{"kids": []string{b64.EncodeToString(kid0[:])}})
	require.Equal(t, http.StatusTooManyRequests, r.status)
	require.Equal(t, license.CodeTooManyStreams, r.errCode(t))
	_, err := e.client(t, tok2).License(t.Context(), license.KeyRequest{Content: movie})
	require.Equal(t, license.CodeTooManyStreams, apiCode(t, err))
}
