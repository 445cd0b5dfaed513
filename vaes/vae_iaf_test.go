package vaes

import (
	"math"
	"testing"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// MADE's Jacobians ∂μ/∂x and ∂s/∂x, by autograd, are strictly lower
// triangular (output i sees only inputs j < i), and most entries below the
// diagonal are non-zero.
func TestMADEIsAutoregressive(t *testing.T) {
	defer begin(t)()
	seed(t, 21)
	s := nn.NewStore(gotch.CPU)
	defer s.Close()
	const d = 6
	m, err := NewMADE(s.Root(), d, []int64{16, 16, 16})
	if err != nil {
		t.Fatal(err)
	}
	randomize(s, 0.5)
	x := nn.Randn([]int64{1, d}, gotch.CPU)
	x.MustRequiresGrad_(true)
	mu, sc := m.Forward(x)
	for name, out := range map[string]*ts.Tensor{"μ": mu, "s": sc} {
		J := jacobian(t, out, x)
		below := 0
		for i := range d {
			for j := range d {
				switch {
				case j >= i && J[i][j] != 0:
					t.Errorf("∂%s_%d/∂x_%d = %g, want exactly 0 (j ≥ i)", name, i, j, J[i][j])
				case j < i && J[i][j] != 0:
					below++
				}
			}
		}
		if below < d*(d-1)/2*3/4 {
			t.Errorf("%s: only %d of %d entries below the diagonal are non-zero", name, below, d*(d-1)/2)
		}
	}
}

// The IAF's log-determinant equals log|det ∂zK/∂z0| of the brute-force
// Jacobian, and the flip between blocks makes that Jacobian dense.
func TestIAFLogDetMatchesJacobian(t *testing.T) {
	defer begin(t)()
	seed(t, 22)
	s := nn.NewStore(gotch.CPU)
	defer s.Close()
	const d = 5
	f, err := NewIAF(s.Root(), d, config.IAF{Blocks: 2, HiddenLayers: 3, HiddenUnits: 12})
	if err != nil {
		t.Fatal(err)
	}
	randomize(s, 0.3)
	for trial := range 4 {
		z := nn.Randn([]int64{1, d}, gotch.CPU).MustMulScalar(ts.FloatScalar(1.5), true)
		z.MustRequiresGrad_(true)
		zK, ld := f.Transform(z)
		J := jacobian(t, zK, z)
		want := logAbsDet(J)
		got := values(ld)[0]
		if math.Abs(got-want) > 1e-4*math.Max(1, math.Abs(want)) {
			t.Errorf("trial %d: log-det %.6f, brute force %.6f", trial, got, want)
		}
		if math.Abs(got) < 1e-2 {
			t.Errorf("trial %d: log-det %g is ~0; the flow is near volume preserving and the test proves little", trial, got)
		}
		upper := 0
		for i := range d {
			for j := i + 1; j < d; j++ {
				if J[i][j] != 0 {
					upper++
				}
			}
		}
		if upper == 0 {
			t.Errorf("trial %d: ∂zK/∂z0 is lower triangular: no flip between blocks", trial)
		}
	}
}

// With a zero flow (μ = s = 0: the identity up to the flip), the VAE-IAF
// loss is the VAE's single-sample ELBO at flip(z0) for the same noise; with a random flow, its KL
// term is log q(z0) − log p(zK) − log-det.
func TestVAEIAFKL(t *testing.T) {
	defer begin(t)()
	c := tiny(config.ReconMSE)
	seed(t, 23)
	sv := nn.NewStore(gotch.CPU)
	defer sv.Close()
	v, err := NewVAE(sv.Root(), c.VAE, c.Data)
	if err != nil {
		t.Fatal(err)
	}
	seed(t, 23)
	s := nn.NewStore(gotch.CPU)
	defer s.Close()
	c.IAF = config.IAF{Blocks: 2, HiddenLayers: 3, HiddenUnits: 8}
	m, err := NewVAEIAF(s.Root(), c.VAE, c.Data)
	if err != nil {
		t.Fatal(err)
	}
	named := s.Named()
	ts.NoGrad(func() {
		for name, p := range named {
			if len(name) > 5 && name[:5] == "flow." && name[len(name)-4:] != "mask" {
				p.MustZero_()
			}
		}
	})
	x := images(3, c.Data)
	eps := nn.Randn([]int64{3, int64(c.Latent)}, gotch.CPU)
	mu, lv := m.Encoder.Forward(x)
	l := m.loss(x, mu, lv, eps)
	// Two blocks reverse the latent once: zK = flip(z0).
	mu2, lv2 := v.Encoder.Forward(x)
	zK0 := reparameterize(mu2, lv2, eps).MustFlip([]int64{1}, true)
	negELBO := mean(v.reconNLL(v.Decoder.Forward(zK0), x).MustAdd(logQ(eps, lv2), true).MustSub(logPrior(zK0), true))
	if a, b := scalar(t, l.Total), scalar(t, negELBO); !relClose(a, b, 1e-5) {
		t.Errorf("identity-flow VAE-IAF loss %.5f, VAE −ELBO at flip(z0) %.5f", a, b)
	}
	if ld := scalar(t, l.Terms["log_det"]); ld != 0 {
		t.Errorf("identity flow log-det %g", ld)
	}

	randomize(s, 0.2)
	mu, lv = m.Encoder.Forward(x)
	l = m.loss(x, mu, lv, eps)
	z0 := reparameterize(mu, lv, eps)
	zK, ld := m.Flow.Transform(z0)
	want := mean(logQ(eps, lv).MustSub(logPrior(zK), true).MustSub(ld, true))
	if a, b := scalar(t, l.Terms["kl"]), scalar(t, want); !relClose(a, b, 1e-5) || scalar(t, l.Terms["log_det"]) == 0 {
		t.Errorf("kl %.5f, log q(z0) − log p(zK) − log-det = %.5f", a, b)
	}
}
