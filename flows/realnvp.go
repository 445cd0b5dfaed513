package flows

import (
	"fmt"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/nn"
)

// RealNVP is the multi-scale RealNVP. Each scale but the last (levels.i)
// is three checkerboard couplings (layers.0-2, alternating masks), a
// squeeze (layers.3), three channel-wise couplings (layers.4-6) and a
// split that factors out half of the channels; the last scale is four
// checkerboard couplings. Couplings use s = exp(c·tanh(raw)) and ResNet
// networks with batch norm and config.RealNVP.Widths feature maps
// (Channels·2^i at scale i, twice that after the squeeze). All latents
// are N(0, I).
type RealNVP struct {
	*MultiScale
	Config config.RealNVP
}

// NewRealNVP builds RealNVP with the settings r for data in [0,1] of shape
// (C,H,W) under p. With r.LogitAlpha > 0 its first layer is Logit{α}
// (the preprocessing); 0 leaves it out.
func NewRealNVP(p nn.Path, r config.RealNVP, shape []int64) (*RealNVP, error) {
	if len(shape) != 3 || shape[0] <= 0 || shape[1] <= 0 || shape[2] <= 0 {
		return nil, fmt.Errorf("flows: RealNVP needs a (C,H,W) data shape, got %v", shape)
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("flows: RealNVP: %w", err)
	}
	if f := int64(1) << (r.Scales - 1); shape[1]%f != 0 || shape[2]%f != 0 {
		return nil, fmt.Errorf("flows: RealNVP with %d scales squeezes %d times, so the image size %d×%d must be divisible by %d", r.Scales, r.Scales-1, shape[1], shape[2], f)
	}
	m := &MultiScale{Shape: append([]int64(nil), shape...), device: p.Device()}
	if r.LogitAlpha > 0 {
		l, err := NewLogit(r.LogitAlpha)
		if err != nil {
			return nil, err
		}
		m.Pre = l
	}
	c, h, w := shape[0], shape[1], shape[2]
	for s := 0; s < r.Scales; s++ {
		lp := p.Subf("levels.%d", s)
		last := s == r.Scales-1
		checkerWidth, channelWidth := r.Widths(s)
		level := &Level{}
		add := func(c int64, part Partition, parity int, width int64) error {
			i := len(level.Layers)
			cp, err := NewAffineCoupling(lp.Subf("layers.%d", i), c, part, parity, ScaleTanhExp, ResNetBuilder(width, r.ResBlocks))
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
			if err := add(c, PartitionCheckerboard, i%2, checkerWidth); err != nil {
				return nil, err
			}
		}
		if !last {
			level.Layers = append(level.Layers, SqueezeLayer{})
			c, h, w = 4*c, h/2, w/2
			for i := 0; i < 3; i++ {
				if err := add(c, PartitionChannel, i%2, channelWidth); err != nil {
					return nil, err
				}
			}
			sp, err := NewSplit(lp.Sub("split"), c, false)
			if err != nil {
				return nil, err
			}
			level.Split = sp
			c, _ = sp.Sizes()
		}
		m.Levels = append(m.Levels, level)
	}
	m.Top = StdNormal{Shape: []int64{c, h, w}, Device: p.Device()}
	m.initZShapes()
	return &RealNVP{MultiScale: m, Config: r}, nil
}
