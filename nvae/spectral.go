package nvae

import (
	"fmt"
	"math"
	"slices"

	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// SpectralOptions configure SpectralReg. Zero values mean NVAE's.
type SpectralOptions struct {
	// Lambda is λ, model.nvae.weight_decay_norm: the regulariser's
	// weight in the loss.
	Lambda float64
	// Iters are the power iterations per Loss call (NVAE's
	// num_power_iter, 4 when 0).
	Iters int
	// InitIters run once at construction from the random start (10·Iters
	// when 0, as NVAE's first call), so every Loss call runs the same
	// number of iterations: a captured step has no first-call branch and a
	// resumed run continues from the saved vectors.
	InitIters int
}

func (o SpectralOptions) norm() SpectralOptions {
	if o.Iters == 0 {
		o.Iters = 4
	}
	if o.InitIters == 0 {
		o.InitIters = 10 * o.Iters
	}
	return o
}

// SpectralReg is NVAE's spectral regularisation (model.py
// spectral_norm_parallel and batchnorm_loss): λ·(Σ_convs σ_max(W) +
// Σ_BNs max|γ|). It bounds each layer's Lipschitz constant, which is what
// keeps NVAE's deep hierarchy from diverging. σ_max of each conv weight,
// viewed as (out, in·k·k), is estimated as uᵀWv from singular-vector
// estimates u, v refined by power iteration without gradient; the
// gradient flows through W only. As in NVAE, weights of one matrix shape
// are stacked and iterated as one batch (fewer kernels than one loop per
// conv); u and v are buffers (p.<rows>x<cols>.u and .v, one row per conv
// in the order given) saved with the weights.
type SpectralReg struct {
	Lambda  float64
	Iters   int
	weights []*ts.Tensor // as given, for Loss
	shapes  [][]int64    // of weights, to check LossWith's
	bn      []*ts.Tensor
	convs   []convGroup
	bns     [][]int // indices into bn, one group per channel count
}

// convGroup is the convolutions sharing one matrix shape.
type convGroup struct {
	index      []int // into the weights, in order
	rows, cols int64
	u, v       *ts.Tensor // (n, rows), (n, cols); unit rows
}

// SpectralLoss is one evaluation: Total = λ·(Spectral + BN), each 0-d.
type SpectralLoss struct {
	Total    *ts.Tensor
	Spectral *ts.Tensor // Σ σ_max over the convs, without λ
	BN       *ts.Tensor // Σ max|γ| over the batch norms, without λ
}

// powerEps is F.normalize's eps in NVAE's power iteration: a vector
// shorter than this is divided by it instead of its norm (a zero weight
// stays finite).
const powerEps = 1e-3

// NewSpectralReg registers u and v for the conv weights (any shape
// (out, ...), rank ≥ 2) under p and runs o.InitIters power iterations on
// them; bnWeights are the batch-norm scales γ (rank 1), kept for every
// Loss. A model with weight normalisation passes the normalised weights
// (nvae.ConvWeights) here and to LossWith every step; Loss reuses the
// conv weights given here, so it suits weights that live on (store
// parameters).
func NewSpectralReg(p nn.Path, weights, bnWeights []*ts.Tensor, o SpectralOptions) (r *SpectralReg, err error) {
	defer nn.Recover(&err)
	if math.IsNaN(o.Lambda) || math.IsInf(o.Lambda, 0) || o.Lambda < 0 {
		return nil, fmt.Errorf("nvae: spectral regularisation λ (model.nvae.weight_decay_norm) must be finite and ≥ 0, got %g", o.Lambda)
	}
	if o.Iters < 0 || o.InitIters < 0 {
		return nil, fmt.Errorf("nvae: spectral regularisation needs ≥ 0 power iterations, got %d per step and %d at the start", o.Iters, o.InitIters)
	}
	if len(weights) == 0 && len(bnWeights) == 0 {
		return nil, fmt.Errorf("nvae: spectral regularisation over no conv and no batch-norm weights")
	}
	o = o.norm()
	dev := p.Device()
	for i, w := range weights {
		if err := checkRegWeight(w, fmt.Sprintf("conv weight %d", i), dev); err != nil {
			return nil, err
		}
		if s := w.MustSize(); len(s) < 2 || s[0] == 0 || objNumel(s) == 0 {
			return nil, fmt.Errorf("nvae: conv weight %d has shape %v; spectral regularisation needs (out, in, ...) with no empty dimension", i, s)
		}
	}
	for i, g := range bnWeights {
		if err := checkRegWeight(g, fmt.Sprintf("batch-norm weight %d", i), dev); err != nil {
			return nil, err
		}
		if s := g.MustSize(); len(s) != 1 || s[0] == 0 {
			return nil, fmt.Errorf("nvae: batch-norm weight %d has shape %v; want (C) with C > 0", i, s)
		}
	}
	r = &SpectralReg{Lambda: o.Lambda, Iters: o.Iters, weights: weights, bn: bnWeights}
	for _, w := range weights {
		r.shapes = append(r.shapes, w.MustSize())
	}
	sc := ts.NewScope()
	defer sc.Close()
	byShape := map[[2]int64]int{}
	for i, w := range weights {
		s := w.MustSize()
		key := [2]int64{s[0], objNumel(s) / s[0]}
		g, ok := byShape[key]
		if !ok {
			g = len(r.convs)
			byShape[key] = g
			r.convs = append(r.convs, convGroup{rows: key[0], cols: key[1]})
		}
		r.convs[g].index = append(r.convs[g].index, i)
	}
	for gi := range r.convs {
		g := &r.convs[gi]
		n, dt := int64(len(g.index)), weights[g.index[0]].DType()
		sub := p.Sub(fmt.Sprintf("%dx%d", g.rows, g.cols))
		// NVAE's start: F.normalize(randn) on each row.
		if g.u, err = sub.Buffer("u", normalizeRows(ts.MustRandn([]int64{n, g.rows}, dt, dev))); err != nil {
			return nil, err
		}
		if g.v, err = sub.Buffer("v", normalizeRows(ts.MustRandn([]int64{n, g.cols}, dt, dev))); err != nil {
			return nil, err
		}
	}
	byLen := map[int64]int{}
	for i, g := range bnWeights {
		c := g.MustSize()[0]
		k, ok := byLen[c]
		if !ok {
			k = len(r.bns)
			byLen[c] = k
			r.bns = append(r.bns, nil)
		}
		r.bns[k] = append(r.bns[k], i)
	}
	if err := r.Iterate(weights, o.InitIters); err != nil {
		return nil, err
	}
	return r, nil
}

func checkRegWeight(w *ts.Tensor, what string, dev gotch.Device) error {
	if w == nil {
		return fmt.Errorf("nvae: %s is nil", what)
	}
	d, err := w.Device()
	if err != nil {
		return fmt.Errorf("nvae: %s: %w", what, err)
	}
	if d.CInt() != dev.CInt() { // CPU reads back as {CPU 1}, gotch.CPU is {CPU -1}
		return fmt.Errorf("nvae: %s is on %v, the store on %v", what, d, dev)
	}
	if dt := w.DType(); dt != gotch.Float && dt != gotch.Double && dt != gotch.Half && dt != gotch.BFloat16 {
		return fmt.Errorf("nvae: %s has dtype %v; want a floating-point tensor", what, w.DType())
	}
	return nil
}

func objNumel(s []int64) int64 {
	n := int64(1)
	for _, d := range s {
		n *= d
	}
	return n
}

// normalizeRows is F.normalize(x, dim=1, eps=1e-3): x / max(‖x_row‖, eps).
func normalizeRows(x *ts.Tensor) *ts.Tensor {
	n := x.MustNormScalaroptDim(ts.FloatScalar(2), []int64{1}, true, false).MustClampMin(ts.FloatScalar(powerEps), true)
	return x.MustDiv(n, false)
}

// checkWeights reports a weight list that does not match the one given
// at construction (count and shapes), which would mix up u and v.
func (r *SpectralReg) checkWeights(weights []*ts.Tensor) error {
	if len(weights) != len(r.shapes) {
		return fmt.Errorf("nvae: spectral regularisation got %d conv weights, was built for %d", len(weights), len(r.shapes))
	}
	for i, w := range weights {
		if w == nil {
			return fmt.Errorf("nvae: conv weight %d is nil", i)
		}
		if a, b := w.MustSize(), r.shapes[i]; !slices.Equal(a, b) {
			return fmt.Errorf("nvae: conv weight %d has shape %v, was built for %v", i, a, b)
		}
	}
	return nil
}

// stack is the group's weights as one (n, rows, cols) tensor with their
// gradient.
func (g *convGroup) stack(weights []*ts.Tensor) *ts.Tensor {
	mats := make([]*ts.Tensor, len(g.index))
	for j, i := range g.index {
		mats[j] = weights[i].MustReshape([]int64{g.rows, g.cols}, false)
	}
	return ts.MustStack(mats, 0)
}

// iterate runs n power iterations on the detached stack w and writes u
// and v in place (the buffers keep their storage, as a captured step
// needs). Order as NVAE: v ← normalize(uᵀW), then u ← normalize(Wv).
func (g *convGroup) iterate(w *ts.Tensor, n int) {
	if n == 0 {
		return
	}
	ts.NoGrad(func() {
		sc := ts.NewScope()
		defer sc.Close()
		wd := w.MustDetach(false)
		u, v := g.u, g.v
		for j := 0; j < n; j++ {
			v = normalizeRows(u.MustUnsqueeze(1, false).MustBmm(wd, true).MustSqueezeDim(1, true))
			u = normalizeRows(wd.MustBmm(v.MustUnsqueeze(2, false), false).MustSqueezeDim(2, true))
		}
		g.v.Copy_(v)
		g.u.Copy_(u)
	})
}

// sigmas is uᵀWv per conv of the group, (n), differentiable in w.
func (g *convGroup) sigmas(w *ts.Tensor) *ts.Tensor {
	wv := w.MustBmm(g.v.MustUnsqueeze(2, false), false)
	return g.u.MustUnsqueeze(1, false).MustBmm(wv, true).MustReshape([]int64{-1}, true)
}

// Iterate runs n power iterations on weights (the list given at
// construction, or its weight-normalised form), for instance to settle u
// and v again after loading weights from elsewhere.
func (r *SpectralReg) Iterate(weights []*ts.Tensor, n int) (err error) {
	defer nn.Recover(&err)
	if err := r.checkWeights(weights); err != nil {
		return err
	}
	if n < 0 {
		return fmt.Errorf("nvae: %d power iterations; want ≥ 0", n)
	}
	sc := ts.NewScope()
	defer sc.Close()
	for gi := range r.convs {
		g := &r.convs[gi]
		var w *ts.Tensor
		ts.NoGrad(func() { w = g.stack(weights) })
		g.iterate(w, n)
	}
	return nil
}

// Loss is LossWith on the conv weights given at construction.
func (r *SpectralReg) Loss() (SpectralLoss, error) { return r.LossWith(r.weights) }

// LossWith runs r.Iters power iterations on weights (same count and
// shapes as at construction; weight-normalised convs pass their
// normalised weights) and returns the regulariser. It reads nothing on
// the host, so it can be captured in a CUDA graph.
func (r *SpectralReg) LossWith(weights []*ts.Tensor) (l SpectralLoss, err error) {
	defer nn.Recover(&err)
	if err := r.checkWeights(weights); err != nil {
		return SpectralLoss{}, err
	}
	sc := ts.NewScope()
	defer sc.Close()
	var spectral, bn *ts.Tensor
	for gi := range r.convs {
		g := &r.convs[gi]
		w := g.stack(weights)
		g.iterate(w, r.Iters)
		spectral = objAddTerm(spectral, g.sigmas(w).MustSum(w.DType(), true))
	}
	for _, idx := range r.bns {
		gs := make([]*ts.Tensor, len(idx))
		for j, i := range idx {
			gs[j] = r.bn[i]
		}
		m := ts.MustStack(gs, 0).MustAbs(true).MustAmax([]int64{1}, false, true) // max|γ| per BN
		bn = objAddTerm(bn, m.MustSum(m.DType(), true))
	}
	if spectral == nil { // no convs
		ref := r.bn[0]
		dev, err := ref.Device()
		if err != nil {
			return SpectralLoss{}, err
		}
		spectral = ts.MustZeros([]int64{1}, ref.DType(), dev).MustSqueeze(true)
	}
	if bn == nil {
		bn = spectral.MustZerosLike(false)
	}
	total := spectral.MustAdd(bn, false).MustMulScalar(ts.FloatScalar(r.Lambda), true)
	sc.Keep(total, spectral, bn)
	return SpectralLoss{Total: total, Spectral: spectral, BN: bn}, nil
}

func objAddTerm(acc, t *ts.Tensor) *ts.Tensor {
	if acc == nil {
		return t
	}
	return acc.MustAdd(t, true)
}

// Sigmas are the current estimates uᵀWv of σ_max for weights, (len), in
// the order given, without iterating (for logging and tests).
func (r *SpectralReg) Sigmas(weights []*ts.Tensor) (s *ts.Tensor, err error) {
	defer nn.Recover(&err)
	if err := r.checkWeights(weights); err != nil {
		return nil, err
	}
	if len(weights) == 0 {
		return nil, fmt.Errorf("nvae: spectral regularisation has no conv weights")
	}
	sc := ts.NewScope()
	defer sc.Close()
	parts := make([]*ts.Tensor, len(weights))
	for gi := range r.convs {
		g := &r.convs[gi]
		sg := g.sigmas(g.stack(weights))
		for j, i := range g.index {
			parts[i] = sg.MustSelect(0, int64(j), false)
		}
	}
	s = ts.MustStack(parts, 0)
	sc.Keep(s)
	return s, nil
}
