package plots

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Grid is a regular grid over [X0,X1]×[Y0,Y1] with Cols×Rows cell centres;
// Z is row-major with row 0 at Y0.
type Grid struct {
	X0, X1, Y0, Y1 float64
	Cols, Rows     int
	Z              []float64
}

// NewGrid returns an empty grid.
func NewGrid(x0, x1, y0, y1 float64, cols, rows int) Grid {
	return Grid{X0: x0, X1: x1, Y0: y0, Y1: y1, Cols: cols, Rows: rows, Z: make([]float64, cols*rows)}
}

// Points returns the cell centres, row-major, as x,y pairs.
func (g Grid) Points() []float32 {
	out := make([]float32, 0, 2*g.Cols*g.Rows)
	for r := 0; r < g.Rows; r++ {
		for c := 0; c < g.Cols; c++ {
			out = append(out, float32(g.X(c)), float32(g.Y(r)))
		}
	}
	return out
}

// Dims, X and Y describe the grid's cells (plotter.GridXYZ without Z).
func (g Grid) Dims() (int, int)     { return g.Cols, g.Rows }
func (g Grid) X(c int) float64      { return g.X0 + (float64(c)+0.5)*(g.X1-g.X0)/float64(g.Cols) }
func (g Grid) Y(r int) float64      { return g.Y0 + (float64(r)+0.5)*(g.Y1-g.Y0)/float64(g.Rows) }
func (g Grid) xyz() plotter.GridXYZ { return gridXYZ{g} }
func (g Grid) cell() (float64, float64) {
	return (g.X1 - g.X0) / float64(g.Cols), (g.Y1 - g.Y0) / float64(g.Rows)
}

type gridXYZ struct{ Grid }

func (g gridXYZ) Z(c, r int) float64 { return g.Grid.Z[r*g.Cols+c] }

func newPlot(title string, g Grid) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = g.X0, g.X1, g.Y0, g.Y1
	return p
}

// Heatmap draws the grid's values (e.g. a density) with a perceptual
// palette.
func Heatmap(title string, g Grid) *plot.Plot {
	p := newPlot(title, g)
	pal := moreland.ExtendedBlackBody().Palette(255)
	hm := plotter.NewHeatMap(g.xyz(), pal)
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, z := range g.Z {
		if !math.IsNaN(z) && !math.IsInf(z, 0) {
			lo, hi = math.Min(lo, z), math.Max(hi, z)
		}
	}
	if lo < hi {
		hm.Min, hm.Max = lo, hi
	}
	hm.Underflow, hm.Overflow = pal.Colors()[0], pal.Colors()[len(pal.Colors())-1]
	hm.NaN = color.Black
	hm.Rasterized = true // no seams between cells
	p.Add(hm)
	return p
}

// Histogram2D bins points (x,y pairs) into the grid's cells and draws the
// normalised counts.
func Histogram2D(title string, g Grid, xy []float32) *plot.Plot {
	return Heatmap(title, Hist2D(g, xy))
}

// Hist2D bins points (x,y pairs) into the grid's cells as a density: counts
// divided by the number of points and the cell area, so it integrates to
// the fraction of points inside the grid.
func Hist2D(g Grid, xy []float32) Grid {
	h := NewGrid(g.X0, g.X1, g.Y0, g.Y1, g.Cols, g.Rows)
	dx, dy := h.cell()
	n := 0
	for i := 0; i+1 < len(xy); i += 2 {
		c := int(math.Floor((float64(xy[i]) - h.X0) / dx))
		r := int(math.Floor((float64(xy[i+1]) - h.Y0) / dy))
		if c >= 0 && c < h.Cols && r >= 0 && r < h.Rows {
			h.Z[r*h.Cols+c]++
		}
		n++
	}
	for i := range h.Z {
		h.Z[i] /= float64(max(n, 1)) * dx * dy
	}
	return h
}

// field is a vector field sampled on a grid.
type field struct {
	g      Grid
	vx, vy []float64
}

func (f field) Dims() (int, int) { return f.g.Cols, f.g.Rows }
func (f field) Vector(c, r int) plotter.XY {
	return plotter.XY{X: f.vx[r*f.g.Cols+c], Y: f.vy[r*f.g.Cols+c]}
}
func (f field) X(c int) float64 { return f.g.X(c) }
func (f field) Y(r int) float64 { return f.g.Y(r) }

// ScoreField draws arrows of the vectors (vx, vy) at the grid's cell
// centres, scaled to the cell size (the direction of ∇ₓ log p; lengths are
// squashed so that large scores far from the data stay readable).
func ScoreField(title string, g Grid, vx, vy []float64) *plot.Plot {
	p := newPlot(title, g)
	dx, dy := g.cell()
	sx, sy := make([]float64, len(vx)), make([]float64, len(vy))
	for i := range vx {
		n := math.Hypot(vx[i], vy[i])
		s := 0.0
		if n > 0 {
			s = 0.45 * math.Tanh(n/5) / n
		}
		sx[i], sy[i] = vx[i]*s*dx, vy[i]*s*dy
	}
	f := plotter.NewField(field{g, sx, sy})
	f.LineStyle.Width = vg.Points(0.6)
	f.DrawGlyph = func(c vg.Canvas, sty draw.LineStyle, v plotter.XY) {
		c.SetLineWidth(sty.Width)
		c.SetColor(sty.Color)
		var pa vg.Path
		pa.Move(vg.Point{X: -0.5, Y: 0})
		pa.Line(vg.Point{X: 0.5, Y: 0})
		pa.Move(vg.Point{X: 0.5, Y: 0})
		pa.Line(vg.Point{X: 0.25, Y: 0.15})
		pa.Move(vg.Point{X: 0.5, Y: 0})
		pa.Line(vg.Point{X: 0.25, Y: -0.15})
		c.Stroke(pa)
	}
	p.Add(f)
	return p
}

// wholeTicks are gonum's default ticks with whole numbers labelled as
// such: steps read "750", not "750.00".
type wholeTicks struct{}

func (wholeTicks) Ticks(min, max float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(min, max)
	for i, t := range ticks {
		if t.Label != "" && t.Value == math.Trunc(t.Value) && math.Abs(t.Value) < 1e15 {
			ticks[i].Label = fmt.Sprintf("%.0f", t.Value)
		}
	}
	return ticks
}

// Series is a named curve.
type Series struct {
	Name string
	X, Y []float64
}

// Curves draws line plots; logY uses a log scale on Y (values <= 0 are
// dropped).
func Curves(title, xlabel, ylabel string, logY bool, series ...Series) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text, p.Y.Label.Text = xlabel, ylabel
	p.X.Tick.Marker = wholeTicks{}
	if logY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	for i, s := range series {
		pts := make(plotter.XYs, 0, len(s.X))
		for j := range s.X {
			if logY && !(s.Y[j] > 0) || math.IsNaN(s.Y[j]) || math.IsInf(s.Y[j], 0) {
				continue
			}
			pts = append(pts, plotter.XY{X: s.X[j], Y: s.Y[j]})
		}
		if len(pts) == 0 {
			continue
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return nil, err
		}
		l.Color = plotColors[i%len(plotColors)]
		l.Width = vg.Points(1.2)
		p.Add(l)
		p.Legend.Add(s.Name, l)
	}
	p.Legend.Top = true
	return p, nil
}

var plotColors = []color.Color{
	color.RGBA{31, 119, 180, 255}, color.RGBA{214, 39, 40, 255}, color.RGBA{44, 160, 44, 255},
	color.RGBA{255, 127, 14, 255}, color.RGBA{148, 103, 189, 255}, color.RGBA{140, 86, 75, 255},
}

// SaveTiles saves plots laid out in rows (nil entries stay empty) as one
// PNG of cell×cell inches per plot.
func SaveTiles(path string, rows [][]*plot.Plot, cell vg.Length) error {
	nr, nc := len(rows), 0
	for _, r := range rows {
		nc = max(nc, len(r))
	}
	if nr == 0 || nc == 0 {
		return fmt.Errorf("plots: nothing to save to %s", path)
	}
	grid := make([][]*plot.Plot, nr)
	for i, r := range rows {
		grid[i] = make([]*plot.Plot, nc)
		copy(grid[i], r)
	}
	img := vgimg.New(cell*vg.Length(nc), cell*vg.Length(nr))
	dc := draw.New(img)
	t := draw.Tiles{Rows: nr, Cols: nc, PadX: vg.Millimeter, PadY: vg.Millimeter,
		PadTop: vg.Millimeter, PadBottom: vg.Millimeter, PadLeft: vg.Millimeter, PadRight: vg.Millimeter}
	canvases := plot.Align(grid, t, dc)
	for i := range grid {
		for j, p := range grid[i] {
			if p != nil {
				p.Draw(canvases[i][j])
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
