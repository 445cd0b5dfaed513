package nvae

import (
	"math"
	"testing"

	"github.com/mollify/mollify/internal/testenv"
	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// objBegin pins the test to its OS thread (torch state is per thread),
// opens a scope and seeds libtorch; call the returned function at the end.
func objBegin(t *testing.T, seed uint64) func() {
	t.Helper()
	unlock := nn.LockThread()
	sc := ts.NewScope()
	if _, err := nn.Seed(seed); err != nil {
		t.Fatal(err)
	}
	return func() {
		sc.Close()
		unlock()
	}
}

// objGolden reads testdata/golden_objective.safetensors
// (gen_golden_objective.py).
func objGolden(t *testing.T) (map[string]*ts.Tensor, map[string]string) {
	t.Helper()
	g, meta, err := nn.LoadTensors("testdata/golden_objective.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	return g, meta
}

func objTensor(t *testing.T, g map[string]*ts.Tensor, name string) *ts.Tensor {
	t.Helper()
	v, ok := g[name]
	if !ok {
		t.Fatalf("golden file has no %q (rerun gen_golden_objective.py)", name)
	}
	return v
}

// objClose fails unless got and want (same number of elements) agree to
// |got−want| ≤ atol + rtol·|want| everywhere.
func objClose(t *testing.T, what string, got, want []float64, atol, rtol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	bad := 0
	for i := range got {
		if d := math.Abs(got[i] - want[i]); !(d <= atol+rtol*math.Abs(want[i])) {
			if bad < 5 {
				t.Errorf("%s[%d] = %.9g, want %.9g (diff %.3g)", what, i, got[i], want[i], d)
			}
			bad++
		}
	}
	if bad > 5 {
		t.Errorf("%s: %d values differ in all", what, bad)
	}
}

func objVals(x *ts.Tensor) []float64 { return x.MustTotype(gotch.Double, false).Float64Values() }

func objFrom(vals []float64, shape ...int64) *ts.Tensor {
	return ts.MustOfSlice(vals).MustTotype(gotch.Float, true).MustReshape(shape, true)
}

func TestSoftClamp5(t *testing.T) {
	defer objBegin(t, 1)()
	xs := []float64{-1e4, -100, -5, -1, -1e-3, 0, 0.3, 1, 5, 7.5, 100, 1e4}
	got := objVals(SoftClamp5(objFrom(xs, int64(len(xs)))))
	want := make([]float64, len(xs))
	for i, x := range xs {
		want[i] = 5 * math.Tanh(x/5)
	}
	objClose(t, "5·tanh(x/5)", got, want, 1e-6, 1e-6)
	for i, v := range got {
		if !(v >= -5 && v <= 5) {
			t.Errorf("SoftClamp5(%g) = %g, outside [−5, 5]", xs[i], v)
		}
	}
	if math.Abs(got[4]-xs[4]) > 1e-8 {
		t.Errorf("SoftClamp5(%g) = %g, not the identity near 0", xs[4], got[4])
	}
}

// TestNormalClosedForms checks σ, log p and the KL against textbook
// formulas evaluated in float64 in Go (the KL in the form
// log(σp/σ) + (σ²+(μ−μp)²)/(2σp²) − ½, not NVAE's).
func TestNormalClosedForms(t *testing.T) {
	defer objBegin(t, 2)()
	mu := []float64{-12, -3, -0.5, 0, 0.25, 2, 6, 30}
	ls := []float64{-9, -4, -1, 0, 0.5, 1.5, 3, 20}
	mu2 := []float64{1, -2, 0.5, 0.1, -0.25, 4, -6, 0}
	ls2 := []float64{0, -1, -3, 0.2, 2, -0.5, 1, 8}
	z := []float64{0.5, -3.2, -0.4, 0, 1, 2.5, 4, -1}
	sc5 := func(x float64) float64 { return 5 * math.Tanh(x/5) }
	for _, temp := range []float64{1, 0.7, 1.3} {
		q, err := NewNormal(objFrom(mu, 8), objFrom(ls, 8), temp)
		if err != nil {
			t.Fatal(err)
		}
		p, err := NewNormal(objFrom(mu2, 8), objFrom(ls2, 8), 1)
		if err != nil {
			t.Fatal(err)
		}
		n := len(mu)
		wMu, wSig, wLogP, wKL := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
		for i := range mu {
			m1, s1 := sc5(mu[i]), (math.Exp(sc5(ls[i]))+0.01)*temp
			m2, s2 := sc5(mu2[i]), math.Exp(sc5(ls2[i]))+0.01
			wMu[i], wSig[i] = m1, s1
			wLogP[i] = -(z[i]-m1)*(z[i]-m1)/(2*s1*s1) - math.Log(s1*math.Sqrt(2*math.Pi))
			wKL[i] = math.Log(s2/s1) + (s1*s1+(m1-m2)*(m1-m2))/(2*s2*s2) - 0.5
		}
		objClose(t, "μ", objVals(q.Mu), wMu, 1e-6, 1e-6)
		objClose(t, "σ", objVals(q.Sigma), wSig, 1e-7, 2e-6)
		objClose(t, "log p", objVals(q.LogP(objFrom(z, 8))), wLogP, 1e-5, 1e-5)
		objClose(t, "KL", objVals(q.KL(p)), wKL, 1e-5, 1e-5)
		if kl := objVals(q.KL(q)); math.Abs(kl[0])+math.Abs(kl[7]) > 1e-6 {
			t.Errorf("KL(q‖q) = %v, want 0", kl)
		}
	}
}

// TestNormalKLMonteCarlo: the analytic KL agrees with the mean of
// log q(z) − log p(z) over 200,000 draws z ~ q, within four standard
// errors.
func TestNormalKLMonteCarlo(t *testing.T) {
	defer objBegin(t, 3)()
	const draws = 200000
	cases := []struct{ mu, ls, mu2, ls2 float64 }{
		{0, 0, 0, 0}, {1, -0.5, -0.5, 0.3}, {-2, 1, 0.5, -1}, {0.3, -3, 0, 0},
	}
	for _, c := range cases {
		col := func(v float64) *ts.Tensor { return objFrom([]float64{v}, 1).MustExpand([]int64{draws}, true, true) }
		q, err := NewNormal(col(c.mu), col(c.ls), 1)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := NewNormal(col(c.mu2), col(c.ls2), 1)
		z, _ := q.Sample()
		d := objVals(q.LogP(z).MustSub(p.LogP(z), true))
		var m, m2 float64
		for _, v := range d {
			m += v
			m2 += v * v
		}
		m /= draws
		se := math.Sqrt((m2/draws - m*m) / draws)
		kl := objVals(q.KL(p))[0]
		if math.Abs(kl-m) > 4*se+1e-6 {
			t.Errorf("%+v: analytic KL %.5f, Monte Carlo %.5f ± %.5f", c, kl, m, se)
		}
	}
}

// TestNormalSampleTemperature: samples have mean SoftClamp5(μ) and standard
// deviation temp·(exp(log σ)+0.01), and SampleWith(ε) is μ + σ·ε.
func TestNormalSampleTemperature(t *testing.T) {
	defer objBegin(t, 4)()
	const draws = 100000
	mu := objFrom([]float64{1.5}, 1).MustExpand([]int64{draws}, true, true)
	ls := objFrom([]float64{-0.7}, 1).MustExpand([]int64{draws}, true, true)
	for _, temp := range []float64{1, 0.5, 0.1} {
		n, err := NewNormal(mu, ls, temp)
		if err != nil {
			t.Fatal(err)
		}
		z, eps := n.Sample()
		v := objVals(z)
		var m, m2 float64
		for _, x := range v {
			m += x
			m2 += x * x
		}
		m /= draws
		sd := math.Sqrt(m2/draws - m*m)
		want := temp * (math.Exp(5*math.Tanh(-0.7/5)) + 0.01)
		if math.Abs(sd-want) > 0.02*want {
			t.Errorf("temp %g: sample sd %.5f, want %.5f (2%%)", temp, sd, want)
		}
		if wm := 5 * math.Tanh(1.5/5); math.Abs(m-wm) > 5*want/math.Sqrt(draws) {
			t.Errorf("temp %g: sample mean %.5f, want 5·tanh(1.5/5) = %.5f", temp, m, wm)
		}
		objClose(t, "SampleWith(ε)", objVals(n.SampleWith(eps)), v, 0, 0)
	}
}

// TestResidualNormal: the posterior is Normal(μp+Δμ, log σp+Δlog σ), and
// away from the clamp its σ is σp·Δσ (+0.01).
func TestResidualNormal(t *testing.T) {
	defer objBegin(t, 5)()
	mup, lsp := nn.Randn([]int64{3, 5}, gotch.CPU).MustMulScalar(ts.FloatScalar(4), true), nn.Randn([]int64{3, 5}, gotch.CPU).MustMulScalar(ts.FloatScalar(4), true)
	dmu, dls := nn.Randn([]int64{3, 5}, gotch.CPU).MustMulScalar(ts.FloatScalar(4), true), nn.Randn([]int64{3, 5}, gotch.CPU).MustMulScalar(ts.FloatScalar(4), true)
	q, err := NewResidualNormal(mup, lsp, dmu, dls, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := NewNormal(mup.MustAdd(dmu, false), lsp.MustAdd(dls, false), 1)
	objClose(t, "μ", objVals(q.Mu), objVals(ref.Mu), 0, 0)
	objClose(t, "σ", objVals(q.Sigma), objVals(ref.Sigma), 0, 0)

	small := func() *ts.Tensor { return nn.Uniform([]int64{20}, 0.1, gotch.CPU) }
	lp, dl := small(), small()
	q, _ = NewResidualNormal(small(), lp, small(), dl, 1)
	a, b := objVals(lp), objVals(dl)
	want := make([]float64, len(a))
	for i := range a {
		want[i] = math.Exp(a[i])*math.Exp(b[i]) + 0.01
	}
	objClose(t, "σ ≈ σp·Δσ", objVals(q.Sigma), want, 0, 1e-4)
}

func TestNormalGolden(t *testing.T) {
	defer objBegin(t, 6)()
	g, _ := objGolden(t)
	in := func(n string) *ts.Tensor { return objTensor(t, g, "normal."+n) }
	for _, temp := range []string{"1", "0.6"} {
		tv := map[string]float64{"1": 1, "0.6": 0.6}[temp]
		q, err := NewNormal(in("mu"), in("ls"), tv)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := NewNormal(in("mu2"), in("ls2"), 1)
		w := func(n string) []float64 { return objVals(objTensor(t, g, "normal.t"+temp+"."+n)) }
		objClose(t, "t"+temp+" μ", objVals(q.Mu), w("mu"), 1e-6, 1e-6)
		objClose(t, "t"+temp+" σ", objVals(q.Sigma), w("sigma"), 1e-7, 1e-6)
		objClose(t, "t"+temp+" log p", objVals(q.LogP(in("z"))), w("logp"), 1e-5, 1e-5)
		objClose(t, "t"+temp+" KL", objVals(q.KL(p)), w("kl"), 1e-5, 1e-5)
		objClose(t, "t"+temp+" sample", objVals(q.SampleWith(in("eps"))), w("sample"), 1e-6, 1e-6)
	}
	r, err := NewResidualNormal(in("mup"), in("lsp"), in("dmu"), in("dls"), 1)
	if err != nil {
		t.Fatal(err)
	}
	objClose(t, "residual μ", objVals(r.Mu), objVals(objTensor(t, g, "normal.res.mu")), 1e-6, 1e-6)
	objClose(t, "residual σ", objVals(r.Sigma), objVals(objTensor(t, g, "normal.res.sigma")), 1e-7, 1e-6)
}

func TestNormalErrors(t *testing.T) {
	defer objBegin(t, 7)()
	a, b := nn.Zeros([]int64{2, 3}, gotch.CPU), nn.Zeros([]int64{3, 2}, gotch.CPU)
	for _, temp := range []float64{0, -1, math.NaN(), math.Inf(1)} {
		_, err := NewNormal(a, a, temp)
		testenv.AssertError(t, err, []string{"NewNormal", "temperature must be positive and finite"}, nil)
	}
	_, err := NewNormal(a, b, 1)
	testenv.AssertError(t, err, []string{"parameter 1 has shape [3 2]", "[2 3]"}, nil)
	_, err = NewNormal(a, nil, 1)
	testenv.AssertError(t, err, []string{"parameter 1 is nil"}, nil)
	_, err = NewResidualNormal(a, a, a, b, 1)
	testenv.AssertError(t, err, []string{"NewResidualNormal", "parameter 3 has shape [3 2]"}, nil)
	_, err = NewResidualNormal(a, a, a, a, 0)
	testenv.AssertError(t, err, []string{"NewResidualNormal", "temperature"}, nil)
}

// Inside a data-parallel training step (nn.SetRowShard) Sample's ε is this
// rank's rows of the global batch's draw, so ranks do not share it; off,
// it is the plain draw.
func TestNormalSampleKeyedPerGlobalRow(t *testing.T) {
	defer objBegin(t, 9)()
	mu := objFrom([]float64{0, 0, 0, 0, 0, 0}, 3, 2)
	n, err := NewNormal(mu, mu, 1)
	if err != nil {
		t.Fatal(err)
	}
	draw := func(rank, world int) []float64 {
		if _, err := nn.Seed(9); err != nil {
			t.Fatal(err)
		}
		if err := nn.SetRowShard(rank, world); err != nil {
			t.Fatal(err)
		}
		defer nn.SetRowShard(0, 1)
		_, eps := n.Sample()
		return objVals(eps)
	}
	plain := draw(0, 1)
	if _, err := nn.Seed(9); err != nil {
		t.Fatal(err)
	}
	global := objVals(ts.MustRandn([]int64{6, 2}, gotch.Float, gotch.CPU))
	objClose(t, "unsharded ε", plain, global[:6], 0, 0)
	objClose(t, "rank 0 of 2", draw(0, 2), global[:6], 0, 0)
	objClose(t, "rank 1 of 2", draw(1, 2), global[6:], 0, 0)
}
