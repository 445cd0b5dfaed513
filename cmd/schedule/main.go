// Command schedule prints a mollification noise schedule as CSV
// (t, sigma2, log_snr, with t = step/T in [0, 1]) and can draw σ² and
// log SNR against t for several sigmoid temperatures, like Fig. 3 of the
// paper.
//
//	go run ./cmd/schedule                          # sigmoid τ=0.7, 101 points, CSV on stdout
//	go run ./cmd/schedule -schedule cosine -n 11
//	go run ./cmd/schedule -config realnvp_mog -set mollification.sigmoid.tau=0.5
//	go run ./cmd/schedule -png fig3.png -csv fig3.csv
package main

import (
	"errors"
	"flag"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/mollification"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "schedule:", err)
		}
		os.Exit(2)
	}
}

type setFlags []string

func (s *setFlags) String() string     { return strings.Join(*s, ",") }
func (s *setFlags) Set(v string) error { *s = append(*s, v); return nil }

func run(args []string, stdout, stderr io.Writer) error {
	def := config.Default().Mollification
	fs := flag.NewFlagSet("schedule", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfgName  = fs.String("config", "", "take the schedule from this config (a path or a name under configs/); flags below then override it only with -set")
		name     = fs.String("schedule", def.Schedule, "sigmoid | cosine | linear")
		tau      = fs.Float64("tau", def.Sigmoid.Tau, "sigmoid temperature τ")
		start    = fs.Float64("start", def.Sigmoid.Start, "sigmoid start")
		end      = fs.Float64("end", def.Sigmoid.End, "sigmoid end")
		clipMin  = fs.Float64("clip-min", def.Sigmoid.ClipMin, "sigmoid lower clip of σ²")
		ns       = fs.Float64("ns", def.Cosine.NS, "cosine ns")
		ds       = fs.Float64("ds", def.Cosine.DS, "cosine ds")
		n        = fs.Int("n", 101, "number of points t = i/(n-1), i = 0..n-1")
		csvPath  = fs.String("csv", "-", `CSV output file ("-": stdout, "": none)`)
		pngPath  = fs.String("png", "", "draw σ² and log SNR against t to this PNG file")
		tausFlag = fs.String("taus", "0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9", "sigmoid temperatures drawn in the PNG (lighter = lower)")
		sets     setFlags
	)
	fs.Var(&sets, "set", "key=value override of the -config (repeatable), e.g. -set mollification.sigmoid.tau=0.5")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (flags only; see -h)", fs.Args())
	}
	if *n < 2 {
		return fmt.Errorf("-n must be at least 2, got %d", *n)
	}

	m := def
	if *cfgName != "" {
		c, err := config.Load(*cfgName, sets)
		if err != nil {
			return err
		}
		m = c.Mollification
	} else {
		if len(sets) > 0 {
			return errors.New("-set needs -config")
		}
		m.Schedule = *name
		m.Sigmoid = config.SigmoidSchedule{Tau: *tau, Start: *start, End: *end, ClipMin: *clipMin}
		m.Cosine = config.CosineSchedule{NS: *ns, DS: *ds}
	}
	sched, err := mollification.NewSchedule(m)
	if err != nil {
		return err
	}

	if *csvPath != "" {
		w := stdout
		if *csvPath != "-" {
			f, err := os.Create(*csvPath)
			if err != nil {
				return err
			}
			defer f.Close()
			w = f
		}
		if err := writeCSV(w, sched, *n); err != nil {
			return err
		}
	}
	if *pngPath != "" {
		taus, err := parseFloats(*tausFlag)
		if err != nil {
			return fmt.Errorf("-taus: %w", err)
		}
		var family []mollification.Schedule
		for _, t := range taus {
			family = append(family, mollification.Sigmoid{Tau: t, Start: m.Sigmoid.Start, End: m.Sigmoid.End, ClipMin: m.Sigmoid.ClipMin})
		}
		if err := drawPNG(*pngPath, sched, family, taus, *n); err != nil {
			return err
		}
		fmt.Fprintln(stderr, "wrote", *pngPath)
	}
	return nil
}

func grid(n int) []float64 {
	t := make([]float64, n)
	for i := range t {
		t[i] = float64(i) / float64(n-1)
	}
	return t
}

// writeCSV writes t, σ² and log SNR with full float64 precision.
func writeCSV(w io.Writer, s mollification.Schedule, n int) error {
	if _, err := fmt.Fprintln(w, "t,sigma2,log_snr"); err != nil {
		return err
	}
	for _, t := range grid(n) {
		s2 := s.Sigma2(t)
		if _, err := fmt.Fprintf(w, "%s,%s,%s\n", fmtFloat(t), fmtFloat(s2), fmtFloat(mollification.LogSNR(s2))); err != nil {
			return err
		}
	}
	return nil
}

func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func parseFloats(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || !(v > 0) {
			return nil, fmt.Errorf("%q is not a temperature > 0", f)
		}
		out = append(out, v)
	}
	return out, nil
}

// curve returns the finite (t, f(σ²(t))) points.
func curve(s mollification.Schedule, n int, f func(float64) float64) plotter.XYs {
	var xy plotter.XYs
	for _, t := range grid(n) {
		if v := f(s.Sigma2(t)); !math.IsInf(v, 0) && !math.IsNaN(v) {
			xy = append(xy, plotter.XY{X: t, Y: v})
		}
	}
	return xy
}

// label is a short legend entry for a schedule.
func label(s mollification.Schedule) string {
	if sg, ok := s.(mollification.Sigmoid); ok {
		return fmt.Sprintf("sigmoid τ=%g (dashed)", sg.Tau)
	}
	return s.String() + " (dashed)"
}

// drawPNG draws σ² and log SNR against t: the sigmoid family in shades of
// blue (lighter for lower τ) and the chosen schedule in black.
func drawPNG(path string, chosen mollification.Schedule, family []mollification.Schedule, taus []float64, n int) error {
	const w, h = 10 * vg.Inch, 4 * vg.Inch
	panels := []struct {
		title, y string
		f        func(float64) float64
	}{
		{"noise schedule", "σ² = γ(t/T)", func(s2 float64) float64 { return s2 }},
		{"signal-to-noise ratio", "log SNR", mollification.LogSNR},
	}
	row := make([]*plot.Plot, len(panels))
	for i, pn := range panels {
		p := plot.New()
		p.Title.Text = pn.title
		p.X.Label.Text = "t/T"
		p.Y.Label.Text = pn.y
		p.Add(plotter.NewGrid())
		for k, s := range family {
			l, err := plotter.NewLine(curve(s, n, pn.f))
			if err != nil {
				return err
			}
			shade := 0.15 + 0.75*float64(k+1)/float64(len(family)) // darker for higher τ
			l.Color = color.RGBA{R: uint8(255 * (1 - shade) * 0.9), G: uint8(255 * (1 - shade*0.8)), B: 255, A: 255}
			l.Width = vg.Points(1.2)
			p.Add(l)
			if i == 0 {
				p.Legend.Add(fmt.Sprintf("τ=%g", taus[k]), l)
			}
		}
		l, err := plotter.NewLine(curve(chosen, n, pn.f))
		if err != nil {
			return err
		}
		l.Color = color.Black
		l.Width = vg.Points(1.5)
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		p.Add(l)
		if i == 0 {
			p.Legend.Add(label(chosen), l)
			p.Legend.Top = true
		}
		row[i] = p
	}
	img := vgimg.New(w, h)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: len(row), PadX: vg.Inch / 4, PadTop: vg.Inch / 8, PadBottom: vg.Inch / 8, PadLeft: vg.Inch / 8, PadRight: vg.Inch / 8}
	canvases := plot.Align([][]*plot.Plot{row}, tiles, dc)
	for i, p := range row {
		p.Draw(canvases[0][i])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}
