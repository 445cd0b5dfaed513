package flows

import (
	"fmt"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch/ts"
)

// GlowPrior selects Glow's learned prior.
type GlowPrior int

const (
	// GlowPriorPerChannel is the authors' Glow (the paper's code builds
	// normflows' Glow example with GlowBase in place of the example's
	// class-conditional ClassCondDiagGaussian): each level's factored-out
	// half and the top latent have their own GlowBase, an unconditional
	// diagonal Gaussian with one learned mean and log-scale per channel
	// (levels.l.split.base, top). No latent depends on another.
	GlowPriorPerChannel GlowPrior = iota
	// GlowPriorConditional follows the original Glow (Kingma & Dhariwal's
	// code) for the splits: z2 ~ N(μ(z1), σ(z1)²) from a zero-initialised
	// 3×3 conv of the kept half (levels.l.split.prior); the top latent
	// has a learned Gaussian per element (top).
	GlowPriorConditional
)

// GlowPriorNames are the config names (model.glow.prior) of the GlowPrior
// values, in order.
var GlowPriorNames = []string{config.GlowPriorPerChannel, config.GlowPriorConditional}

func (p GlowPrior) String() string {
	if p >= 0 && int(p) < len(GlowPriorNames) {
		return GlowPriorNames[p]
	}
	return fmt.Sprintf("GlowPrior(%d)", int(p))
}

// ParseGlowPrior reads "per_channel" or "conditional".
func ParseGlowPrior(s string) (GlowPrior, error) {
	for i, n := range GlowPriorNames {
		if s == n {
			return GlowPrior(i), nil
		}
	}
	return 0, fmt.Errorf("flows: unknown Glow prior %q, want per_channel (the authors': a normflows GlowBase per latent) or conditional (the original Glow's conditional split prior)", s)
}

// GlowStep is one step of flow, data→latent: ActNorm → invertible 1×1
// conv → affine coupling.
type GlowStep struct {
	ActNorm  *ActNorm
	InvConv  *InvConv1x1
	Coupling *AffineCoupling
}

// NewGlowStep builds a step on c channels under p (actnorm, invconv,
// coupling with the network newNet makes).
func NewGlowStep(p nn.Path, c int64, newNet NetBuilder, part Partition, parity int, scale Scale) (s *GlowStep, err error) {
	s = &GlowStep{}
	if s.ActNorm, err = NewActNorm(p.Sub("actnorm"), c); err != nil {
		return nil, err
	}
	if s.InvConv, err = NewInvConv1x1(p.Sub("invconv"), c); err != nil {
		return nil, err
	}
	if s.Coupling, err = NewAffineCoupling(p.Sub("coupling"), c, part, parity, scale, newNet); err != nil {
		return nil, err
	}
	return s, nil
}

// Forward maps data to latent.
func (s *GlowStep) Forward(x *ts.Tensor) (*ts.Tensor, *ts.Tensor) {
	h, ld := s.ActNorm.Forward(x)
	h, l2 := s.InvConv.Forward(h)
	h, l3 := s.Coupling.Forward(h)
	return h, ld.MustAdd(l2, false).MustAdd(l3, true)
}

// Inverse maps latent to data.
func (s *GlowStep) Inverse(z *ts.Tensor) (*ts.Tensor, *ts.Tensor) {
	h, ld := s.Coupling.Inverse(z)
	h, l2 := s.InvConv.Inverse(h)
	h, l3 := s.ActNorm.Inverse(h)
	return h, ld.MustAdd(l2, false).MustAdd(l3, true)
}

// Glow is the multi-scale Glow. Level l (under levels.l) is: squeeze
// (layers.0), K steps (layers.1..K), then, except at the last level, a
// split that factors out half of the channels; the last level's output is
// the top latent. This is the structure of normflows' Glow example (its
// MultiscaleFlow run from data to latent) and of the original Glow. It
// models data in whatever range it is given; see models.Glow for the
// likelihood convention.
type Glow struct {
	*MultiScale
	Config    config.Glow
	Partition Partition // Config.Split
	Scale     Scale     // Config.Scale
	Prior     GlowPrior // Config.Prior; used when Config.LearnedBase
}

// NewGlow builds Glow with the settings g for images of shape (C,H,W) under
// p. With a checkerboard partition the mask parity alternates from step to
// step; with the channel partition it does not (the 1×1 convolutions mix
// the channels).
func NewGlow(p nn.Path, g config.Glow, shape []int64) (*Glow, error) {
	if len(shape) != 3 || shape[0] <= 0 || shape[1] <= 0 || shape[2] <= 0 {
		return nil, fmt.Errorf("flows: Glow needs a (C,H,W) data shape, got %v", shape)
	}
	if err := g.Validate(); err != nil {
		return nil, fmt.Errorf("flows: Glow: %w", err)
	}
	if f := int64(1) << g.Levels; shape[1]%f != 0 || shape[2]%f != 0 {
		return nil, fmt.Errorf("flows: Glow with %d levels squeezes %d times, so the image size %d×%d must be divisible by %d", g.Levels, g.Levels, shape[1], shape[2], f)
	}
	out := &Glow{Config: g}
	var err error
	if out.Partition, err = ParsePartition(g.Split); err != nil {
		return nil, err
	}
	if out.Scale, err = ParseScale(g.Scale); err != nil {
		return nil, err
	}
	if out.Prior, err = ParseGlowPrior(g.Prior); err != nil {
		return nil, err
	}
	net := GlowNetBuilder(int64(g.Hidden), g.CouplingKernels())
	m := &MultiScale{Shape: append([]int64(nil), shape...), device: p.Device()}
	c, h, w := shape[0], shape[1], shape[2]
	for l := 0; l < g.Levels; l++ {
		lp := p.Subf("levels.%d", l)
		c, h, w = 4*c, h/2, w/2
		level := &Level{Layers: []Layer{SqueezeLayer{}}}
		for k := 0; k < g.Depth; k++ {
			parity := 0
			if out.Partition == PartitionCheckerboard {
				parity = k % 2
			}
			step, err := NewGlowStep(lp.Subf("layers.%d", k+1), c, net, out.Partition, parity, out.Scale)
			if err != nil {
				return nil, fmt.Errorf("flows: Glow level %d step %d: %w", l, k, err)
			}
			level.Layers = append(level.Layers, step)
		}
		if l < g.Levels-1 {
			var s *Split
			var err error
			if g.LearnedBase && out.Prior == GlowPriorPerChannel {
				s, err = NewSplitWithBase(lp.Sub("split"), c, h, w)
			} else {
				s, err = NewSplit(lp.Sub("split"), c, g.LearnedBase)
			}
			if err != nil {
				return nil, err
			}
			level.Split = s
			c, _ = s.Sizes()
		}
		m.Levels = append(m.Levels, level)
	}
	switch {
	case !g.LearnedBase:
		m.Top = StdNormal{Shape: []int64{c, h, w}, Device: p.Device()}
	case out.Prior == GlowPriorPerChannel:
		top, err := NewGlowBase(p.Sub("top"), []int64{c, h, w})
		if err != nil {
			return nil, err
		}
		m.Top = top
	default:
		top, err := NewGaussianBase(p.Sub("top"), []int64{c, h, w})
		if err != nil {
			return nil, err
		}
		m.Top = top
	}
	m.initZShapes()
	out.MultiScale = m
	return out, nil
}

// ActNorms lists the model's ActNorm layers.
func (g *Glow) ActNorms() []*ActNorm {
	var out []*ActNorm
	for _, l := range g.Levels {
		for _, layer := range l.Layers {
			if s, ok := layer.(*GlowStep); ok {
				out = append(out, s.ActNorm)
			}
		}
	}
	return out
}
