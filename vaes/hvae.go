package vaes

import (
	"fmt"
	"math"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch/ts"
)

// HVAE is the Hamiltonian VAE (Caterini et al. 2018, Algorithm 1 with
// fixed tempering). With z0 ~ q(z0|x), γ0 ~ N(0, I) and ρ0 = γ0/√β0, K
// leapfrog steps of H(z, ρ) = U(z) + ½|ρ|², U(z) = −log p(x, z), each
// followed by tempering ρ ← (√β_{k−1}/√β_k)·ρ with
// √β_k = 1/((1 − 1/√β0)·k²/K² + 1/√β0), give (zK, ρK). The leapfrog is
// volume preserving and tempering scales ρ by √β0 in total, so
//
//	ELBO = log p(x, zK) + log N(ρK; 0, I) − log q(z0|x) − log N(γ0; 0, I).
//
// Unlike pythae, the position update uses the half-step momentum and the
// tempered momentum is the one carried forward. ∇U goes through the
// decoder with create_graph, so the ELBO is differentiable in θ, φ and ε.
type HVAE struct {
	*Base
	// Eps is ε (latent): a parameter when learned, else a buffer.
	Eps *ts.Tensor
}

// NewHVAE registers an HVAE with the settings c (the flow: c.HVAE) for the
// images d describes under p (ε as p.eps_lf).
func NewHVAE(p nn.Path, c config.VAE, d config.Data) (m *HVAE, err error) {
	b, err := newBase(p, c, config.ModelHVAE, d)
	if err != nil {
		return nil, err
	}
	defer nn.Recover(&err)
	sc := ts.NewScope()
	defer sc.Close()
	hc := c.HVAE
	init := nn.Ones([]int64{int64(c.Latent)}, p.Device()).MustMulScalar(ts.FloatScalar(hc.StepSize), true)
	m = &HVAE{Base: b}
	if hc.LearnStepSize {
		m.Eps, err = p.Param("eps_lf", init)
	} else {
		m.Eps, err = p.Buffer("eps_lf", init)
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}

// TemperingScales are the momentum factors √β_{k−1}/√β_k applied after
// leapfrog steps k = 1…K; their product is √β0.
func TemperingScales(betaZero float64, steps int) []float64 {
	sq := func(k int) float64 {
		r := float64(k) / float64(steps)
		return 1 / ((1-1/math.Sqrt(betaZero))*r*r + 1/math.Sqrt(betaZero))
	}
	out := make([]float64, steps)
	for k := 1; k <= steps; k++ {
		out[k-1] = sq(k-1) / sq(k)
	}
	return out
}

// Leapfrog runs len(scales) leapfrog steps of H(z, ρ) = U(z) + ½|ρ|² with
// per-dimension step eps, multiplying ρ by scales[k] after step k (1: no
// tempering):
//
//	ρ½ = ρ − ε/2 ⊙ ∇U(z);  z' = z + ε ⊙ ρ½;  ρ' = ρ½ − ε/2 ⊙ ∇U(z')
//
// gradU is called len(scales)+1 times, once per distinct position.
func Leapfrog(z, rho, eps *ts.Tensor, scales []float64, gradU func(z *ts.Tensor) *ts.Tensor) (*ts.Tensor, *ts.Tensor) {
	half := eps.MustMulScalar(ts.FloatScalar(0.5), false)
	g := gradU(z)
	for _, s := range scales { // del=false throughout: z and rho start as the caller's
		rho = rho.MustSub(half.MustMul(g, false), false)
		z = z.MustAdd(eps.MustMul(rho, false), false)
		g = gradU(z)
		rho = rho.MustSub(half.MustMul(g, false), false)
		if s != 1 {
			rho = rho.MustMulScalar(ts.FloatScalar(s), false)
		}
	}
	return z, rho
}

// potential returns −log p(x|z) without constant (N) and ∇U(z) for
// U(z) = −log p(x|z) − log p(z), summed over the batch (examples are
// independent, up to batch-norm statistics in training mode). When z is
// part of an autograd graph the gradient is built with create_graph, so it
// can be differentiated again; otherwise (evaluation) it is computed on a
// detached copy and returned detached.
func (m *HVAE) potential(z, x *ts.Tensor) (recon, grad *ts.Tensor) {
	if ts.GradEnabled() && z.MustRequiresGrad() {
		recon = m.reconNLL(m.Decoder.Forward(z), x)
		u := recon.MustSub(logPrior(z), false).MustSum(recon.DType(), true)
		g, err := ts.RunBackward([]*ts.Tensor{u}, []*ts.Tensor{z}, true, true)
		if err != nil {
			panic(fmt.Errorf("vaes: HVAE potential gradient: %w", err))
		}
		return recon, g[0]
	}
	prev := ts.MustGradSetEnabled(true)
	defer ts.MustGradSetEnabled(prev)
	zl := z.MustDetach(false)
	zl.MustRequiresGrad_(true)
	r := m.reconNLL(m.Decoder.Forward(zl), x)
	u := r.MustSub(logPrior(zl), false).MustSum(r.DType(), true)
	g, err := ts.RunBackward([]*ts.Tensor{u}, []*ts.Tensor{zl}, false, false)
	if err != nil {
		panic(fmt.Errorf("vaes: HVAE potential gradient: %w", err))
	}
	return r.MustDetach(false), g[0].MustDetach(false)
}

// Loss is the negative Hamiltonian ELBO with terms recon (−log p(x|zK)
// without constant), kl (log q(z0|x) − log p(zK)) and momentum
// (½|ρK|² − ½|γ0|²); Total = recon + kl + momentum.
func (m *HVAE) Loss(x *ts.Tensor) (l nn.Loss, err error) {
	if err := checkImages(m.Data, x); err != nil {
		return nn.Loss{}, err
	}
	defer nn.Recover(&err)
	mu, logvar := m.Encoder.Forward(x)
	return m.loss(x, mu, logvar, nn.RandnRowsLike(mu), nn.RandnRowsLike(mu)), nil
}

func (m *HVAE) loss(x, mu, logvar, eps, gamma *ts.Tensor) nn.Loss {
	recon, kl, mom := m.parts(x, mu, logvar, eps, gamma)
	return nn.Loss{
		Total: mean(recon.MustAdd(kl, false).MustAdd(mom, true)),
		Terms: map[string]*ts.Tensor{"recon": mean(recon), "kl": mean(kl), "momentum": mean(mom)},
	}
}

// parts runs the flow from z0 = μ + σ·eps, ρ0 = gamma/√β0.
func (m *HVAE) parts(x, mu, logvar, eps, gamma *ts.Tensor) (recon, kl, mom *ts.Tensor) {
	z0 := reparameterize(mu, logvar, eps)
	h := m.Config.HVAE
	rho0 := gamma.MustMulScalar(ts.FloatScalar(1/math.Sqrt(h.BetaZero)), false)
	zK, rhoK := Leapfrog(z0, rho0, m.Eps, TemperingScales(h.BetaZero, h.LeapfrogSteps), func(z *ts.Tensor) *ts.Tensor {
		r, g := m.potential(z, x)
		recon = r // the last call is at zK
		return g
	})
	kl = logQ(eps, logvar).MustSub(logPrior(zK), true)
	mom = logPrior(gamma).MustSub(logPrior(rhoK), true)
	return recon, kl, mom
}

// LogLikelihood is log (1/K) Σ_k p̄(x, zK, ρK)/q̄(z0, γ0|x) per example in
// nats, normalised (it includes ReconConst); K = 1 is the Hamiltonian
// ELBO. The momentum marginalises out, so this estimates log p(x).
func (m *HVAE) LogLikelihood(x *ts.Tensor, k int) (*ts.Tensor, error) {
	return m.logLikelihood(x, k, func(x, mu, logvar *ts.Tensor) *ts.Tensor {
		recon, kl, mom := m.parts(x, mu, logvar, mu.MustRandnLike(false), mu.MustRandnLike(false))
		return recon.MustAdd(kl, false).MustAdd(mom, true).MustNeg(true).MustSubScalar(ts.FloatScalar(m.ReconConst()), true)
	})
}

// StepSize is the mean leapfrog step size, for monitoring.
func (m *HVAE) StepSize() (float64, error) {
	sc := ts.NewScope()
	defer sc.Close()
	return m.Eps.MustMean(m.Eps.DType(), false).Float64()
}
