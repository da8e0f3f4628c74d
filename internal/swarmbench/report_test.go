package swarmbench

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSummarize(t *testing.T) {
	vs := []ViewerResult{
		{N: 1, StartupMS: 1000, BytesFromOrigin: 300, BytesUploaded: 100},
		{N: 2, StartupMS: 2000, BytesFromPeers: 100, BytesFromOrigin: 100, Stalls: 1, StallMS: 250},
		{N: 3, Error: "boom", BytesFromPeers: 1 << 30}, // failed viewers do not count
	}
	s := Summarize(vs, 60, 2*time.Second, 500)
	require.Equal(t, 3, s.Peers)
	require.InDelta(t, 0.2, s.Offload, 1e-9)
	require.Equal(t, 1, s.Stalls)
	require.EqualValues(t, 250, s.StallMS)
	require.EqualValues(t, 1000, s.StartupP50MS)
	require.EqualValues(t, 2000, s.StartupP95MS)
	require.EqualValues(t, 500, s.OriginEgress)
}

func TestJoinTimes(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"poisson", Options{Peers: 50, Join: "poisson", JoinRate: time.Second, Seed: 7}},
		{"all", Options{Peers: 5, Join: "all"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := joinTimes(tc.o), joinTimes(tc.o)
			require.Equal(t, a, b, "the seed makes joins repeatable")
			require.Len(t, a, tc.o.Peers)
			require.Zero(t, a[0])
			for i := 1; i < len(a); i++ {
				require.GreaterOrEqual(t, a[i], a[i-1])
			}
			if tc.o.Join == "all" {
				require.Zero(t, a[len(a)-1])
			} else {
				mean := a[len(a)-1] / time.Duration(len(a)-1)
				require.InDelta(t, float64(time.Second), float64(mean), float64(time.Second)/2)
			}
		})
	}
}

func TestWriteCSV(t *testing.T) {
	r := &Report{Summary: Summary{Peers: 2}, Scenario: ScenarioVOD, Mode: InProcess,
		Viewers: []ViewerResult{{N: 1, BytesFromOrigin: 10}, {N: 2, BytesFromPeers: 10, Left: true}}}
	var b bytes.Buffer
	require.NoError(t, WriteCSV(&b, []*Report{r}))
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	require.Len(t, lines, 3)
	require.Equal(t, strings.Join(csvHeader, ","), lines[0])
	require.True(t, strings.HasPrefix(lines[2], "vod,inprocess,2,2,"))
	require.Contains(t, lines[2], ",1.0000,")
}
