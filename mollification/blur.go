package mollification

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// BlurOptions configures NewBlur.
type BlurOptions struct {
	Height, Width int // image size the blur is built for
	// SigmaMax is σ_B at the start of the phase, in pixels; 0 means half
	// the image width (appendix B). SigmaMin is σ_B at its end; 0 means 0.5.
	SigmaMax, SigmaMin float64
	Steps              int          // length of the mollification phase
	Device             gotch.Device // where the batches live; zero value: CPU
	DType              gotch.DType  // of the cached matrices; 0 means float32
}

// Blur is the heat-equation (blurring) mollifier of appendix B for NCHW
// batches of one image size. It caches the DCT matrices and squared
// frequencies on the device.
type Blur struct {
	opts   BlurOptions
	ch, cw *ts.Tensor // DCT-II matrices, H×H and W×W
	fh, fw *ts.Tensor // (πk/H)², (πk/W)² as columns
	phase
}

// NewBlur validates o and puts the matrices on o.Device. They are created
// in the caller's open ts.Scope if there is one (so build the Blur outside
// the per-step scope, like a model) and freed by Close.
func NewBlur(o BlurOptions) (b *Blur, err error) {
	if o.Height < 2 || o.Width < 2 {
		return nil, fmt.Errorf("mollification: blur needs images of at least 2×2 pixels, got %d×%d", o.Height, o.Width)
	}
	if o.SigmaMin == 0 {
		o.SigmaMin = 0.5
	}
	if o.SigmaMax == 0 {
		o.SigmaMax = float64(o.Width) / 2
	}
	if !(o.SigmaMin > 0) || !(o.SigmaMax > o.SigmaMin) || math.IsInf(o.SigmaMax, 0) {
		return nil, fmt.Errorf("mollification: blur needs 0 < sigma_min < sigma_max, got sigma_min %g, sigma_max %g (pixels)", o.SigmaMin, o.SigmaMax)
	}
	if o.Steps < 0 {
		return nil, fmt.Errorf("mollification: the mollification phase must last >= 0 steps, got %d", o.Steps)
	}
	if o.DType == 0 {
		o.DType = gotch.Float
	}
	if o.Device.Name == "" {
		o.Device = gotch.CPU
	}
	if o.Device.Name != gotch.CPU.Name && o.Device.Name != "CUDA" {
		return nil, fmt.Errorf("mollification: blur: unknown device %+v", o.Device)
	}
	defer recoverTorch(&err, "building the blur matrices")
	s := ts.NewScope()
	defer s.Close()
	b = &Blur{opts: o, phase: phase{o.Steps}}
	b.ch = matrixOn(DCTMatrix(o.Height), o.Height, o.Height, o.Device, o.DType)
	b.cw = matrixOn(DCTMatrix(o.Width), o.Width, o.Width, o.Device, o.DType)
	b.fh = matrixOn(heatFrequencies(o.Height), o.Height, 1, o.Device, o.DType)
	b.fw = matrixOn(heatFrequencies(o.Width), o.Width, 1, o.Device, o.DType)
	s.Keep(b.ch, b.cw, b.fh, b.fw)
	return b, nil
}

// Options returns the options with defaults filled in.
func (b *Blur) Options() BlurOptions { return b.opts }

// Steps is the length of the mollification phase.
func (b *Blur) Steps() int { return b.steps }

// Sigma is σ_B at progress u: σ_max·(σ_min/σ_max)^u, so that the time
// σ_B²/2 is log-spaced from σ_max²/2 down to σ_min²/2.
func (b *Blur) Sigma(u float64) float64 {
	return b.opts.SigmaMax * math.Pow(b.opts.SigmaMin/b.opts.SigmaMax, u)
}

// At returns the blur scale and time of a step.
func (b *Blur) At(step int) Info {
	u, active := b.progress(step)
	if !active {
		return Info{Kind: KindBlur, Progress: 1}
	}
	s := b.Sigma(u)
	return Info{Kind: KindBlur, Active: true, Progress: u, BlurSigma: s, BlurTime: s * s / 2}
}

// Mollify blurs an NCHW batch (any leading dims) of the configured size.
func (b *Blur) Mollify(x *ts.Tensor, step int) (out *ts.Tensor, info Info, err error) {
	if err := checkStep(step); err != nil {
		return nil, Info{}, err
	}
	if err := b.check(x); err != nil {
		return nil, Info{}, err
	}
	info = b.At(step)
	defer recoverTorch(&err, "blur mollification")
	if !info.Active {
		return x.MustShallowClone(), info, nil
	}
	return b.apply(x, info.BlurTime), info, nil
}

// Apply solves the heat equation for time t ≥ 0 on x (exactly Algorithm 2,
// with the cached matrices).
func (b *Blur) Apply(x *ts.Tensor, t float64) (out *ts.Tensor, err error) {
	if !(t >= 0) || math.IsInf(t, 0) {
		return nil, fmt.Errorf("mollification: blur time must be finite and >= 0, got %g", t)
	}
	if err := b.check(x); err != nil {
		return nil, err
	}
	defer recoverTorch(&err, "blur")
	return b.apply(x, t), nil
}

func (b *Blur) check(x *ts.Tensor) error {
	shape, err := x.Size()
	if err != nil {
		return fmt.Errorf("mollification: blur: %w", err)
	}
	if len(shape) < 3 || int(shape[len(shape)-2]) != b.opts.Height || int(shape[len(shape)-1]) != b.opts.Width {
		return fmt.Errorf("mollification: blur built for NCHW images of %d×%d pixels got a tensor of shape %v (blur needs image batches; use Gaussian mollification for other data)",
			b.opts.Height, b.opts.Width, shape)
	}
	if _, err := dtypeOf(x); err != nil {
		return err
	}
	if dev := x.MustDevice(); !sameDevice(dev, b.opts.Device) {
		return fmt.Errorf("mollification: blur built for device %v got a tensor on %v", b.opts.Device, dev)
	}
	return nil
}

// apply computes B_H·x·B_W with B = Cᵀ·diag(exp(−f²t))·C. Since
// exp(−(f_i² + f_j²)t) = exp(−f_i²t)·exp(−f_j²t), this equals
// IDCT2(DCT2(x)·exp(−Λt)) with two batched matmuls on x instead of four.
func (b *Blur) apply(x *ts.Tensor, t float64) *ts.Tensor {
	bh := heatOperator(b.ch, b.fh, t)
	bw := bh
	if b.opts.Width != b.opts.Height {
		bw = heatOperator(b.cw, b.fw, t)
	}
	if dt := x.DType(); dt != bh.DType() {
		bh = bh.MustTotype(dt, false)
		bw = bw.MustTotype(dt, false)
	}
	// B_W is symmetric, so x·B_Wᵀ = x·B_W.
	return bh.MustMatmul(x, false).MustMatmul(bw, false)
}

// heatOperator returns Cᵀ·(exp(−f²t) ⊙ C), f² a column.
func heatOperator(c, f2 *ts.Tensor, t float64) *ts.Tensor {
	d := f2.MustMulScalar(ts.FloatScalar(-t), false)
	d.MustExp_()
	dc := d.MustMul(c, false) // the column broadcasts over C's columns: diag(d)·C
	return c.MustTranspose(0, 1, false).MustMatmul(dc, false)
}

// sameDevice compares devices by kind and, for CUDA, index (gotch gives
// the CPU different Values depending on where the Device came from).
func sameDevice(a, b gotch.Device) bool {
	if a.Name != b.Name {
		return false
	}
	return a.Name == gotch.CPU.Name || a.Value == b.Value
}

// Close frees the cached matrices.
func (b *Blur) Close() {
	for _, t := range []*ts.Tensor{b.ch, b.cw, b.fh, b.fw} {
		if t != nil {
			t.MustDrop()
		}
	}
}
