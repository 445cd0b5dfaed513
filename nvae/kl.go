package nvae

import (
	"fmt"
	"math"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// KLWarmup is NVAE's KL coefficient schedule (utils.kl_coeff with
// total_step = kl_anneal_portion·T and constant_step =
// kl_const_portion·T, T the run's steps):
//
//	coeff(step) = max(min((step − ConstSteps)/AnnealSteps, 1), MinCoeff)
//
// The ramp starts at ConstSteps and reaches 1 at ConstSteps+AnnealSteps;
// before that the KL is scaled down so the latents get used before the
// prior pulls them in.
type KLWarmup struct {
	ConstSteps, AnnealSteps, MinCoeff float64
}

// NewKLWarmup is the schedule of c (kl_anneal_portion, kl_const_portion,
// kl_const_coeff) over a run of totalSteps optimizer steps.
func NewKLWarmup(c config.NVAE, totalSteps int) (KLWarmup, error) {
	if err := c.Validate(); err != nil {
		return KLWarmup{}, fmt.Errorf("nvae: KL warm-up: %w", err)
	}
	if totalSteps <= 0 {
		return KLWarmup{}, fmt.Errorf("nvae: KL warm-up needs a positive number of training steps, got %d (set run.steps or run.epochs)", totalSteps)
	}
	T := float64(totalSteps)
	return KLWarmup{ConstSteps: c.KLConstPortion * T, AnnealSteps: c.KLAnnealPortion * T, MinCoeff: c.KLConstCoeff}, nil
}

// Coeff is the coefficient at step (0-based optimizer steps, as NVAE's
// global_step). With AnnealSteps = 0 (no ramp; NVAE divides by zero) it
// is the formula's limit: MinCoeff up to ConstSteps, 1 after.
func (w KLWarmup) Coeff(step int) float64 {
	s := float64(step)
	if w.AnnealSteps == 0 {
		if s > w.ConstSteps {
			return math.Max(1, w.MinCoeff)
		}
		return w.MinCoeff
	}
	return math.Max(math.Min((s-w.ConstSteps)/w.AnnealSteps, 1), w.MinCoeff)
}

// CoeffTensor is Coeff computed on the device from a 0-d step tensor of
// any dtype (a capturable optimizer's step count, read before its Step
// increments it), so a captured step reads no host value; the result is a
// 0-d float32 tensor on step's device.
func (w KLWarmup) CoeffTensor(step *ts.Tensor) *ts.Tensor {
	s := step.MustTotype(gotch.Float, false) // may alias step: only out-of-place ops follow
	if w.AnnealSteps == 0 {
		on := s.MustGt(ts.FloatScalar(w.ConstSteps), false).MustTotype(gotch.Float, true)
		return on.MustClampMin(ts.FloatScalar(w.MinCoeff), true)
	}
	r := s.MustSubScalar(ts.FloatScalar(w.ConstSteps), false).MustDivScalar(ts.FloatScalar(w.AnnealSteps), true)
	return r.MustClampMax(ts.FloatScalar(1), true).MustClampMin(ts.FloatScalar(w.MinCoeff), true)
}

// KLBalanceAlphas are NVAE's group weights α (utils.kl_balancer_coeff
// with fun='square', the one train.py uses) in the order the decoder
// visits the groups, top (coarsest scale) first, which is the order of
// the KL terms. groupsPerScale is NVAE's groups_per_scale: index 0 is the
// finest scale. Scale i from the top gets (2^i)²/groups_i for each of its
// groups, then all are divided by their minimum: larger α lets a group
// keep more KL, so finer scales with fewer groups are not starved.
func KLBalanceAlphas(groupsPerScale []int) ([]float64, error) {
	if len(groupsPerScale) == 0 {
		return nil, fmt.Errorf("nvae: KL balancing needs at least one latent scale")
	}
	for s, g := range groupsPerScale {
		if g <= 0 {
			return nil, fmt.Errorf("nvae: KL balancing: scale %d has %d groups; every scale needs at least one", s, g)
		}
	}
	n := len(groupsPerScale)
	var out []float64
	for i := 0; i < n; i++ {
		g := groupsPerScale[n-i-1]
		a := math.Pow(math.Pow(2, float64(i)), 2) / float64(g)
		for j := 0; j < g; j++ {
			out = append(out, a)
		}
	}
	lo := out[0]
	for _, a := range out {
		lo = math.Min(lo, a)
	}
	for i := range out {
		out[i] /= lo
	}
	return out, nil
}

// BalanceKL is NVAE's kl_balancer with kl_balance=True, as tensor ops so
// that the branch on coeff < 1 happens on the device. klAll is (B, G), the
// KL of each group per example (ts.MustStack(perGroup, 1)); alpha is (G),
// from KLBalanceAlphas; coeff is 0-d (KLWarmup.CoeffTensor). While
// coeff < 1 each group's weight is
//
//	w_g = (k_g/α_g · Σk) / mean_g(k_g/α_g · Σk),  k_g = mean_b |klAll[b,g]| + 0.01,
//
// (mean 1, no gradient), which raises the weight of groups that carry
// more KL so that none collapses during warm-up; from coeff = 1 on every
// w_g is 1. It returns coeff·Σ_g w_g·klAll[:,g], shape (B), and w, shape
// (G), for logging.
func BalanceKL(klAll, alpha, coeff *ts.Tensor) (kl, weights *ts.Tensor) {
	var w *ts.Tensor
	ts.NoGrad(func() {
		k := klAll.MustDetach(false).MustAbs(true).MustMeanDim([]int64{0}, true, klAll.DType(), true).
			MustAddScalar(ts.FloatScalar(0.01), true) // (1, G)
		total := k.MustSum(klAll.DType(), false)
		w = k.MustDiv(alpha.MustUnsqueeze(0, false), true).MustMul(total, true)
		w = w.MustDiv(w.MustMeanDim([]int64{1}, true, klAll.DType(), false), true)
		w = w.MustWhereScalarother(coeff.MustLt(ts.FloatScalar(1), false), ts.FloatScalar(1), true)
	})
	kl = klAll.MustMul(w, false).MustSumDimIntlist([]int64{1}, false, klAll.DType(), true).MustMul(coeff, true)
	return kl, w.MustSqueezeDim(0, true)
}

// KLBalancer holds the α of one model's latent groups on its device.
type KLBalancer struct {
	// Alpha is (G), a buffer so that a captured step reads it in place;
	// it is saved with the weights, which also catches a checkpoint of
	// another group layout.
	Alpha *ts.Tensor
}

// NewKLBalancer registers KLBalanceAlphas(groupsPerScale) as p.alpha.
func NewKLBalancer(p nn.Path, groupsPerScale []int) (b *KLBalancer, err error) {
	alphas, err := KLBalanceAlphas(groupsPerScale)
	if err != nil {
		return nil, err
	}
	defer nn.Recover(&err)
	sc := ts.NewScope()
	defer sc.Close()
	a := ts.MustOfSlice(alphas).MustTotype(gotch.Float, true)
	t, err := p.Buffer("alpha", a)
	if err != nil {
		return nil, err
	}
	return &KLBalancer{Alpha: t}, nil
}

// Balance is BalanceKL with this model's α.
func (b *KLBalancer) Balance(klAll, coeff *ts.Tensor) (kl, weights *ts.Tensor) {
	return BalanceKL(klAll, b.Alpha, coeff)
}
