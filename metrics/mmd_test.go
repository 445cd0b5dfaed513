package metrics

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/sugarme/gotch/ts"
)

// direct is the unbiased MMD² computed pair by pair in float64.
func direct(x, y [][2]float64, k RBF) float64 {
	kern := func(a, b [2]float64) float64 {
		d := (a[0]-b[0])*(a[0]-b[0]) + (a[1]-b[1])*(a[1]-b[1])
		return k.Variance * math.Exp(-d/(2*k.Lengthscale))
	}
	var sxx, syy, sxy float64
	for i := range x {
		for j := range x {
			if i != j {
				sxx += kern(x[i], x[j])
			}
		}
		for j := range y {
			sxy += kern(x[i], y[j])
		}
	}
	for i := range y {
		for j := range y {
			if i != j {
				syy += kern(y[i], y[j])
			}
		}
	}
	n, m := float64(len(x)), float64(len(y))
	return sxx/(n*(n-1)) + syy/(m*(m-1)) - 2*sxy/(n*m)
}

func points(r *rand.Rand, n int, shift float64) ([][2]float64, *ts.Tensor) {
	p := make([][2]float64, n)
	flat := make([]float32, 2*n)
	for i := range p {
		p[i] = [2]float64{float64(float32(r.NormFloat64() + shift)), float64(float32(r.NormFloat64()))}
		flat[2*i], flat[2*i+1] = float32(p[i][0]), float32(p[i][1])
	}
	return p, ts.MustOfSlice(flat).MustReshape([]int64{int64(n), 2}, true)
}

func TestMMD2MatchesDirectSum(t *testing.T) {
	sc := ts.NewScope()
	defer sc.Close()
	r := rand.New(rand.NewPCG(1, 2))
	// 2500 rows cross the 1024-row block boundaries.
	x, xt := points(r, 2500, 0)
	y, yt := points(r, 700, 0.7)
	for _, k := range []RBF{PaperRBF, UnitRBF, {Lengthscale: 0.3, Variance: 2}} {
		got, err := MMD2(xt, yt, k)
		if err != nil {
			t.Fatal(err)
		}
		want := direct(x, y, k)
		if math.Abs(got-want) > 1e-6*math.Abs(want)+1e-12*k.Variance {
			t.Errorf("%+v: MMD2 %.10g, direct %.10g", k, got, want)
		}
	}
	// Same distribution: the unbiased estimate is near 0; shifted: clearly positive.
	_, x2 := points(r, 1000, 0)
	_, x3 := points(r, 1000, 0)
	same, _ := MMD2(x2, x3, UnitRBF)
	_, x4 := points(r, 1000, 1.5)
	diff, _ := MMD2(x2, x4, UnitRBF)
	if math.Abs(same) > 0.01 || diff < 0.1 {
		t.Errorf("MMD² same %.4g, shifted %.4g", same, diff)
	}
}

func TestMMD2Errors(t *testing.T) {
	sc := ts.NewScope()
	defer sc.Close()
	r := rand.New(rand.NewPCG(1, 2))
	_, a := points(r, 10, 0)
	one := ts.MustOfSlice([]float32{1, 2}).MustReshape([]int64{1, 2}, true)
	three := ts.MustOfSlice([]float32{1, 2, 3}).MustReshape([]int64{1, 3}, true)
	for _, c := range []struct {
		x, y *ts.Tensor
		k    RBF
		want string
	}{
		{a, three, UnitRBF, "needs (N, D) and (M, D)"},
		{a, one, UnitRBF, "at least 2 samples"},
		{a, a, RBF{Lengthscale: 0, Variance: 1}, "must be positive"},
	} {
		if _, err := MMD2(c.x, c.y, c.k); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want %q", err, c.want)
		}
	}
}

func TestBitsPerDim(t *testing.T) {
	// A uniform density on [0,1]^D has NLL 0 nats: 8 bits/dim on 8-bit data.
	if got := BitsPerDim(0, 3072, 8); got != 8 {
		t.Errorf("got %v", got)
	}
	if got := BitsPerDim(3072*math.Ln2, 3072, 0); math.Abs(got-1) > 1e-12 {
		t.Errorf("got %v", got)
	}
}

func BenchmarkMMD2Paper10k(b *testing.B) {
	sc := ts.NewScope()
	defer sc.Close()
	r := rand.New(rand.NewPCG(1, 2))
	_, x := points(r, 10000, 0)
	_, y := points(r, 10000, 0.1)
	for i := 0; i < b.N; i++ {
		if _, err := MMD2(x, y, PaperRBF); err != nil {
			b.Fatal(err)
		}
	}
}
