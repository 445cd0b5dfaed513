package config

// Glow is the multi-scale Glow of Kingma & Dhariwal 2018 (model.glow; K=20,
// L=3). flows.NewGlow takes it.
type Glow struct {
	Levels int    `mapstructure:"levels" yaml:"levels"` // L
	Depth  int    `mapstructure:"depth" yaml:"depth"`   // K steps per level
	Hidden int    `mapstructure:"hidden" yaml:"hidden"` // coupling net channels
	Split  string `mapstructure:"split" yaml:"split"`   // GlowSplitChannel | GlowSplitCheckerboard
	Scale  string `mapstructure:"scale" yaml:"scale"`   // GlowScaleSigmoid | GlowScaleExp
	// CouplingKernel is the kernel size of the coupling network's first
	// and last convolutions (3 in Glow and normflows; the middle one is
	// 1×1). Odd, so that padding k/2 keeps the image size.
	CouplingKernel int `mapstructure:"coupling_kernel" yaml:"coupling_kernel"`
	// LearnedBase false: every latent is N(0, I). Otherwise Prior picks the
	// learned prior: per_channel is the authors' Glow (normflows' GlowBase,
	// one mean and log-scale per channel, for each level's factored-out
	// half and for the top); conditional is the original Glow's conv prior
	// of each factored-out half given the kept half, with a per-element top.
	LearnedBase bool   `mapstructure:"learned_base" yaml:"learned_base"`
	Prior       string `mapstructure:"prior" yaml:"prior"` // GlowPriorPerChannel | GlowPriorConditional
}

// Values of model.glow.split, .scale and .prior.
const (
	GlowSplitChannel      = "channel"      // couplings condition on half of the channels
	GlowSplitCheckerboard = "checkerboard" // couplings condition on a checkerboard of pixels
	GlowScaleSigmoid      = "sigmoid"      // Glow's s = sigmoid(raw + 2)
	GlowScaleExp          = "exp"          // RealNVP's s = exp(c·tanh(raw))
	GlowPriorPerChannel   = "per_channel"
	GlowPriorConditional  = "conditional"
)

// DefaultGlow is the paper's CIFAR10 and CelebA Glow (the authors'
// normflows model).
func DefaultGlow() Glow {
	return Glow{Levels: 3, Depth: 20, Hidden: 512, Split: GlowSplitChannel, Scale: GlowScaleSigmoid, CouplingKernel: 3, LearnedBase: true, Prior: GlowPriorPerChannel}
}

// CouplingKernels are the kernel sizes of the coupling network's three
// convolutions: CouplingKernel, 1, CouplingKernel (Glow's and normflows'
// 3×3, 1×1, 3×3); each is padded to keep the image size.
func (g Glow) CouplingKernels() [3]int64 {
	k := int64(g.CouplingKernel)
	return [3]int64{k, 1, k}
}

// Validate returns a *ValidationError listing every problem with the
// settings alone, or nil (Config.Validate also checks them against
// data.image_size).
func (g Glow) Validate() error {
	var k checker
	g.check(&k, Data{})
	return k.err()
}

func (g Glow) check(k *checker, d Data) {
	k.positive("model.glow.levels", g.Levels)
	k.positive("model.glow.depth", g.Depth)
	k.positive("model.glow.hidden", g.Hidden)
	k.oneOf("model.glow.split", g.Split, GlowSplitChannel, GlowSplitCheckerboard)
	k.oneOf("model.glow.scale", g.Scale, GlowScaleSigmoid, GlowScaleExp)
	if g.CouplingKernel < 1 || g.CouplingKernel%2 == 0 {
		k.addf("model.glow.coupling_kernel must be odd and > 0 (padding k/2 keeps the image size), got %d", g.CouplingKernel)
	}
	k.oneOf("model.glow.prior", g.Prior, GlowPriorPerChannel, GlowPriorConditional)
	if d.ImageSize > 0 && g.Levels > 0 && d.ImageSize%(1<<g.Levels) != 0 {
		k.addf("model.glow.levels %d squeezes the image %d times; data.image_size %d must be divisible by %d", g.Levels, g.Levels, d.ImageSize, 1<<g.Levels)
	}
}
