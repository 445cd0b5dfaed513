package flows

import (
	"fmt"

	"github.com/mollify/mollify/nn"
)

// RealNVPOptions configure the multi-scale RealNVP of Dinh et al. 2017. The
// paper's CIFAR-10 model (appendix D.3.2) is Scales 2, ResBlocks 4,
// Channels 32, LogitAlpha 0.05; CelebA uses 2 residual blocks.
type RealNVPOptions struct {
	Shape     []int64 // (C,H,W) of data in [0,1]
	Scales    int
	ResBlocks int   // residual blocks per coupling network
	Channels  int64 // feature maps of the first scale's checkerboard couplings
	// LogitAlpha > 0 puts Logit{α} in front (data in [0,1]); 0 leaves it out.
	LogitAlpha float64
}

// RealNVP is the multi-scale RealNVP. Each scale but the last (levels.i)
// is three checkerboard couplings (layers.0-2, alternating masks), a
// squeeze (layers.3), three channel-wise couplings (layers.4-6) and a
// split that factors out half of the channels; the last scale is four
// checkerboard couplings. Couplings use s = exp(c·tanh(raw)) and ResNet
// networks with batch norm, `Channels·2^i` wide at scale i (twice that
// after the squeeze). All latents are N(0, I).
type RealNVP struct {
	*MultiScale
	Options RealNVPOptions
}

// NewRealNVP builds RealNVP under p.
func NewRealNVP(p nn.Path, o RealNVPOptions) (*RealNVP, error) {
	if len(o.Shape) != 3 || o.Shape[0] <= 0 || o.Shape[1] <= 0 || o.Shape[2] <= 0 {
		return nil, fmt.Errorf("flows: RealNVP needs a (C,H,W) data shape, got %v", o.Shape)
	}
	if o.Scales <= 0 || o.ResBlocks <= 0 || o.Channels <= 0 {
		return nil, fmt.Errorf("flows: RealNVP needs positive scales, residual blocks and channels, got %d, %d, %d", o.Scales, o.ResBlocks, o.Channels)
	}
	if f := int64(1) << (o.Scales - 1); o.Shape[1]%f != 0 || o.Shape[2]%f != 0 {
		return nil, fmt.Errorf("flows: RealNVP with %d scales squeezes %d times, so the image size %d×%d must be divisible by %d", o.Scales, o.Scales-1, o.Shape[1], o.Shape[2], f)
	}
	m := &MultiScale{Shape: append([]int64(nil), o.Shape...), device: p.Device()}
	if o.LogitAlpha > 0 {
		l, err := NewLogit(o.LogitAlpha)
		if err != nil {
			return nil, err
		}
		m.Pre = l
	}
	c, h, w := o.Shape[0], o.Shape[1], o.Shape[2]
	mid := o.Channels
	for s := 0; s < o.Scales; s++ {
		lp := p.Subf("levels.%d", s)
		last := s == o.Scales-1
		level := &Level{}
		add := func(c int64, part Partition, parity int, width int64) error {
			i := len(level.Layers)
			cp, err := NewAffineCoupling(lp.Subf("layers.%d", i), c, part, parity, ScaleTanhExp, ResNetBuilder(width, o.ResBlocks))
			if err != nil {
				return fmt.Errorf("flows: RealNVP scale %d layer %d: %w", s, i, err)
			}
			level.Layers = append(level.Layers, cp)
			return nil
		}
		nCheck := 3
		if last {
			nCheck = 4
		}
		for i := 0; i < nCheck; i++ {
			if err := add(c, PartitionCheckerboard, i%2, mid); err != nil {
				return nil, err
			}
		}
		if !last {
			level.Layers = append(level.Layers, SqueezeLayer{})
			c, h, w = 4*c, h/2, w/2
			for i := 0; i < 3; i++ {
				if err := add(c, PartitionChannel, i%2, 2*mid); err != nil {
					return nil, err
				}
			}
			sp, err := NewSplit(lp.Sub("split"), c, false)
			if err != nil {
				return nil, err
			}
			level.Split = sp
			c, _ = sp.Sizes()
			mid *= 2
		}
		m.Levels = append(m.Levels, level)
	}
	m.Top = StdNormal{Shape: []int64{c, h, w}, Device: p.Device()}
	m.initZShapes()
	return &RealNVP{MultiScale: m, Options: o}, nil
}
