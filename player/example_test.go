package player_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/sealmesh/sealmesh/internal/stack"
	"github.com/sealmesh/sealmesh/player"
)

// Open a session and read the local clear HLS stream the way a platform
// player does. The control plane and origin here come from internal/stack,
// which starts them in-process; an app points the same Config at its
// license server and CDN.
func ExampleOpen() {
	dir, _ := os.MkdirTemp("", "sealmesh-example-")
	defer os.RemoveAll(dir)
	st, err := stack.Start(context.Background(), stack.Options{Dir: dir, Inputs: []string{"../testdata/clip/360p.mp4"}, ContentID: "film"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer st.Close()

	s, err := player.Open(context.Background(), player.Config{
		Content:      "film",
		OriginURL:    st.OriginURL,
		LicenseURL:   st.LicenseURL,
		Token:        st.TokenFunc("alice"),
		LicenseKeys:  st.LicenseKeys,  // pinned in a real app
		ManifestKeys: st.ManifestKeys, // likewise
		P2P:          player.P2P{Disable: true},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	base := strings.TrimSuffix(s.URL(), "master.m3u8")
	for _, path := range []string{"master.m3u8", "video/index.m3u8", "video/init-0.mp4", "video/1.m4s"} {
		resp, err := http.Get(base + path)
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%s: %d %s\n", path, resp.StatusCode, describe(body))
	}
	// Output:
	// master.m3u8: 200 HLS playlist
	// video/index.m3u8: 200 HLS playlist
	// video/init-0.mp4: 200 clear init segment
	// video/1.m4s: 200 media segment
}

func describe(b []byte) string {
	switch {
	case strings.HasPrefix(string(b), "#EXTM3U"):
		return "HLS playlist"
	case strings.Contains(string(b[:min(len(b), 64)]), "ftyp") && !strings.Contains(string(b), "encv") && !strings.Contains(string(b), "enca"):
		return "clear init segment"
	case strings.Contains(string(b[:min(len(b), 64)]), "styp"):
		return "media segment"
	}
	return fmt.Sprintf("%d bytes", len(b))
}
