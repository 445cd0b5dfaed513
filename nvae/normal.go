package nvae

import (
	"fmt"
	"math"
	"slices"

	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch/ts"
)

// sigmaFloor is NVAE's 1e-2 added to exp(log σ): with the soft clamp it
// keeps σ ≥ exp(−5)+0.01, so log p and the KL stay finite early in
// training when the encoder's outputs are large.
const sigmaFloor = 1e-2

// SoftClamp5 is NVAE's differentiable clamp 5·tanh(x/5): the identity
// near 0, bounded in (−5, 5), so a large encoder output cannot blow up
// exp(log σ) or the KL.
func SoftClamp5(x *ts.Tensor) *ts.Tensor {
	return x.MustDivScalar(ts.FloatScalar(5), false).MustTanh(true).MustMulScalar(ts.FloatScalar(5), true)
}

// Normal is NVAE's diagonal Gaussian (distributions.Normal): Mu is the
// soft-clamped mean and Sigma = (exp(SoftClamp5(log σ)) + 1e-2)·temp.
// Both are tensors of the caller's scope; every method is elementwise.
type Normal struct {
	Mu, Sigma *ts.Tensor
}

// NewNormal builds N(SoftClamp5(mu), exp(SoftClamp5(logSigma))+1e-2)
// with σ multiplied by temp (sampling temperature; 1 in training). mu and
// logSigma are the raw network outputs and must have the same shape.
func NewNormal(mu, logSigma *ts.Tensor, temp float64) (n Normal, err error) {
	defer nn.Recover(&err)
	if err := checkNormalArgs("NewNormal", temp, mu, logSigma); err != nil {
		return Normal{}, err
	}
	return newNormal(mu, logSigma, temp), nil
}

func newNormal(mu, logSigma *ts.Tensor, temp float64) Normal {
	sigma := SoftClamp5(logSigma).MustExp(true).MustAddScalar(ts.FloatScalar(sigmaFloor), true)
	if temp != 1 { // as NVAE: skip the product at temperature 1
		sigma = sigma.MustMulScalar(ts.FloatScalar(temp), true)
	}
	return Normal{Mu: SoftClamp5(mu), Sigma: sigma}
}

// NewResidualNormal is NVAE's residual posterior q(z_l | z_<l, x): the
// prior's raw parameters plus the encoder's residual, clamped after the
// sum, N(SoftClamp5(μp+Δμ), exp(SoftClamp5(log σp+Δlog σ))+1e-2). Away
// from the clamp this is the paper's N(μp+Δμ, σp·Δσ); the sum is taken
// before the clamp because that is what NVAE trains (model.py).
func NewResidualNormal(muP, logSigmaP, dMu, dLogSigma *ts.Tensor, temp float64) (n Normal, err error) {
	defer nn.Recover(&err)
	if err := checkNormalArgs("NewResidualNormal", temp, muP, logSigmaP, dMu, dLogSigma); err != nil {
		return Normal{}, err
	}
	sc := ts.NewScope()
	defer sc.Close()
	n = newNormal(muP.MustAdd(dMu, false), logSigmaP.MustAdd(dLogSigma, false), temp)
	sc.Keep(n.Mu, n.Sigma)
	return n, nil
}

func checkNormalArgs(what string, temp float64, xs ...*ts.Tensor) error {
	if !(temp > 0) || math.IsInf(temp, 1) {
		return fmt.Errorf("nvae: %s: temperature must be positive and finite, got %g", what, temp)
	}
	for i, t := range xs {
		if t == nil {
			return fmt.Errorf("nvae: %s: parameter %d is nil", what, i)
		}
	}
	shape := xs[0].MustSize()
	for i, t := range xs[1:] {
		if s := t.MustSize(); !slices.Equal(s, shape) {
			return fmt.Errorf("nvae: %s: parameter %d has shape %v, parameter 0 has %v; all must match", what, i+1, s, shape)
		}
	}
	return nil
}

// Sample draws z = μ + σ·ε with ε ~ N(0, I) from libtorch's generator and
// returns both (ε for reparameterised replays and tests). Inside a
// data-parallel training step ε is keyed per global row
// (nn.RandnRowsLike); elsewhere it is MustRandnLike's draw.
func (n Normal) Sample() (z, eps *ts.Tensor) {
	eps = nn.RandnRowsLike(n.Mu)
	return n.SampleWith(eps), eps
}

// SampleWith is μ + σ·ε for given noise.
func (n Normal) SampleWith(eps *ts.Tensor) *ts.Tensor {
	return eps.MustMul(n.Sigma, false).MustAdd(n.Mu, true)
}

// LogP is the elementwise log density −½((z−μ)/σ)² − ½log 2π − log σ in
// nats; sum it over the latent dimensions.
func (n Normal) LogP(z *ts.Tensor) *ts.Tensor {
	u := z.MustSub(n.Mu, false).MustDiv(n.Sigma, true)
	lp := u.MustSquare(true).MustMulScalar(ts.FloatScalar(-0.5), true).
		MustSubScalar(ts.FloatScalar(0.5*math.Log(2*math.Pi)), true)
	return lp.MustSub(n.Sigma.MustLog(false), true)
}

// KL is the elementwise analytic KL(n ‖ p) in nats, written as NVAE does
// with t1 = (μ−μp)/σp and t2 = σ/σp: ½(t1²+t2²) − ½ − log t2.
func (n Normal) KL(p Normal) *ts.Tensor {
	t1 := n.Mu.MustSub(p.Mu, false).MustDiv(p.Sigma, true)
	t2 := n.Sigma.MustDiv(p.Sigma, false)
	sq := t1.MustSquare(true).MustAdd(t2.MustSquare(false), true).MustMulScalar(ts.FloatScalar(0.5), true)
	return sq.MustSubScalar(ts.FloatScalar(0.5), true).MustSub(t2.MustLog(true), true)
}
