package plots

import (
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
)

func TestHistogramIsADensity(t *testing.T) {
	g := NewGrid(-1, 1, -1, 1, 4, 4)
	pts := []float32{-0.9, -0.9, 0.1, 0.1, 0.2, 0.3, 0.9, 0.9, 5, 5}
	h := Hist2D(g, pts)
	dx, dy := h.cell()
	var mass float64
	for _, z := range h.Z {
		mass += z * dx * dy
	}
	if math.Abs(mass-0.8) > 1e-12 {
		t.Errorf("mass inside the grid %v, want 0.8 (4 of 5 points)", mass)
	}
	// (0.1,0.1) and (0.2,0.3) share the cell [0,0.5)²: 2/5 of the mass.
	if got := h.Z[2*4+2] * dx * dy; math.Abs(got-0.4) > 1e-12 {
		t.Errorf("cell (2,2) holds %v, want 0.4", got)
	}
}

func TestSaveTilesWritesPNG(t *testing.T) {
	g := NewGrid(-2, 2, -2, 2, 10, 10)
	for i := range g.Z {
		g.Z[i] = float64(i)
	}
	vx, vy := make([]float64, 100), make([]float64, 100)
	for i := range vx {
		vx[i], vy[i] = 1, -float64(i%3)
	}
	c, err := Curves("c", "x", "y", true, Series{Name: "a", X: []float64{1, 2, 3}, Y: []float64{1, 0, 10}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "sub", "fig.png")
	if err := SaveTiles(path, [][]*plot.Plot{{Heatmap("h", g), ScoreField("s", g, vx, vy)}, {c}}, 2*vg.Inch); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Width != 2*2*96 || cfg.Height != 2*2*96 {
		t.Errorf("PNG is %dx%d, want 384x384 (2×2 tiles of 2 inches at 96 dpi)", cfg.Width, cfg.Height)
	}
	if err := SaveTiles(path, nil, vg.Inch); err == nil {
		t.Error("saving no plots should be an error")
	}
}

func TestImageGrid(t *testing.T) {
	// Two 1×2×2 images: a black one and a white one, in one row with 1px padding.
	pix := []uint8{0, 0, 0, 0, 255, 255, 255, 255}
	img, err := ImageGrid(pix, 2, 1, 2, 2, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 7 || b.Dy() != 4 {
		t.Fatalf("grid is %v, want 7×4", b)
	}
	if c := img.RGBAAt(1, 1); c.R != 0 {
		t.Errorf("first image pixel %v, want black", c)
	}
	if c := img.RGBAAt(4, 2); c.R != 255 || c.G != 255 {
		t.Errorf("second image pixel %v, want white", c)
	}
	if _, err := ImageGrid(pix, 2, 2, 2, 2, 2, 1); err == nil {
		t.Error("2 channels should be an error")
	}
	if _, err := ImageGrid(pix[:5], 2, 1, 2, 2, 2, 1); err == nil {
		t.Error("a short buffer should be an error")
	}
}

// Step axes label whole numbers without decimals ("750", not "750.00"),
// and keep fractional labels.
func TestWholeTicks(t *testing.T) {
	for _, c := range []struct {
		min, max float64
		want     string
	}{{500, 1000, "750"}, {0, 4000, "2000"}, {0, 1, "0.5"}} {
		found := false
		for _, tk := range (wholeTicks{}).Ticks(c.min, c.max) {
			if tk.Label == c.want {
				found = true
			}
			if tk.Label != "" && strings.HasSuffix(tk.Label, ".00") {
				t.Errorf("[%v, %v]: label %q", c.min, c.max, tk.Label)
			}
		}
		if !found {
			t.Errorf("[%v, %v]: no label %q in %v", c.min, c.max, c.want, (wholeTicks{}).Ticks(c.min, c.max))
		}
	}
	p, err := Curves("c", "step", "loss", false, Series{Name: "a", X: []float64{500, 1000}, Y: []float64{1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.X.Tick.Marker.(wholeTicks); !ok {
		t.Errorf("Curves' step axis uses %T, want wholeTicks", p.X.Tick.Marker)
	}
}
