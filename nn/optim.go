package nn

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/sugarme/gotch/ts"
)

// OptimConfig holds the hyper-parameters of Adam and Adamax, named as in
// torch.optim. Zero Beta1/Beta2/Eps take PyTorch's defaults.
type OptimConfig struct {
	Name        string // "adam" or "adamax"
	LR          float64
	Beta1       float64
	Beta2       float64
	Eps         float64
	WeightDecay float64 // L2, added to the gradient as in torch.optim
	// Capturable keeps the step count and the learning rate in 0-d float32
	// tensors on the parameters' device (torch.optim's capturable), so that
	// Step reads nothing from the host that changes between steps and can
	// be captured in a CUDA graph. See optim_capturable.go.
	Capturable bool
}

// Optimizer is Adam or Adamax whose state (moment buffers and step count)
// lives in tensors it owns, so checkpoints can hold it and a resumed run
// continues bit for bit. The update is the single-tensor algorithm of
// torch.optim, run as multi-tensor kernels (eager) or as tensor ops over
// flat buffers whose scalars live on the device (capturable).
type Optimizer struct {
	cfg    OptimConfig
	names  []string
	params []*ts.Tensor
	m, v   []*ts.Tensor // Adam: exp_avg, exp_avg_sq. Adamax: exp_avg, exp_inf.
	step   int64        // eager only; capturable counts in dev.count
	dev    *deviceState // nil unless cfg.Capturable
}

// NewOptimizer creates the optimizer for the trainable parameters of s.
func NewOptimizer(s *Store, cfg OptimConfig) (o *Optimizer, err error) {
	defer Recover(&err)
	cfg.Name = strings.ToLower(cfg.Name)
	if cfg.Beta1 == 0 {
		cfg.Beta1 = 0.9
	}
	if cfg.Beta2 == 0 {
		cfg.Beta2 = 0.999
	}
	if cfg.Eps == 0 {
		cfg.Eps = 1e-8
	}
	switch {
	case cfg.Name != "adam" && cfg.Name != "adamax":
		return nil, fmt.Errorf("nn: unknown optimizer %q (want adam or adamax)", cfg.Name)
	case !(cfg.LR > 0) || math.IsInf(cfg.LR, 0):
		return nil, fmt.Errorf("nn: learning rate must be positive and finite, got %v", cfg.LR)
	case cfg.Beta1 < 0 || cfg.Beta1 >= 1 || cfg.Beta2 < 0 || cfg.Beta2 >= 1:
		return nil, fmt.Errorf("nn: betas must be in [0, 1), got %v, %v", cfg.Beta1, cfg.Beta2)
	case cfg.Eps < 0 || cfg.WeightDecay < 0:
		return nil, fmt.Errorf("nn: eps and weight decay must be non-negative, got %v, %v", cfg.Eps, cfg.WeightDecay)
	}
	o = &Optimizer{cfg: cfg}
	sc := ts.NewScope()
	defer sc.Close()
	for _, n := range s.names {
		if !s.trained[n] {
			continue
		}
		o.names = append(o.names, n)
		o.params = append(o.params, s.tensors[n])
	}
	if len(o.params) == 0 {
		return nil, fmt.Errorf("nn: the model has no trainable parameters")
	}
	if cfg.Capturable {
		if err := o.newDeviceState(); err != nil {
			return nil, err
		}
		return o, nil
	}
	for _, p := range o.params {
		m, v := p.MustZerosLike(false), p.MustZerosLike(false)
		sc.Detach(m, v)
		o.m = append(o.m, m)
		o.v = append(o.v, v)
	}
	return o, nil
}

// Config returns the optimizer's hyper-parameters.
func (o *Optimizer) Config() OptimConfig { return o.cfg }

// SetLR changes the learning rate (for schedules). A capturable optimizer
// writes it into LRTensor in place, the only place Step reads it from; call
// it before a graph replays, never while one is being captured.
func (o *Optimizer) SetLR(lr float64) {
	o.cfg.LR = lr
	if o.dev != nil {
		o.dev.setLR(lr)
	}
}

// Steps returns the number of updates done. A capturable optimizer reads
// it from StepTensor, which waits for the device.
func (o *Optimizer) Steps() int64 {
	if o.dev != nil {
		return o.dev.steps()
	}
	return o.step
}

// ZeroGrad drops the parameters' grads (set_to_none).
func (o *Optimizer) ZeroGrad() error { return ts.ZeroGradNone(o.params) }

// ClipGradNorm scales the grads so their total 2-norm is at most maxNorm
// (no-op for maxNorm <= 0) and returns the norm before clipping.
func (o *Optimizer) ClipGradNorm(maxNorm float64) (float64, error) {
	return ts.ClipGradNorm(o.params, maxNorm)
}

// Step applies one update from the current grads. Parameters without a
// grad are left alone, their moments too.
func (o *Optimizer) Step() error {
	if o.dev != nil {
		return o.stepOnDevice(nil, 0)
	}
	o.step++
	c := o.cfg
	var err error
	if c.Name == "adamax" {
		err = ts.AdamaxStep(o.params, o.m, o.v, c.LR, c.Beta1, c.Beta2, c.Eps, c.WeightDecay, o.step)
	} else {
		err = ts.AdamStep(o.params, o.m, o.v, c.LR, c.Beta1, c.Beta2, c.Eps, c.WeightDecay, o.step)
	}
	if err != nil {
		o.step--
		return fmt.Errorf("nn: %s step: %w", c.Name, err)
	}
	return nil
}

func (o *Optimizer) bufNames() (string, string) {
	if o.cfg.Name == "adamax" {
		return "exp_avg", "exp_inf"
	}
	return "exp_avg", "exp_avg_sq"
}

// State returns the optimizer's tensors by name (borrowed, not copies) and
// its step count. Eager and capturable optimizers use the same names, so
// either loads the other's checkpoints.
func (o *Optimizer) State() (map[string]*ts.Tensor, int64) {
	a, b := o.bufNames()
	out := map[string]*ts.Tensor{}
	for i, n := range o.names {
		out["optim."+a+"."+n] = o.m[i]
		out["optim."+b+"."+n] = o.v[i]
	}
	return out, o.Steps()
}

// LoadState copies a state taken by State into the optimizer.
func (o *Optimizer) LoadState(state map[string]*ts.Tensor, step int64) (err error) {
	defer Recover(&err)
	if step < 0 {
		return fmt.Errorf("nn: optimizer step count %d is negative", step)
	}
	if o.dev != nil && step > maxDeviceStep {
		return fmt.Errorf("nn: step count %d is beyond %d, the last a float32 step tensor counts exactly; load it into an optimizer without Capturable", step, maxDeviceStep)
	}
	a, b := o.bufNames()
	sc := ts.NewScope()
	defer sc.Close()
	for i, n := range o.names {
		for _, pair := range []struct {
			key string
			dst *ts.Tensor
		}{{"optim." + a + "." + n, o.m[i]}, {"optim." + b + "." + n, o.v[i]}} {
			src, ok := state[pair.key]
			if !ok {
				return fmt.Errorf("nn: optimizer state %q missing from the checkpoint (was it written by another optimizer?)", pair.key)
			}
			if x, y := pair.dst.MustSize(), src.MustSize(); !slices.Equal(x, y) {
				return fmt.Errorf("nn: optimizer state %q has shape %v, want %v", pair.key, y, x)
			}
			pair.dst.Copy_(src.MustTo(pair.dst.MustDevice(), false))
		}
	}
	if o.dev != nil {
		o.dev.count.MustFill_(ts.FloatScalar(float64(step)))
		return nil
	}
	o.step = step
	return nil
}

// Close frees the optimizer's buffers.
func (o *Optimizer) Close() {
	for i := range o.m {
		o.m[i].MustDrop()
		o.v[i].MustDrop()
	}
	o.m, o.v = nil, nil
	if o.dev != nil {
		o.dev.close()
		o.dev = nil
	}
}
