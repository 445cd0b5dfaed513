package nn

// The capturable optimizer and the device-side helpers of a captured
// training step (gradient norm, clipping, the per-step summary).
//
// A CUDA graph replays the kernels recorded while Step ran once, with their
// scalar arguments frozen. So here everything that changes between steps
// (the step count, the learning rate, the clipping norm) is read from a
// device tensor, never from a Go value or a host read; the Go values that
// do reach kernels (betas, eps, weight decay, max norm, buffer offsets) are
// fixed for the optimizer's life. libtorch's _foreach ops are not in the
// gotch API, so instead of a loop of per-parameter ops the moments live in
// one flat buffer per kind (the per-parameter tensors of State are views of
// it) and the grads of a run of parameters are concatenated: the update is
// about fifteen kernels plus one add per parameter.

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// maxDeviceStep is the last step count a float32 tensor holds exactly.
const maxDeviceStep = 1 << 24

// deviceState is what a capturable optimizer keeps on the device.
type deviceState struct {
	count, lr *ts.Tensor // 0-d float32: step count, learning rate
	m, v      *ts.Tensor // flat moment buffers; Optimizer.m/v are views
	offset    []int64    // where parameter i starts in m and v
	numel     []int64
}

func (o *Optimizer) newDeviceState() (err error) {
	defer Recover(&err)
	sc := ts.NewScope()
	defer sc.Close()
	p0 := o.params[0]
	dev, dtype := p0.MustDevice(), p0.DType()
	d := &deviceState{}
	var total int64
	for i, p := range o.params {
		if p.DType() != dtype || p.MustDevice() != dev {
			return fmt.Errorf("nn: a capturable optimizer needs every parameter on one device with one dtype: %s is %v on %v, %s is %v on %v",
				o.names[0], dtype, dev, o.names[i], p.DType(), p.MustDevice())
		}
		n := numel(p.MustSize())
		d.offset = append(d.offset, total)
		d.numel = append(d.numel, n)
		total += n
	}
	d.m = ts.MustZeros([]int64{total}, dtype, dev)
	d.v = ts.MustZeros([]int64{total}, dtype, dev)
	// gotch cannot pass an empty shape (0-d) to Zeros, Full, View or
	// Reshape: scalar_tensor, view_as and squeeze instead.
	d.count = ts.MustScalarTensor(ts.FloatScalar(0), gotch.Float, dev)
	d.lr = ts.MustScalarTensor(ts.FloatScalar(o.cfg.LR), gotch.Float, dev)
	sc.Detach(d.m, d.v, d.count, d.lr)
	for i, p := range o.params {
		m := d.m.MustNarrow(0, d.offset[i], d.numel[i], false).MustViewAs(p, false)
		v := d.v.MustNarrow(0, d.offset[i], d.numel[i], false).MustViewAs(p, false)
		sc.Detach(m, v)
		o.m = append(o.m, m)
		o.v = append(o.v, v)
	}
	o.dev = d
	return nil
}

func (d *deviceState) setLR(lr float64) {
	sc := ts.NewScope()
	defer sc.Close()
	d.lr.MustFill_(ts.FloatScalar(lr))
}

func (d *deviceState) steps() int64 {
	v, err := d.count.Float64()
	if err != nil {
		panic(fmt.Errorf("nn: reading the step tensor: %w", err))
	}
	return int64(v)
}

func (d *deviceState) close() {
	for _, t := range []*ts.Tensor{d.count, d.lr, d.m, d.v} {
		t.MustDrop()
	}
}

// Capturable reports whether the optimizer keeps its step count and
// learning rate on the device (OptimConfig.Capturable).
func (o *Optimizer) Capturable() bool { return o.dev != nil }

// LRTensor is the 0-d float32 tensor on the parameters' device that a
// capturable Step reads the learning rate from (nil when not capturable).
// Write it in place (SetLR, or Copy_ from a device schedule) before each
// step or replay; Step never reads OptimConfig.LR.
func (o *Optimizer) LRTensor() *ts.Tensor {
	if o.dev == nil {
		return nil
	}
	return o.dev.lr
}

// StepTensor is the 0-d float32 step count of a capturable optimizer (nil
// when not capturable). Step increments it in place and derives the bias
// corrections from it; counts stay exact up to 2^24 steps.
func (o *Optimizer) StepTensor() *ts.Tensor {
	if o.dev == nil {
		return nil
	}
	return o.dev.count
}

// grads returns the defined grads of the parameters, with their indices.
func (o *Optimizer) grads() (idx []int, gs []*ts.Tensor) {
	for i, p := range o.params {
		if g := p.MustGrad(false); g.MustDefined() {
			idx = append(idx, i)
			gs = append(gs, g)
		}
	}
	return idx, gs
}

func flatCat(xs []*ts.Tensor) *ts.Tensor {
	flat := make([]*ts.Tensor, len(xs))
	for i, x := range xs {
		flat[i] = x.MustReshape([]int64{-1}, false)
	}
	return ts.MustCat(flat, 0)
}

// GradNorm returns the total 2-norm of the parameters' grads (those that
// have one; 0 when none do) as a 0-d tensor on their device, with no host
// read. The grads are taken as one vector, as torch.nn.utils.clip_grad_norm_
// does; the float result may differ from ClipGradNorm's in the last bits.
func (o *Optimizer) GradNorm() (norm *ts.Tensor, err error) {
	defer Recover(&err)
	sc := ts.NewScope()
	defer sc.Close()
	ts.NoGrad(func() {
		_, gs := o.grads()
		if len(gs) == 0 {
			norm = ts.MustScalarTensor(ts.FloatScalar(0), o.params[0].DType(), o.params[0].MustDevice())
			return
		}
		norm = flatCat(gs).MustNorm(false)
	})
	sc.Keep(norm)
	return norm, nil
}

// clipCoef is torch.nn.utils.clip_grad_norm_'s factor,
// min(1, maxNorm/(norm+1e-6)), in the same ops: a float32 0-d tensor.
func clipCoef(norm *ts.Tensor, maxNorm float64) *ts.Tensor {
	c := norm.MustAddScalar(ts.FloatScalar(1e-6), false)
	c.MustReciprocal_()
	c.MustMulScalar_(ts.FloatScalar(maxNorm))
	c.MustClampMax_(ts.FloatScalar(1))
	return c
}

// ClipGrads scales the grads in place by min(1, maxNorm/(norm+1e-6)),
// norm being a 0-d device tensor (GradNorm's), with no host read. A
// non-positive maxNorm leaves them alone. Unlike ClipGradNorm it applies
// the factor whatever the norm, as torch does: a non-finite norm makes the
// grads zero or NaN, so skip the step then (StepSummary's flag).
func (o *Optimizer) ClipGrads(norm *ts.Tensor, maxNorm float64) (err error) {
	defer Recover(&err)
	if maxNorm <= 0 {
		return nil
	}
	sc := ts.NewScope()
	defer sc.Close()
	ts.NoGrad(func() {
		c := clipCoef(norm, maxNorm)
		_, gs := o.grads()
		for _, g := range gs {
			g.MustMul_(c)
		}
	})
	return nil
}

// ClipGradNormTensor is ClipGradNorm without a host read: GradNorm, then
// ClipGrads. It returns the norm before clipping, a 0-d device tensor.
func (o *Optimizer) ClipGradNormTensor(maxNorm float64) (*ts.Tensor, error) {
	norm, err := o.GradNorm()
	if err != nil {
		return nil, err
	}
	return norm, o.ClipGrads(norm, maxNorm)
}

// StepClipped is ClipGrads(norm, maxNorm) followed by Step, with the same
// result. A capturable optimizer scales its flat copy of the grads instead
// of each grad in place, one kernel instead of one per parameter; the
// parameters' grads are then left unscaled.
func (o *Optimizer) StepClipped(norm *ts.Tensor, maxNorm float64) error {
	if o.dev != nil {
		return o.stepOnDevice(norm, maxNorm)
	}
	if err := o.ClipGrads(norm, maxNorm); err != nil {
		return err
	}
	return o.Step()
}

// stepOnDevice is the capturable Step: torch.optim's single-tensor Adam or
// Adamax (capturable=False arithmetic, the same maths as capturable=True)
// with the step count and learning rate read from device tensors. The
// scalar chain runs in float64 like torch.optim's host arithmetic; the
// element-wise ops are those of torch.optim 1.13, in its order.
func (o *Optimizer) stepOnDevice(norm *ts.Tensor, maxNorm float64) (err error) {
	defer Recover(&err)
	sc := ts.NewScope()
	defer sc.Close()
	c, d := o.cfg, o.dev
	f := ts.FloatScalar
	ts.NoGrad(func() {
		idx, gs := o.grads()
		d.count.MustAddScalar_(f(1))
		if len(gs) == 0 {
			return
		}
		t := d.count.MustTotype(gotch.Double, false)
		// -lr / (1 - beta1^t): step_size of Adam, clr of Adamax, negated.
		bc1 := ts.MustPowScalar(f(c.Beta1), t).MustRsubScalar(f(1), false)
		negLR := d.lr.MustTotype(gotch.Double, false).MustDiv(bc1, false).MustNeg(false)
		var bc2Sqrt *ts.Tensor
		if c.Name == "adam" {
			bc2Sqrt = ts.MustPowScalar(f(c.Beta2), t).MustRsubScalar(f(1), false).MustSqrt(false)
		}
		var coef *ts.Tensor
		if norm != nil && maxNorm > 0 {
			coef = clipCoef(norm, maxNorm)
		}
		// Runs of consecutive parameters with grads: their moments are one
		// slice of the flat buffers.
		for lo := 0; lo < len(idx); {
			hi := lo + 1
			for hi < len(idx) && idx[hi] == idx[hi-1]+1 {
				hi++
			}
			o.updateRun(idx[lo:hi], gs[lo:hi], coef, negLR, bc2Sqrt)
			lo = hi
		}
	})
	return nil
}

// updateRun updates the consecutive parameters idx from their grads gs.
func (o *Optimizer) updateRun(idx []int, gs []*ts.Tensor, coef, negLR, bc2Sqrt *ts.Tensor) {
	sc := ts.NewScope()
	defer sc.Close()
	c, d := o.cfg, o.dev
	f := ts.FloatScalar
	first, last := idx[0], idx[len(idx)-1]
	start := d.offset[first]
	n := d.offset[last] + d.numel[last] - start
	g := flatCat(gs)
	if coef != nil {
		g.MustMul_(coef)
	}
	if c.WeightDecay != 0 { // grad + weight_decay * param
		p := flatCat(o.params[first : last+1])
		p.MustMulScalar_(f(c.WeightDecay))
		p.MustAdd_(g)
		g = p
	}
	m := d.m.MustNarrow(0, start, n, false)
	m.MustMulScalar_(f(c.Beta1))
	m.MustAdd_(g.MustMulScalar(f(1-c.Beta1), false))
	b := d.v.MustNarrow(0, start, n, false)
	b.MustMulScalar_(f(c.Beta2))
	var denom *ts.Tensor
	if c.Name == "adam" {
		g2 := g.MustMulScalar(f(1-c.Beta2), false)
		g2.MustMul_(g)
		b.MustAdd_(g2) // exp_avg_sq.mul_(beta2).addcmul_(g, g, 1-beta2)
		denom = b.MustSqrt(false)
		denom.MustDiv_(bc2Sqrt)
		denom.MustAddScalar_(f(c.Eps))
	} else {
		a := g.MustAbs(false)
		a.MustAddScalar_(f(c.Eps))
		b.MustMaximumOut(b, a, false) // exp_inf = max(beta2*exp_inf, |g|+eps), NaN-propagating
		denom = b
	}
	upd := m.MustMul(negLR, false) // param.addcdiv_(exp_avg, denom, value=-step_size)
	upd.MustDiv_(denom)
	for _, i := range idx {
		p := o.params[i]
		p.MustAdd_(upd.MustNarrow(0, d.offset[i]-start, d.numel[i], false).MustViewAs(p, false))
	}
}

// StepSummary packs a training step's scalars into one float64 tensor on
// loss's device, so the trainer reads them all with one host read
// (ReadStepSummary): [loss, norm, finite, terms...], where finite is 1 when
// loss and norm are both finite and 0 otherwise. A nil norm (no clipping)
// is stored as NaN and left out of finite. Every input must have one
// element and live on loss's device. Nothing is read on the host, so it can
// be captured.
func StepSummary(loss, norm *ts.Tensor, terms ...*ts.Tensor) (s *ts.Tensor, err error) {
	defer Recover(&err)
	if loss == nil {
		return nil, fmt.Errorf("nn: StepSummary needs the loss")
	}
	dev := loss.MustDevice()
	check := func(what string, t *ts.Tensor) error {
		if t.Numel() != 1 {
			return fmt.Errorf("nn: StepSummary: %s has %d elements, want 1", what, t.Numel())
		}
		if d := t.MustDevice(); d != dev {
			return fmt.Errorf("nn: StepSummary: %s is on %v, the loss on %v", what, d, dev)
		}
		return nil
	}
	if err := check("the loss", loss); err != nil {
		return nil, err
	}
	if norm != nil {
		if err := check("the norm", norm); err != nil {
			return nil, err
		}
	}
	for i, t := range terms {
		if t == nil {
			return nil, fmt.Errorf("nn: StepSummary: term %d is nil", i)
		}
		if err := check(fmt.Sprintf("term %d", i), t); err != nil {
			return nil, err
		}
	}
	sc := ts.NewScope()
	defer sc.Close()
	ts.NoGrad(func() {
		scalar := func(t *ts.Tensor) *ts.Tensor { // [1] float64
			return t.MustReshape([]int64{1}, false).MustTotype(gotch.Double, false)
		}
		finite := loss.MustIsfinite(false)
		var n *ts.Tensor
		if norm != nil {
			n = scalar(norm)
			finite = finite.MustLogicalAnd(norm.MustIsfinite(false), false)
		} else {
			n = ts.MustFull([]int64{1}, ts.FloatScalar(math.NaN()), gotch.Double, dev)
		}
		vals := []*ts.Tensor{scalar(loss), n, scalar(finite)}
		for _, t := range terms {
			vals = append(vals, scalar(t))
		}
		s = ts.MustCat(vals, 0)
	})
	sc.Keep(s)
	return s, nil
}

// StepValues is a StepSummary read back on the host.
type StepValues struct {
	Loss, GradNorm float64 // GradNorm is NaN when no norm was given
	Finite         bool    // loss and norm finite: the update may be applied
	Terms          []float64
}

// ReadStepSummary copies a StepSummary tensor to the host: the step's one
// host read, which waits for the device.
func ReadStepSummary(s *ts.Tensor) (v StepValues, err error) {
	defer Recover(&err)
	if s == nil || s.DType() != gotch.Double || len(s.MustSize()) != 1 || s.Numel() < 3 {
		return v, fmt.Errorf("nn: not a StepSummary tensor (want float64 [loss, norm, finite, terms...])")
	}
	x := s.Float64Values()
	v = StepValues{Loss: x[0], GradNorm: x[1], Finite: x[2] == 1}
	if len(x) > 3 {
		v.Terms = x[3:]
	}
	return v, nil
}
