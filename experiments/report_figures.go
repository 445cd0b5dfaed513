package experiments

import (
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/mollify/mollify/plots"
)

// figureColumns is how many models a figure puts side by side.
const figureColumns = 3

// WriteFigures writes into outDir, per dataset, the metric over training
// (Fig. 7: one plot per model, one line per training, the mean over the
// seeds that logged each step) and a sample grid (Tables 5–6: the last
// samples of one seed per model and training). It returns the names of
// the files written, relative to outDir; a dataset with no curve or no
// samples gets no such file.
func (rep *Report) WriteFigures(outDir string) ([]string, error) {
	var names []string
	for _, d := range rep.datasets() {
		name := fmt.Sprintf("%s_%s.png", rep.Metric, d)
		ok, err := rep.curvesFigure(filepath.Join(outDir, name), d)
		if err != nil {
			return names, err
		}
		if ok {
			names = append(names, name)
		}
		name = fmt.Sprintf("samples_%s.png", d)
		if ok, err = rep.samplesFigure(filepath.Join(outDir, name), d); err != nil {
			return names, err
		}
		if ok {
			names = append(names, name)
		}
	}
	return names, nil
}

// MeanCurve is the mean over runs of their curves at each step any of
// them logged, over the runs that logged that step; n is how many runs
// have a curve.
func MeanCurve(runs []*ReportRun) (steps, mean []float64, n int) {
	sum, count := map[int]float64{}, map[int]int{}
	for _, r := range runs {
		if len(r.Curve) > 0 {
			n++
		}
		for _, p := range r.Curve {
			sum[p.Step] += p.Value
			count[p.Step]++
		}
	}
	keys := make([]int, 0, len(sum))
	for s := range sum {
		keys = append(keys, s)
	}
	slices.Sort(keys)
	for _, s := range keys {
		steps = append(steps, float64(s))
		mean = append(mean, sum[s]/float64(count[s]))
	}
	return steps, mean, n
}

// tiles lays plots out figureColumns to a row.
func tiles(ps []*plot.Plot, cols int) [][]*plot.Plot {
	var rows [][]*plot.Plot
	for i := 0; i < len(ps); i += cols {
		rows = append(rows, ps[i:min(i+cols, len(ps))])
	}
	return rows
}

func (rep *Report) curvesFigure(path, dataset string) (bool, error) {
	s := rep.shape(dataset)
	m := metricName(rep.Metric)
	var ps []*plot.Plot
	for _, row := range s.rows {
		var series []plots.Series
		for _, c := range s.cols {
			g := s.cells[[2]string{row, c}]
			if g == nil {
				continue
			}
			x, y, n := MeanCurve(g.Runs)
			if len(x) == 0 {
				continue
			}
			seeds := "seeds"
			if n == 1 {
				seeds = "seed"
			}
			series = append(series, plots.Series{Name: fmt.Sprintf("%s (%d %s)", c, n, seeds), X: x, Y: y})
		}
		if len(series) == 0 {
			continue
		}
		p, err := plots.Curves(fmt.Sprintf("%s, %s", row, dataset), "step", m+" (mean over seeds)", false, series...)
		if err != nil {
			return false, err
		}
		ps = append(ps, p)
	}
	if len(ps) == 0 {
		return false, nil
	}
	return true, plots.SaveTiles(path, tiles(ps, figureColumns), 4*vg.Inch)
}

// sampleRun is the run whose samples stand for a group: the finished run
// of the lowest seed that has samples, else any run that has some.
func sampleRun(g *ReportGroup) *ReportRun {
	var best *ReportRun
	for _, r := range g.Runs {
		if r.SamplePNG == "" {
			continue
		}
		switch {
		case best == nil,
			r.State == ReportDone && best.State != ReportDone,
			(r.State == ReportDone) == (best.State == ReportDone) && r.Seed < best.Seed:
			best = r
		}
	}
	return best
}

// sampleStep reads the step from a samples/step-000001000.png name.
func sampleStep(path string) string {
	s := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(path), "step-"), ".png")
	if n, err := strconv.Atoi(s); err == nil {
		return strconv.Itoa(n)
	}
	return s
}

func readPNG(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}

func (rep *Report) samplesFigure(path, dataset string) (bool, error) {
	s := rep.shape(dataset)
	var rows [][]*plot.Plot
	have := false
	for _, row := range s.rows {
		var ps []*plot.Plot
		for _, c := range s.cols {
			p := plot.New()
			p.HideAxes()
			ps = append(ps, p)
			g := s.cells[[2]string{row, c}]
			if g == nil {
				p.Title.Text = fmt.Sprintf("%s, %s\nnot in the sweep", row, c)
				continue
			}
			r := sampleRun(g)
			if r == nil {
				p.Title.Text = fmt.Sprintf("%s, %s\nno samples", row, c)
				continue
			}
			img, err := readPNG(r.SamplePNG)
			if err != nil {
				return false, err
			}
			b := img.Bounds()
			p.Add(plotter.NewImage(img, 0, 0, float64(b.Dx()), float64(b.Dy())))
			// Keep the image's aspect ratio in a square tile.
			side := math.Max(float64(b.Dx()), float64(b.Dy()))
			p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, side, 0, side
			p.Title.Text = fmt.Sprintf("%s, %s\nseed %d, step %s", row, c, r.Seed, sampleStep(r.SamplePNG))
			if r.State != ReportDone {
				p.Title.Text += " (" + r.State + ")"
			}
			have = true
		}
		rows = append(rows, ps)
	}
	if !have {
		return false, nil
	}
	return true, plots.SaveTiles(path, rows, 2.5*vg.Inch)
}
