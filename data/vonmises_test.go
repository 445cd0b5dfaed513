package data

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

// The whole distribution of the Best–Fisher sampler, not only its
// moments: points lie on the unit circle and their angles pass a
// Kolmogorov–Smirnov test against the CDF integrated from the density.
func TestVonMisesKS(t *testing.T) {
	p, _ := NewPoints(VonMises, 20000, 1, 2)
	n := len(p.Train) / 2
	thetas := make([]float64, n)
	for i := 0; i < n; i++ {
		x, y := float64(p.Train[2*i]), float64(p.Train[2*i+1])
		if r := math.Hypot(x, y); math.Abs(r-1) > 1e-6 {
			t.Fatalf("point %d off the unit circle: r = %v", i, r)
		}
		thetas[i] = math.Atan2(y, x)
	}
	sort.Float64s(thetas)
	const steps = 20000
	cdf := make([]float64, steps+1)
	for i := 1; i <= steps; i++ {
		a := -math.Pi + 2*math.Pi*float64(i-1)/steps
		cdf[i] = cdf[i-1] + 2*math.Pi/steps*math.Exp(VonMisesLogDensity(a+math.Pi/steps, 0, 1))
	}
	d := 0.0
	for i, th := range thetas {
		f := cdf[min(int((th+math.Pi)/(2*math.Pi)*steps), steps)]
		d = max(d, math.Abs(f-float64(i)/float64(n)), math.Abs(f-float64(i+1)/float64(n)))
	}
	if crit := 1.63 / math.Sqrt(float64(n)); d > crit {
		t.Errorf("KS distance %.4f > %.4f (α = 0.01)", d, crit)
	}
	// A uniform sample fails the same test: it can fail.
	r := rand.New(rand.NewPCG(1, 1))
	uni := make([]float64, n)
	for i := range uni {
		uni[i] = math.Pi * (2*r.Float64() - 1)
	}
	sort.Float64s(uni)
	d = 0
	for i, th := range uni {
		f := cdf[min(int((th+math.Pi)/(2*math.Pi)*steps), steps)]
		d = max(d, math.Abs(f-float64(i)/float64(n)))
	}
	if d < 0.05 {
		t.Errorf("the KS check does not tell κ=1 from uniform (D = %.4f)", d)
	}
}

// Other concentrations: κ = 50 is nearly normal with sd 1/√κ around μ;
// κ = 0 is uniform.
func TestSampleVonMisesKappa(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const n = 20000
	var s, s2, c float64
	for i := 0; i < n; i++ {
		th := SampleVonMises(r, 1, 50)
		s += th
		s2 += th * th
		c += math.Cos(SampleVonMises(r, 0, 0))
	}
	mean := s / n
	if math.Abs(mean-1) > 0.005 {
		t.Errorf("κ=50, μ=1: mean %.4f", mean)
	}
	if sd := math.Sqrt(s2/n - mean*mean); math.Abs(sd-1/math.Sqrt(50)) > 0.01 {
		t.Errorf("κ=50: sd %.4f, want about 1/√50 = 0.141", sd)
	}
	if math.Abs(c/n) > 0.02 {
		t.Errorf("κ=0 is not uniform: mean cos %.4f", c/n)
	}
	if got := besselI0(1); math.Abs(got-1.2660658777520082) > 1e-15 {
		t.Errorf("I0(1) = %v", got)
	}
}
