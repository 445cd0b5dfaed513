package vaes

import (
	"math"
	"testing"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// reconNLL against the formulas written out in float64 loops.
func TestReconMatchesHandComputed(t *testing.T) {
	defer begin(t)()
	sigmoid := func(a float64) float64 { return 1 / (1 + math.Exp(-a)) }
	for _, tc := range []struct {
		recon, rng string
		nll        func(a, x float64) float64
	}{
		{config.ReconMSE, config.RangeUnit, func(a, x float64) float64 { d := sigmoid(a) - x; return 0.5 * d * d }},
		{config.ReconMSE, config.RangeSigned, func(a, x float64) float64 { d := math.Tanh(a) - x; return 0.5 * d * d }},
		{config.ReconBCE, config.RangeUnit, func(a, x float64) float64 {
			return -(x*math.Log(sigmoid(a)) + (1-x)*math.Log(1-sigmoid(a)))
		}},
	} {
		c := tiny(tc.recon)
		c.Range = tc.rng
		s := nn.NewStore(gotch.CPU)
		m, err := NewVAE(s.Root(), c.VAE, c.Data)
		if err != nil {
			t.Fatal(err)
		}
		seed(t, 3)
		a := nn.Randn([]int64{2, 3, 32, 32}, gotch.CPU).MustMulScalar(ts.FloatScalar(2), true)
		x := images(2, c.Data)
		if tc.rng == config.RangeSigned {
			x = x.MustMulScalar(ts.FloatScalar(2), true).MustSubScalar(ts.FloatScalar(1), true)
		}
		got := values(m.reconNLL(a, x))
		av, xv := values(a), values(x)
		for n := range 2 {
			var want float64
			for i := n * 3072; i < (n+1)*3072; i++ {
				want += tc.nll(av[i], xv[i])
			}
			if !relClose(got[n], want, 1e-5) {
				t.Errorf("%s/%s example %d: reconNLL = %.6f, hand-computed %.6f", tc.recon, tc.rng, n, got[n], want)
			}
		}
		wantConst := 0.0
		if tc.recon == config.ReconMSE {
			wantConst = 0.5 * 3072 * math.Log(2*math.Pi)
		}
		if got := m.ReconConst(); math.Abs(got-wantConst) > 1e-9 {
			t.Errorf("%s: ReconConst = %g, want %g", tc.recon, got, wantConst)
		}
		s.Close()
	}
}

// The closed-form KL equals the Monte Carlo mean of log q(z) − log p(z),
// z ~ q, within 5 standard errors, and is 0 exactly when q = p.
func TestGaussianKLMatchesMonteCarlo(t *testing.T) {
	defer begin(t)()
	seed(t, 4)
	mu := ts.MustOfSlice([]float64{0.5, -1.0, 2.0, 0.0, 0.3, 0.1}).MustReshape([]int64{2, 3}, true)
	lv := ts.MustOfSlice([]float64{-1.0, 0.5, 0.0, -3.0, 1.2, 0.2}).MustReshape([]int64{2, 3}, true)
	kl := values(GaussianKL(mu, lv))
	const n = 200000
	eps := ts.MustRandn([]int64{n, 2, 3}, gotch.Double, gotch.CPU)
	z := reparameterize(mu, lv, eps)
	d := logQ(eps, lv).MustSub(logPrior(z), true) // (n, 2)
	mc := values(d.MustMeanDim([]int64{0}, false, gotch.Double, false))
	for i := range 2 {
		std := values(d.MustSelect(1, int64(i), false).MustStd(true, true))[0]
		if se := std / math.Sqrt(n); math.Abs(mc[i]-kl[i]) > 5*se {
			t.Errorf("row %d: closed-form KL %.5f, Monte Carlo %.5f ± %.5f", i, kl[i], mc[i], se)
		}
		if kl[i] <= 0 {
			t.Errorf("row %d: KL %g is not positive", i, kl[i])
		}
	}
	zero := values(GaussianKL(ts.MustZeros([]int64{1, 5}, gotch.Double, gotch.CPU), ts.MustZeros([]int64{1, 5}, gotch.Double, gotch.CPU)))
	if zero[0] != 0 {
		t.Errorf("KL(N(0,I) ‖ N(0,I)) = %g", zero[0])
	}
}

// LogLikelihood(x, 1) is the normalised single-sample ELBO
// log p(x|z) + log p(z) − log q(z|x) for the same noise, written out here.
func TestLogLikelihoodWithOneSampleIsTheELBO(t *testing.T) {
	defer begin(t)()
	c := tiny(config.ReconMSE)
	s := nn.NewStore(gotch.CPU)
	defer s.Close()
	m, err := NewVAE(s.Root(), c.VAE, c.Data)
	if err != nil {
		t.Fatal(err)
	}
	randomize(s, 0.2)
	m.SetTraining(false)
	seed(t, 5)
	x := images(3, c.Data)
	seed(t, 6)
	ll, err := m.LogLikelihood(x, 1)
	if err != nil {
		t.Fatal(err)
	}
	seed(t, 6)
	var want []float64
	ts.NoGrad(func() {
		mu, lv := m.Encoder.Forward(x)
		eps := mu.MustRandnLike(false)
		sigma := lv.MustMulScalar(ts.FloatScalar(0.5), false).MustExp(true)
		z := mu.MustAdd(sigma.MustMul(eps, false), false)
		xh := values(m.Decoder.Forward(z).MustSigmoid(true))
		zv, ev, lvv, xv := values(z), values(eps), values(lv), values(x)
		d := int(c.Latent)
		D := int(m.Dim())
		for n := range 3 {
			lp := -0.5 * float64(D) * math.Log(2*math.Pi)
			for i := n * D; i < (n+1)*D; i++ {
				lp -= 0.5 * (xh[i] - xv[i]) * (xh[i] - xv[i])
			}
			for i := n * d; i < (n+1)*d; i++ {
				lp += -0.5*zv[i]*zv[i] - 0.5*math.Log(2*math.Pi)          // log N(z; 0, 1)
				lp -= -0.5*(lvv[i]+ev[i]*ev[i]) - 0.5*math.Log(2*math.Pi) // log N(z; μ, σ²)
			}
			want = append(want, lp)
		}
	})
	for n, got := range values(ll) {
		if !relClose(got, want[n], 1e-5) {
			t.Errorf("example %d: LogLikelihood(x, 1) = %.4f, ELBO by hand %.4f", n, got, want[n])
		}
	}
}

func TestLossTerms(t *testing.T) {
	defer begin(t)()
	c := tiny(config.ReconBCE)
	s := nn.NewStore(gotch.CPU)
	defer s.Close()
	vae, err := NewBetaVAE(s.Root(), c.VAE, c.Data)
	if err != nil {
		t.Fatal(err)
	}
	x := images(4, c.Data)
	l, err := vae.Loss(x)
	if err != nil {
		t.Fatal(err)
	}
	recon, kl, ne := scalar(t, l.Terms["recon"]), scalar(t, l.Terms["kl"]), scalar(t, l.Terms["neg_elbo"])
	if tot := scalar(t, l.Total); !relClose(tot, recon+0.1*kl, 1e-5) || !relClose(ne, recon+kl, 1e-5) {
		t.Errorf("β-VAE total %g, neg_elbo %g; recon %g, kl %g", tot, ne, recon, kl)
	}
	// bce of uniform targets is at least the entropy of each pixel
	if recon < 3072*0.5 {
		t.Errorf("bce recon %g is below the entropy floor", recon)
	}
}

func TestSample(t *testing.T) {
	defer begin(t)()
	for _, rng := range []string{config.RangeUnit, config.RangeSigned} {
		c := tiny(config.ReconMSE)
		c.Range = rng
		s := nn.NewStore(gotch.CPU)
		m, err := NewVAE(s.Root(), c.VAE, c.Data)
		if err != nil {
			t.Fatal(err)
		}
		m.SetTraining(false)
		x, err := m.Sample(5, 1)
		if err != nil {
			t.Fatal(err)
		}
		if got := x.MustSize(); got[0] != 5 || got[1] != 3 || got[2] != 32 || got[3] != 32 {
			t.Fatalf("Sample shape %v", got)
		}
		lo := 0.0
		if rng == config.RangeSigned {
			lo = -1
		}
		v := values(x)
		var spread float64
		for i, a := range v {
			if a < lo || a > 1 {
				t.Fatalf("%s sample value %g outside the data range", rng, a)
			}
			spread = math.Max(spread, math.Abs(a-v[i%3072]))
		}
		if spread == 0 {
			t.Errorf("%s: samples at temperature 1 are all equal", rng)
		}
		x0, _ := m.Sample(3, 0)
		v0 := values(x0)
		for i := range v0 {
			if v0[i] != v0[i%3072] {
				t.Fatalf("%s: samples at temperature 0 differ", rng)
			}
		}
		s.Close()
	}
}
