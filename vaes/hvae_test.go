package vaes

import (
	"math"
	"testing"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

func TestTemperingScales(t *testing.T) {
	for _, tc := range []struct {
		beta0 float64
		k     int
	}{{0.3, 1}, {0.3, 5}, {0.01, 3}, {1, 4}} {
		sc := TemperingScales(tc.beta0, tc.k)
		prod := 1.0
		for _, s := range sc {
			prod *= s
			if s > 1+1e-15 {
				t.Errorf("β0=%g K=%d: factor %g > 1: tempering must cool ρ", tc.beta0, tc.k, s)
			}
		}
		if math.Abs(prod-math.Sqrt(tc.beta0)) > 1e-12 {
			t.Errorf("β0=%g K=%d: factors %v multiply to %g, want √β0 = %g", tc.beta0, tc.k, sc, prod, math.Sqrt(tc.beta0))
		}
	}
	if sc := TemperingScales(0.3, 1); math.Abs(sc[0]-math.Sqrt(0.3)) > 1e-15 {
		t.Errorf("one step: %v, want [√0.3]", sc)
	}
}

// toyGradU is ∇U for U(z) = Σ(z⁴/4 + z²/2) + Σ z_0·z_1 (non-quadratic and
// coupled), by autograd with create_graph so that it can be differentiated
// again; z not in a graph is differentiated on a detached copy.
func toyGradU(t *testing.T) func(z *ts.Tensor) *ts.Tensor {
	return func(z *ts.Tensor) *ts.Tensor {
		zz, create := z, true
		if !z.MustRequiresGrad() {
			zz = z.MustDetach(false)
			zz.MustRequiresGrad_(true)
			create = false
		}
		u := zz.MustPowTensorScalar(ts.FloatScalar(4), false).MustDivScalar(ts.FloatScalar(4), true).
			MustAdd(zz.MustSquare(false).MustDivScalar(ts.FloatScalar(2), true), true).MustSum(gotch.Double, true)
		u = u.MustAdd(zz.MustSelect(1, 0, false).MustMul(zz.MustSelect(1, 1, false), true).MustSum(gotch.Double, true), true)
		g, err := ts.RunBackward([]*ts.Tensor{u}, []*ts.Tensor{zz}, true, create)
		if err != nil {
			t.Fatal(err)
		}
		if !create {
			return g[0].MustDetach(false)
		}
		return g[0]
	}
}

// pythaeStep is pythae's leapfrog (models/hvae/hvae_model.py), whose
// position update uses the old momentum. It is here to show that the
// volume and reversibility checks catch it.
func pythaeStep(z, rho, eps *ts.Tensor, gradU func(*ts.Tensor) *ts.Tensor) (*ts.Tensor, *ts.Tensor) {
	half := eps.MustMulScalar(ts.FloatScalar(0.5), false)
	rhoHalf := rho.MustSub(half.MustMul(gradU(z), false), false)
	z2 := z.MustAdd(eps.MustMul(rho, false), false)
	return z2, rhoHalf.MustSub(half.MustMul(gradU(z2), false), false)
}

type integrator func(z, rho, eps *ts.Tensor, gradU func(*ts.Tensor) *ts.Tensor) (*ts.Tensor, *ts.Tensor)

// flowLogDet is log|det| of (z, ρ) ↦ integrator(z, ρ) at a point, by the
// brute-force Jacobian.
func flowLogDet(t *testing.T, step integrator, z0, rho0, eps *ts.Tensor, gradU func(*ts.Tensor) *ts.Tensor) float64 {
	t.Helper()
	d := z0.MustSize()[1]
	w := ts.MustCat([]*ts.Tensor{z0, rho0}, 1)
	w.MustRequiresGrad_(true)
	z, rho := step(w.MustNarrow(1, 0, d, false), w.MustNarrow(1, d, d, false), eps, gradU)
	return logAbsDet(jacobian(t, ts.MustCat([]*ts.Tensor{z, rho}, 1), w))
}

func maxAbsDiff(a, b *ts.Tensor) float64 {
	return maxAbs(values(a.MustSub(b, false)))
}

// The leapfrog map is volume preserving (log|det J| = 0 by the brute-force
// Jacobian) and reversible (flip ρ, run again, flip ρ: back to the start);
// with tempering log|det J| = d/2·log β0. pythae's step is neither.
func TestLeapfrogIsVolumePreservingAndReversible(t *testing.T) {
	defer begin(t)()
	seed(t, 31)
	const d = 3
	gradU := toyGradU(t)
	eps := ts.MustOfSlice([]float64{0.3, 0.2, 0.25}).MustReshape([]int64{1, d}, true)
	ours := func(steps []float64) integrator {
		return func(z, rho, eps *ts.Tensor, g func(*ts.Tensor) *ts.Tensor) (*ts.Tensor, *ts.Tensor) {
			return Leapfrog(z, rho, eps, steps, g)
		}
	}
	for trial := range 3 {
		z0 := ts.MustRandn([]int64{1, d}, gotch.Double, gotch.CPU)
		rho0 := ts.MustRandn([]int64{1, d}, gotch.Double, gotch.CPU)
		if ld := flowLogDet(t, ours([]float64{1, 1, 1}), z0, rho0, eps, gradU); math.Abs(ld) > 1e-10 {
			t.Errorf("trial %d: 3 leapfrog steps have log|det J| = %.3g, want 0", trial, ld)
		}
		beta0 := 0.3
		if ld, want := flowLogDet(t, ours(TemperingScales(beta0, 3)), z0, rho0, eps, gradU), d/2.0*math.Log(beta0); math.Abs(ld-want) > 1e-10 {
			t.Errorf("trial %d: tempered leapfrog log|det J| = %.6f, want d/2·log β0 = %.6f", trial, ld, want)
		}
		if ld := flowLogDet(t, pythaeStep, z0, rho0, eps, gradU); math.Abs(ld) < 1e-3 {
			t.Errorf("trial %d: pythae's step passes the volume check (%.3g): the check is too weak", trial, ld)
		}

		z1, rho1 := Leapfrog(z0, rho0, eps, []float64{1, 1, 1}, gradU)
		if maxAbsDiff(z1, z0) < 1e-2 {
			t.Fatalf("trial %d: leapfrog barely moved z; the test proves nothing", trial)
		}
		z2, rho2 := Leapfrog(z1, rho1.MustNeg(false), eps, []float64{1, 1, 1}, gradU)
		if e := max(maxAbsDiff(z2, z0), maxAbsDiff(rho2.MustNeg(false), rho0)); e > 1e-12 {
			t.Errorf("trial %d: forward, flip, forward misses the start by %.3g", trial, e)
		}
		pz1, prho1 := pythaeStep(z0, rho0, eps, gradU)
		pz2, prho2 := pythaeStep(pz1, prho1.MustNeg(false), eps, gradU)
		if e := max(maxAbsDiff(pz2, z0), maxAbsDiff(prho2.MustNeg(false), rho0)); e < 1e-6 {
			t.Errorf("trial %d: pythae's step passes the reversibility check (%.3g)", trial, e)
		}
	}
}

func tinyHVAE(t *testing.T, learn bool) (*HVAE, *nn.Store) {
	t.Helper()
	seed(t, 32)
	s := nn.NewStore(gotch.CPU)
	c := tiny(config.ReconMSE)
	c.Latent = 3
	c.HVAE = config.HVAE{LeapfrogSteps: 2, StepSize: 1e-3, LearnStepSize: learn, BetaZero: 0.3}
	m, err := NewHVAE(s.Root(), c.VAE, c.Data)
	if err != nil {
		t.Fatal(err)
	}
	return m, s
}

// The leapfrog on the HVAE's own potential U(z) = −log p(x, z), whose
// gradient goes through the decoder by autograd, is volume preserving.
func TestHVAELeapfrogOnDecoderPotential(t *testing.T) {
	defer begin(t)()
	m, s := tinyHVAE(t, true)
	defer s.Close()
	randomize(s, 0.3)
	m.SetTraining(false) // running statistics: examples are independent
	x := images(1, m.Data)
	eps := ts.MustFull([]int64{3}, ts.FloatScalar(0.2), gotch.Float, gotch.CPU)
	gradU := func(z *ts.Tensor) *ts.Tensor { _, g := m.potential(z, x); return g }
	step := func(z, rho, eps *ts.Tensor, g func(*ts.Tensor) *ts.Tensor) (*ts.Tensor, *ts.Tensor) {
		return Leapfrog(z, rho, eps, []float64{1, 1}, g)
	}
	z0, rho0 := nn.Randn([]int64{1, 3}, gotch.CPU), nn.Randn([]int64{1, 3}, gotch.CPU)
	if ld := flowLogDet(t, step, z0, rho0, eps, gradU); math.Abs(ld) > 1e-4 {
		t.Errorf("log|det J| = %.3g, want 0", ld)
	}
	if ld := flowLogDet(t, pythaeStep, z0, rho0, eps, gradU); math.Abs(ld) < 1e-3 {
		t.Errorf("pythae's step passes the volume check on the decoder potential (%.3g)", ld)
	}
}

// With ε = 0 the flow is the identity apart from tempering, which returns
// ρK = γ0: the momentum term vanishes and the HVAE loss is the VAE's
// single-sample negative ELBO for the same noise.
func TestHVAEWithZeroStepIsTheVAE(t *testing.T) {
	defer begin(t)()
	m, s := tinyHVAE(t, true)
	defer s.Close()
	seed(t, 32)
	sv := nn.NewStore(gotch.CPU)
	defer sv.Close()
	v, err := NewVAE(sv.Root(), m.Config, m.Data)
	if err != nil {
		t.Fatal(err)
	}
	ts.NoGrad(func() { m.Eps.MustZero_() })
	x := images(4, m.Data)
	eps, gamma := nn.Randn([]int64{4, 3}, gotch.CPU), nn.Randn([]int64{4, 3}, gotch.CPU)
	mu, lv := m.Encoder.Forward(x)
	l := m.loss(x, mu, lv, eps, gamma)
	mu2, lv2 := v.Encoder.Forward(x)
	elbo := mean(v.logWeightWith(x, mu2, lv2, eps)).MustAddScalar(ts.FloatScalar(v.ReconConst()), true)
	if mom := scalar(t, l.Terms["momentum"]); math.Abs(mom) > 1e-5 {
		t.Errorf("momentum term %g with ε = 0, want 0", mom)
	}
	if a, b := scalar(t, l.Total), -scalar(t, elbo); !relClose(a, b, 1e-5) {
		t.Errorf("HVAE loss with ε = 0: %.5f, VAE −ELBO %.5f", a, b)
	}
}

// A learned step size gets a finite, non-zero gradient through the ELBO
// (create_graph through the decoder); a fixed one is a buffer.
func TestHVAEStepSize(t *testing.T) {
	defer begin(t)()
	m, s := tinyHVAE(t, true)
	defer s.Close()
	randomize(s, 0.2)
	ts.NoGrad(func() { m.Eps.MustFill_(ts.FloatScalar(0.05)) })
	x := images(4, m.Data)
	l, err := m.Loss(x)
	if err != nil {
		t.Fatal(err)
	}
	if mom := scalar(t, l.Terms["momentum"]); mom == 0 {
		t.Error("momentum term is exactly 0 with ε > 0")
	}
	l.Total.MustBackward()
	g := values(m.Eps.MustGrad(false))
	for i, v := range g {
		if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			t.Errorf("∂loss/∂ε_%d = %g", i, v)
		}
	}
	// the decoder gets gradient through ∇U as well as through recon
	if dg := maxAbs(values(m.Decoder.FC.W.MustGrad(false))); dg == 0 {
		t.Error("decoder FC has no gradient")
	}
	if ss, _ := m.StepSize(); math.Abs(ss-0.05) > 1e-7 {
		t.Errorf("StepSize = %g", ss)
	}

	f, sf := tinyHVAE(t, false)
	defer sf.Close()
	for _, p := range sf.Parameters() {
		if p == f.Eps {
			t.Error("a fixed step size is a trained parameter")
		}
	}
	if _, ok := sf.Named()["eps_lf"]; !ok {
		t.Error("the fixed step size is not saved with the weights")
	}
}

// LogLikelihood(x, 1) is the normalised Hamiltonian ELBO for the same
// noise, and evaluation leaves no autograd graph behind.
func TestHVAELogLikelihood(t *testing.T) {
	defer begin(t)()
	m, s := tinyHVAE(t, true)
	defer s.Close()
	randomize(s, 0.2)
	ts.NoGrad(func() { m.Eps.MustFill_(ts.FloatScalar(0.05)) })
	m.SetTraining(false)
	x := images(3, m.Data)
	seed(t, 33)
	ll, err := m.LogLikelihood(x, 1)
	if err != nil {
		t.Fatal(err)
	}
	if ll.MustRequiresGrad() {
		t.Error("LogLikelihood returned a tensor in an autograd graph")
	}
	seed(t, 33)
	mu, lv := m.Encoder.Forward(x)
	eps := mu.MustRandnLike(false)
	gamma := mu.MustRandnLike(false)
	recon, kl, mom := m.parts(x, mu, lv, eps, gamma)
	want := values(recon.MustAdd(kl, false).MustAdd(mom, true).MustNeg(true).MustSubScalar(ts.FloatScalar(m.ReconConst()), true))
	for i, v := range values(ll) {
		if !relClose(v, want[i], 1e-5) {
			t.Errorf("example %d: LogLikelihood(x, 1) = %.4f, Hamiltonian ELBO %.4f", i, v, want[i])
		}
	}
	ll5, err := m.LogLikelihood(x, 5)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range values(ll5) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Fatalf("LogLikelihood(x, 5) = %v", values(ll5))
		}
	}
}
