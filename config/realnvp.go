package config

// RealNVP is the multi-scale image flow of Dinh et al. 2017
// (model.realnvp; appendix D.3.2: 4 residual blocks of 32 feature maps on
// CIFAR10, 2 on CelebA). flows.NewRealNVP takes it.
type RealNVP struct {
	Scales     int     `mapstructure:"scales" yaml:"scales"`
	ResBlocks  int     `mapstructure:"res_blocks" yaml:"res_blocks"`
	Channels   int     `mapstructure:"channels" yaml:"channels"`       // hidden feature maps of the first scale
	LogitAlpha float64 `mapstructure:"logit_alpha" yaml:"logit_alpha"` // logit preprocessing α; 0 disables it
}

// DefaultRealNVP is the paper's CIFAR10 flow.
func DefaultRealNVP() RealNVP {
	return RealNVP{Scales: 2, ResBlocks: 4, Channels: 32, LogitAlpha: 0.05}
}

// Widths are the feature maps of the coupling networks at scale s
// (0-based): Channels·2^s for the checkerboard couplings, twice that for
// the channel-wise ones after the squeeze.
func (c RealNVP) Widths(s int) (checkerboard, channelwise int64) {
	w := int64(c.Channels) << s
	return w, 2 * w
}

// Validate returns a *ValidationError listing every problem with the
// settings alone, or nil (Config.Validate also checks them against
// data.image_size).
func (c RealNVP) Validate() error {
	var k checker
	c.check(&k, Data{})
	return k.err()
}

func (c RealNVP) check(k *checker, d Data) {
	k.positive("model.realnvp.scales", c.Scales)
	k.positive("model.realnvp.res_blocks", c.ResBlocks)
	k.positive("model.realnvp.channels", c.Channels)
	if !(c.LogitAlpha >= 0 && c.LogitAlpha < 0.5) {
		k.addf("model.realnvp.logit_alpha must be in [0, 0.5), got %g", c.LogitAlpha)
	}
	if d.ImageSize > 0 && c.Scales > 0 && d.ImageSize%(1<<c.Scales) != 0 {
		k.addf("model.realnvp.scales %d squeezes the image %d times; data.image_size %d must be divisible by %d", c.Scales, c.Scales, d.ImageSize, 1<<c.Scales)
	}
}
