package fid

import (
	"encoding/json"
	"math"
	"os"
	"testing"
)

// Golden data from testdata/gen_golden.py.
type goldenChecks struct {
	MuSum        float64   `json:"mu_sum"`
	MuHead       []float64 `json:"mu_head"`
	SigmaTrace   float64   `json:"sigma_trace"`
	SigmaSum     float64   `json:"sigma_sum"`
	SigmaFrob    float64   `json:"sigma_frob"`
	SigmaMaxAbs  float64   `json:"sigma_max_abs"`
	SigmaSamples []float64 `json:"sigma_samples"`
}

type goldenSet struct {
	Seed   uint64       `json:"seed"`
	N      int          `json:"n"`
	Decay  float64      `json:"decay"`
	Shift  float64      `json:"shift"`
	Checks goldenChecks `json:"checks"`
}

type goldenCase struct {
	Name         string     `json:"name"`
	D            int        `json:"d"`
	A            *goldenSet `json:"a"`
	B            *goldenSet `json:"b"`
	FID          *float64   `json:"fid"`
	Error        string     `json:"error"`
	SqrtmComplex bool       `json:"sqrtm_complex"`
	MaxImagDiag  float64    `json:"max_imag_diag"`
}

type golden struct {
	Synthetic []goldenCase `json:"synthetic"`
	Numpy     []goldenCase `json:"numpy"`
}

func loadGolden(t testing.TB) golden {
	t.Helper()
	b, err := os.ReadFile("testdata/frechet_golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// splitmixUniform is gen_golden.py's splitmix_uniform for one index.
func splitmixUniform(seed, i uint64) float64 {
	z := seed + (i+1)*0x9E3779B97F4A7C15
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	z ^= z >> 31
	return float64(z>>11) * 0x1p-53
}

// featureRows fills rows r0..r0+n-1 of gen_golden.py's features(); the
// explicit float64 conversions keep Go from fusing into FMAs.
func featureRows(s *goldenSet, d, r0, n int) []float64 {
	out := make([]float64, n*d)
	for r := 0; r < n; r++ {
		base := uint64((r0 + r) * d)
		for j := 0; j < d; j++ {
			u := 2*splitmixUniform(s.Seed, base+uint64(j)) - 1
			v := 2*splitmixUniform(s.Seed, base+uint64((j+1)%d)) - 1
			scale := math.Exp2(-math.Floor(float64(j) * s.Decay / float64(d)))
			out[r*d+j] = float64(scale*float64(u+0.5*v)) + s.Shift
		}
	}
	return out
}

// samplePositions is gen_golden.py's sample_positions.
func samplePositions(d int) [][2]int {
	p := make([][2]int, 16)
	for k := range p {
		p[k] = [2]int{(k * 7919) % d, (k*104729 + 3) % d}
	}
	return p
}

func relErr(got, want float64) float64 {
	return math.Abs(got-want) / math.Max(math.Abs(want), 1e-300)
}
