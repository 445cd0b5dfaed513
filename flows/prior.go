package flows

import (
	"fmt"

	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Prior is a base distribution over one latent of shape (C,H,W).
type Prior interface {
	// LogProb is log p(z) per sample, in nats.
	LogProb(z *ts.Tensor) *ts.Tensor
	// Sample draws n latents; temperature T multiplies the standard
	// deviation (adds log T to the log-scale).
	Sample(n int64, temperature float64) *ts.Tensor
}

// gaussianLogProb is Σ log N(z; mean, exp(logs)²) over all but dim 0.
// mean and logs broadcast against z.
func gaussianLogProb(z, mean, logs *ts.Tensor) *ts.Tensor {
	d := z.MustSub(mean, false).MustMul(logs.MustNeg(false).MustExp(true), true)
	per := d.MustSquare(true).MustMulScalar(scalar(-0.5), true).
		MustSub(logs, true).MustSubScalar(scalar(0.5*log2Pi), true)
	return sumPerSample(per)
}

// gaussianSample draws mean + exp(logs)·T·ε with ε of the given shape.
func gaussianSample(shape []int64, mean, logs *ts.Tensor, temperature float64, device gotch.Device) *ts.Tensor {
	eps := ts.MustRandn(shape, gotch.Float, device)
	return eps.MustMul(logs.MustExp(false), true).MustMulScalar(scalar(temperature), true).MustAdd(mean, true)
}

// StdNormal is N(0, I) over latents of shape Shape.
type StdNormal struct {
	Shape  []int64
	Device gotch.Device
}

// LogProb is log N(z; 0, I).
func (s StdNormal) LogProb(z *ts.Tensor) *ts.Tensor { return StdNormalLogProb(z) }

// Sample draws T·ε.
func (s StdNormal) Sample(n int64, temperature float64) *ts.Tensor {
	z := ts.MustRandn(append([]int64{n}, s.Shape...), gotch.Float, s.Device)
	return z.MustMulScalar(scalar(temperature), true)
}

// GaussianBase is a learned diagonal Gaussian with normflows' GlowBase
// parametrisation: mean = Loc·exp(3·LocLogs), log σ = LogScale·exp(3·LogScaleLogs),
// all four zero-initialised, so it starts as N(0, I).
//   - NewGlowBase: one mean and log-scale per channel, shape (1,C,1,1)
//     broadcast over H and W. This is normflows' GlowBase, which the
//     authors' Glow gives every latent (GlowPriorPerChannel).
//   - NewGaussianBase: one per latent element, shape (1,C,H,W). This is the
//     top of our GlowPriorConditional variant. The original Glow code's
//     learned top (learntop: a zero-initialised 3×3 conv of zeros with an
//     edge-padding channel) is per channel away from the border and
//     position-dependent at it; per element is our generalisation.
type GaussianBase struct {
	Shape                                []int64    // (C,H,W) of the latent
	Loc, LocLogs, LogScale, LogScaleLogs *ts.Tensor // (1,C,1,1) per channel or (1,C,H,W) per element
	device                               gotch.Device
	perChannel                           bool
}

// logscaleFactor is normflows' (and Glow's) 3: the learned log-factors are
// multiplied by it so that they move fast enough under Adam.
const logscaleFactor = 3

// NewGlowBase registers normflows' GlowBase over latents of shape (C,H,W):
// one learned mean and log-scale per channel.
func NewGlowBase(p nn.Path, shape []int64) (*GaussianBase, error) {
	return newGaussianBase(p, shape, true)
}

// NewGaussianBase registers a learned base over latents of shape (C,H,W)
// with a mean and log-scale per element.
func NewGaussianBase(p nn.Path, shape []int64) (*GaussianBase, error) {
	return newGaussianBase(p, shape, false)
}

func newGaussianBase(p nn.Path, shape []int64, perChannel bool) (g *GaussianBase, err error) {
	defer nn.Recover(&err)
	if len(shape) != 3 || shape[0] <= 0 || shape[1] <= 0 || shape[2] <= 0 {
		return nil, fmt.Errorf("flows: GaussianBase needs a (C,H,W) shape, got %v", shape)
	}
	sc := ts.NewScope()
	defer sc.Close()
	g = &GaussianBase{Shape: append([]int64(nil), shape...), device: p.Device(), perChannel: perChannel}
	full := append([]int64{1}, shape...)
	if perChannel {
		full = []int64{1, shape[0], 1, 1}
	}
	for _, f := range []struct {
		name string
		dst  **ts.Tensor
	}{{"loc", &g.Loc}, {"loc_logs", &g.LocLogs}, {"log_scale", &g.LogScale}, {"log_scale_logs", &g.LogScaleLogs}} {
		if *f.dst, err = p.Param(f.name, nn.Zeros(full, p.Device())); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// PerChannel reports whether the base has one mean and log-scale per
// channel (NewGlowBase) rather than per element.
func (g *GaussianBase) PerChannel() bool { return g.perChannel }

// MeanLogScale returns the current mean and log σ, of the parameters'
// shape; they broadcast against (N,C,H,W) latents.
func (g *GaussianBase) MeanLogScale() (mean, logs *ts.Tensor) {
	mean = g.Loc.MustMul(g.LocLogs.MustMulScalar(scalar(logscaleFactor), false).MustExp(true), false)
	logs = g.LogScale.MustMul(g.LogScaleLogs.MustMulScalar(scalar(logscaleFactor), false).MustExp(true), false)
	return mean, logs
}

// LogProb is log p(z).
func (g *GaussianBase) LogProb(z *ts.Tensor) *ts.Tensor {
	mean, logs := g.MeanLogScale()
	return gaussianLogProb(z, mean, logs)
}

// Sample draws n latents at temperature T (log σ + log T).
func (g *GaussianBase) Sample(n int64, temperature float64) *ts.Tensor {
	mean, logs := g.MeanLogScale()
	return gaussianSample(append([]int64{n}, g.Shape...), mean, logs, temperature, g.device)
}

// Split factors out half of the channels at the end of a level:
// z → (z1, z2) with z1 the first ⌈C/2⌉ channels, which go on to the next
// level, and z2 the rest, which is a latent (normflows' Split "channel"
// mode keeps the same half). z2's density is one of:
//   - Prior (NewSplit, learned): Kingma & Dhariwal's conditional prior,
//     z2 ~ N(mean(z1), exp(logs(z1))²) with mean and logs from a
//     zero-initialised 3×3 conv of z1 (mean in the even output channels),
//     as in the original Glow code's split2d_prior (which also adds an
//     edge-padding channel and an exp(3·logs) output scale; we do not);
//   - Base (NewSplitWithBase): an unconditional learned base of its own,
//     normflows' GlowBase, as in the authors' Glow;
//   - neither: N(0, I) (RealNVP).
type Split struct {
	C     int64 // channels before the split
	Prior *nn.Conv2d
	Base  Prior
}

// NewSplit builds the split of c channels; learned adds the conditional
// prior conv under p.Sub("prior"), otherwise z2 ~ N(0, I).
func NewSplit(p nn.Path, c int64, learned bool) (*Split, error) {
	if c < 2 {
		return nil, fmt.Errorf("flows: cannot factor out half of %d channel(s); need at least 2", c)
	}
	s := &Split{C: c}
	if learned {
		kept, out := s.Sizes()
		conv, err := nn.NewConv2d(p.Sub("prior"), kept, 2*out, 3, nn.ConvOptions{Padding: 1, ZeroInit: true})
		if err != nil {
			return nil, err
		}
		s.Prior = conv
	}
	return s, nil
}

// NewSplitWithBase builds the split of c channels on (c,h,w) inputs whose
// factored-out half has its own per-channel GlowBase under p.Sub("base"),
// independent of the kept half.
func NewSplitWithBase(p nn.Path, c, h, w int64) (*Split, error) {
	if c < 2 {
		return nil, fmt.Errorf("flows: cannot factor out half of %d channel(s); need at least 2", c)
	}
	s := &Split{C: c}
	_, out := s.Sizes()
	base, err := NewGlowBase(p.Sub("base"), []int64{out, h, w})
	if err != nil {
		return nil, err
	}
	s.Base = base
	return s, nil
}

// Sizes returns the kept and factored-out channel counts.
func (s *Split) Sizes() (kept, out int64) { return (s.C + 1) / 2, s.C / 2 }

func (s *Split) meanLogs(z1 *ts.Tensor) (mean, logs *ts.Tensor) {
	h := s.Prior.Forward(z1)
	k := h.MustSize()[1]
	return h.MustSlice(1, []int64{0}, []int64{k}, 2, false), h.MustSlice(1, []int64{1}, []int64{k}, 2, false)
}

// Forward splits z and returns the kept part, the latent and log p(z2|z1).
func (s *Split) Forward(z *ts.Tensor) (z1, z2, logp *ts.Tensor) {
	checkChannels(z, s.C, "Split")
	kept, out := s.Sizes()
	z1, z2 = z.MustNarrow(1, 0, kept, false), z.MustNarrow(1, kept, out, false)
	return z1, z2, s.LogProb(z2, z1)
}

// LogProb is log p(z2 | z1); z1 is unused unless the prior is
// conditional.
func (s *Split) LogProb(z2, z1 *ts.Tensor) *ts.Tensor {
	switch {
	case s.Prior != nil:
		mean, logs := s.meanLogs(z1)
		return gaussianLogProb(z2, mean, logs)
	case s.Base != nil:
		return s.Base.LogProb(z2)
	}
	return StdNormalLogProb(z2)
}

// Sample draws z2 given z1 at temperature T.
func (s *Split) Sample(z1 *ts.Tensor, temperature float64) *ts.Tensor {
	n, _, h, w := shape4(z1, "Split")
	_, out := s.Sizes()
	shape := []int64{n, out, h, w}
	switch {
	case s.Prior != nil:
		mean, logs := s.meanLogs(z1)
		return gaussianSample(shape, mean, logs, temperature, z1.MustDevice())
	case s.Base != nil:
		return s.Base.Sample(n, temperature)
	}
	return ts.MustRandn(shape, gotch.Float, z1.MustDevice()).MustMulScalar(scalar(temperature), true)
}

// Inverse joins z1 and z2.
func (s *Split) Inverse(z1, z2 *ts.Tensor) *ts.Tensor {
	return ts.MustCat([]*ts.Tensor{z1, z2}, 1)
}
