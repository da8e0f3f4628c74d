// Package plots draws the swarm benchmark's PNG plots with gonum.org/v1/plot.
// It is a package of its own so that only the benchmark command
// (cmd/sealmesh-bench) links the plotting stack and its fonts; the binary
// that plays and seeds (cmd/sealmesh) never does.
package plots

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"slices"

	"github.com/sealmesh/sealmesh/internal/swarmbench"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Plot sizes: small PNGs (576x360 at 96 dpi) that stay a few tens of KB.
const plotW, plotH = 6 * vg.Inch, 3.75 * vg.Inch

// Write writes, into dir, PNG plots of the reports (gonum.org/v1/plot):
//
//   - offload-vs-n.png: offload against N for each scenario, with the
//     1−1/N ceiling and the ceiling less five points;
//   - startup-cdf.png: the start-up time CDF, one line per run;
//   - origin-egress.png: the origin's cumulative egress against time since
//     the run began, one line per run, sampled every second.
//
// It returns the files written.
func Write(dir string, rs []*swarmbench.Report) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var out []string
	for _, f := range []struct {
		name string
		make func([]*swarmbench.Report) (*plot.Plot, error)
	}{
		{"offload-vs-n.png", offloadPlot},
		{"startup-cdf.png", startupPlot},
		{"origin-egress.png", egressPlot},
	} {
		p, err := f.make(rs)
		if err != nil {
			return out, fmt.Errorf("plot %s: %w", f.name, err)
		}
		path := filepath.Join(dir, f.name)
		if err := p.Save(plotW, plotH, path); err != nil {
			return out, fmt.Errorf("plot %s: %w", f.name, err)
		}
		out = append(out, path)
	}
	return out, nil
}

func label(r *swarmbench.Report) string { return fmt.Sprintf("%s N=%d", r.Scenario, r.Peers) }

func offloadPlot(rs []*swarmbench.Report) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "P2P offload vs swarm size"
	p.X.Label.Text = "viewers (N)"
	p.Y.Label.Text = "offload (% of media bytes from peers)"
	p.Legend.Top, p.Legend.Left = false, false
	maxN := 2
	byScenario := map[string]plotter.XYs{}
	var order []string
	for _, r := range rs {
		maxN = max(maxN, r.Peers)
		if _, ok := byScenario[r.Scenario]; !ok {
			order = append(order, r.Scenario)
		}
		byScenario[r.Scenario] = append(byScenario[r.Scenario], plotter.XY{X: float64(r.Peers), Y: 100 * r.Offload})
	}
	ceil := plotter.NewFunction(func(n float64) float64 { return 100 * (1 - 1/n) })
	ceil.XMin, ceil.XMax, ceil.Samples = 1, float64(maxN), 200
	ceil.Color = color.Gray{Y: 90}
	ceil.Width = vg.Points(1.5)
	p.Add(ceil)
	p.Legend.Add("ceiling 1−1/N", ceil)
	gap := plotter.NewFunction(func(n float64) float64 { return 100*(1-1/n) - 5 })
	gap.XMin, gap.XMax, gap.Samples = 1, float64(maxN), 200
	gap.Color = color.Gray{Y: 150}
	gap.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(gap)
	p.Legend.Add("ceiling − 5 points", gap)
	for i, sc := range order {
		pts := byScenario[sc]
		slices.SortFunc(pts, func(a, b plotter.XY) int { return int(a.X - b.X) })
		l, s, err := plotter.NewLinePoints(pts)
		if err != nil {
			return nil, err
		}
		l.Color = plotutil.Color(i + 1)
		s.Color = plotutil.Color(i + 1)
		s.Shape = draw.CircleGlyph{}
		p.Add(l, s)
		p.Legend.Add(sc, l, s)
	}
	p.X.Min, p.Y.Min, p.Y.Max = 0, 0, 100
	p.Add(plotter.NewGrid())
	return p, nil
}

func startupPlot(rs []*swarmbench.Report) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Start-up time CDF"
	p.X.Label.Text = "start-up (s)"
	p.Y.Label.Text = "fraction of viewers"
	p.Legend.Top, p.Legend.Left = false, false
	for i, r := range rs {
		var ms []float64
		for _, v := range r.Viewers {
			if v.StartupMS > 0 {
				ms = append(ms, float64(v.StartupMS)/1000)
			}
		}
		if len(ms) == 0 {
			continue
		}
		slices.Sort(ms)
		pts := plotter.XYs{{X: 0, Y: 0}}
		for k, x := range ms {
			pts = append(pts, plotter.XY{X: x, Y: float64(k) / float64(len(ms))}, plotter.XY{X: x, Y: float64(k+1) / float64(len(ms))})
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return nil, err
		}
		l.Color = plotutil.Color(i)
		l.Dashes = plotutil.Dashes(i / 7)
		p.Add(l)
		p.Legend.Add(label(r), l)
	}
	p.Y.Min, p.Y.Max, p.X.Min = 0, 1, 0
	p.Add(plotter.NewGrid())
	return p, nil
}

func egressPlot(rs []*swarmbench.Report) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Origin egress over time (sampled every second)"
	p.X.Label.Text = "time since the first viewer joined (s)"
	p.Y.Label.Text = "origin egress, cumulative (MB)"
	p.Legend.Top, p.Legend.Left = true, true
	for i, r := range rs {
		pts := make(plotter.XYs, 0, len(r.Egress))
		for _, s := range r.Egress {
			pts = append(pts, plotter.XY{X: s.T, Y: float64(s.Bytes) / 1e6})
		}
		if len(pts) == 0 {
			continue
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return nil, err
		}
		l.Color = plotutil.Color(i)
		l.Dashes = plotutil.Dashes(i / 7)
		p.Add(l)
		p.Legend.Add(label(r), l)
	}
	p.X.Min, p.Y.Min = 0, 0
	p.Add(plotter.NewGrid())
	return p, nil
}
