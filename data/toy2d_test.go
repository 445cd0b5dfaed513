package data

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

func TestVonMisesMoments(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const n = 200000
	var c, s float64
	for i := 0; i < n; i++ {
		th := SampleVonMises(r, 0, 1)
		if th <= -math.Pi || th > math.Pi {
			t.Fatalf("angle %v outside (−π, π]", th)
		}
		c += math.Cos(th)
		s += math.Sin(th)
	}
	// E[cos θ] = I1(κ)/I0(κ) = 0.44639 for κ = 1; E[sin θ] = 0.
	if got := c / n; math.Abs(got-0.446390) > 0.005 {
		t.Errorf("E[cos θ] = %.4f, want 0.4464", got)
	}
	if got := s / n; math.Abs(got) > 0.005 {
		t.Errorf("E[sin θ] = %.4f, want 0", got)
	}
	// The density integrates to 1 over the circle.
	var integral float64
	const m = 100000
	for i := 0; i < m; i++ {
		integral += math.Exp(VonMisesLogDensity(-math.Pi+2*math.Pi*(float64(i)+0.5)/m, 0, 1)) * 2 * math.Pi / m
	}
	if math.Abs(integral-1) > 1e-9 {
		t.Errorf("von Mises density integrates to %v", integral)
	}
}

func TestMoGSamplesAndDensity(t *testing.T) {
	p, err := NewPoints(MoG, 20000, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	var up, sx, sy2 float64
	n := len(p.Train) / 2
	for i := 0; i < n; i++ {
		x, y := float64(p.Train[2*i]), float64(p.Train[2*i+1])
		if y > 0 {
			up++
			sy2 += (y - 2) * (y - 2)
		}
		sx += x * x
	}
	if f := up / float64(n); math.Abs(f-0.5) > 0.02 {
		t.Errorf("%.3f of the points in the upper mode, want 0.5", f)
	}
	if sd := math.Sqrt(sx / float64(n)); math.Abs(sd-2.0/3) > 0.02 {
		t.Errorf("x std %.3f, want 2/3", sd)
	}
	if sd := math.Sqrt(sy2 / up); math.Abs(sd-2.0/3) > 0.02 {
		t.Errorf("upper mode y std %.3f, want 2/3", sd)
	}
	// The density integrates to 1 over a wide box.
	var integral float64
	const h = 0.02
	for x := -6.0; x < 6; x += h {
		for y := -6.0; y < 6; y += h {
			integral += math.Exp(MoGLogDensity(x+h/2, y+h/2)) * h * h
		}
	}
	if math.Abs(integral-1) > 1e-6 {
		t.Errorf("MoG density integrates to %v", integral)
	}
}

func TestPointsAreSeeded(t *testing.T) {
	a, _ := NewPoints(VonMises, 100, 50, 7)
	b, _ := NewPoints(VonMises, 100, 50, 7)
	c, _ := NewPoints(VonMises, 100, 50, 8)
	if !equal(a.Train, b.Train) || !equal(a.Test, b.Test) {
		t.Error("the same seed gave different points")
	}
	if equal(a.Train, c.Train) {
		t.Error("different seeds gave the same points")
	}
	for i := 0; i < len(a.Train); i += 2 {
		if r := math.Hypot(float64(a.Train[i]), float64(a.Train[i+1])); math.Abs(r-1) > 1e-6 {
			t.Fatalf("von Mises point %d at radius %v, want 1", i/2, r)
		}
	}
	for _, c := range []struct {
		name     string
		tr, te   int
		wantText string
	}{{"spiral", 10, 10, `unknown 2-D data set "spiral"`}, {MoG, 0, 10, "positive train and test sizes"}} {
		if _, err := NewPoints(c.name, c.tr, c.te, 0); err == nil || !strings.Contains(err.Error(), c.wantText) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

func equal(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Batches are a function of the step: an epoch is a permutation, and a
// fresh server (as after a resume) returns the same batch for a step.
func TestPointBatchesByStep(t *testing.T) {
	sc := ts.NewScope()
	defer sc.Close()
	pts := make([]float32, 2*10)
	for i := range pts {
		pts[i] = float32(i / 2)
	}
	b, err := NewPointBatches(pts, 3, true, 1, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	if b.BatchesPerEpoch() != 3 {
		t.Fatalf("%d batches per epoch, want 3 (drop last)", b.BatchesPerEpoch())
	}
	seen := map[float32]int{}
	var firstEpoch [][]byte
	for step := 0; step < 3; step++ {
		x, err := b.Batch(step)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := x.Bytes()
		firstEpoch = append(firstEpoch, v)
		for i, f := range x.Float64Values() {
			if i%2 == 0 {
				seen[float32(f)]++
			}
		}
	}
	if len(seen) != 9 {
		t.Errorf("one epoch drew %d distinct rows, want 9 distinct of 10", len(seen))
	}
	fresh, _ := NewPointBatches(pts, 3, true, 1, gotch.CPU)
	x, _ := fresh.Batch(1)
	v, _ := x.Bytes()
	if !bytes.Equal(v, firstEpoch[1]) {
		t.Error("a fresh server gave another batch for step 1")
	}
	y, _ := fresh.Batch(4) // epoch 1: another permutation
	w, _ := y.Bytes()
	if bytes.Equal(w, firstEpoch[1]) {
		t.Error("epoch 1 repeated epoch 0's order")
	}
	keep, _ := NewPointBatches(pts, 3, false, 1, gotch.CPU)
	if keep.BatchesPerEpoch() != 4 {
		t.Errorf("keep-last: %d batches per epoch, want 4", keep.BatchesPerEpoch())
	}
	if z, _ := keep.Batch(3); z.MustSize()[0] != 1 {
		t.Errorf("keep-last: last batch has %d rows, want 1", z.MustSize()[0])
	}
	if _, err := NewPointBatches(pts, 11, true, 1, gotch.CPU); err == nil {
		t.Error("a batch larger than the data should be an error")
	}
}
