package config

import "math"

// VAE configures the VAE family (model.vae): vae, beta_vae, iwae, vae_iaf
// and hvae share the Table 4 encoder/decoder and read their own fields;
// fields a variant does not use are ignored. The vaes constructors take it
// with the Data the model is fed.
type VAE struct {
	Latent int `mapstructure:"latent" yaml:"latent"`
	// Width multiplies Table 4's channel counts (128…1024); 1 is the
	// paper's network, 0.25 a quarter-width one for MNIST on a CPU.
	Width float64 `mapstructure:"width" yaml:"width"`
	Recon string  `mapstructure:"recon" yaml:"recon"` // ReconMSE | ReconBCE
	// Beta weights the KL term of beta_vae (0.1 in the paper).
	Beta float64 `mapstructure:"beta" yaml:"beta"`
	// ImportanceSamples is K of iwae (5 in the paper).
	ImportanceSamples int  `mapstructure:"importance_samples" yaml:"importance_samples"`
	IAF               IAF  `mapstructure:"iaf" yaml:"iaf"`
	HVAE              HVAE `mapstructure:"hvae" yaml:"hvae"`
	// NativeConvTBackward is an ablation: the decoder's transposed
	// convolutions backpropagate through libtorch's own kernels instead of
	// two oneDNN convolutions (the default; same values to float rounding,
	// about 1.5× faster on CPU, see nn.ConvTranspose2d).
	NativeConvTBackward bool `mapstructure:"native_convt_backward" yaml:"native_convt_backward"`
}

// IAF is vae_iaf's posterior flow (model.vae.iaf): Blocks MADEs of
// HiddenLayers × HiddenUnits ReLU units (2 blocks of 3 × 128 in the paper).
type IAF struct {
	Blocks       int `mapstructure:"blocks" yaml:"blocks"`
	HiddenLayers int `mapstructure:"hidden_layers" yaml:"hidden_layers"`
	HiddenUnits  int `mapstructure:"hidden_units" yaml:"hidden_units"`
}

// HVAE is the Hamiltonian VAE of Caterini et al. 2018 (model.vae.hvae).
type HVAE struct {
	LeapfrogSteps int     `mapstructure:"leapfrog_steps" yaml:"leapfrog_steps"`   // K
	StepSize      float64 `mapstructure:"step_size" yaml:"step_size"`             // initial leapfrog step size ε, one per latent dimension
	LearnStepSize bool    `mapstructure:"learn_step_size" yaml:"learn_step_size"` // train ε ("adaptive" in the paper)
	BetaZero      float64 `mapstructure:"beta_zero" yaml:"beta_zero"`             // initial inverse temperature β0 ∈ (0, 1]; 1 turns tempering off
}

// Reconstruction likelihoods (model.vae.recon).
const (
	ReconMSE = "mse" // unit-variance Gaussian: 0.5·Σ(x̂−x)² (+ D/2·log 2π when normalised)
	ReconBCE = "bce" // Bernoulli: Σ BCE(sigmoid(a), x); needs data.range unit
)

// DefaultVAE holds the paper's settings of every variant.
func DefaultVAE() VAE {
	return VAE{
		Latent: 256, Width: 1, Recon: ReconMSE, Beta: 0.1, ImportanceSamples: 5,
		IAF:  IAF{Blocks: 2, HiddenLayers: 3, HiddenUnits: 128},
		HVAE: HVAE{LeapfrogSteps: 1, StepSize: 0.001, LearnStepSize: true, BetaZero: 0.3},
	}
}

// ConvLayer is one convolution (or transposed convolution) of the Table 4
// networks.
type ConvLayer struct {
	Out                                    int64 // output channels
	Kernel, Stride, Padding, OutputPadding int64
}

// Scaled is Table 4's channel count n times Width, at least 1.
func (c VAE) Scaled(n int64) int64 {
	return max(1, int64(math.Round(float64(n)*c.Width)))
}

// EncoderLayers are Table 4's encoder convolutions, each followed by batch
// norm and ReLU: CONV(k4, s2, p1) with 128w, 256w, 512w, 1024w channels.
// FC heads for μ and log σ² follow.
func (c VAE) EncoderLayers() []ConvLayer {
	var out []ConvLayer
	for _, n := range []int64{128, 256, 512, 1024} {
		out = append(out, ConvLayer{Out: c.Scaled(n), Kernel: 4, Stride: 2, Padding: 1})
	}
	return out
}

// DecoderInput is the shape the decoder's FC layer outputs: 1024w
// channels of side×side, side 8.
func (c VAE) DecoderInput() (channels, side int64) { return c.Scaled(1024), 8 }

// DecoderLayers are the decoder's transposed convolutions for
// imageSize×imageSize images of the given channels (batch norm and ReLU
// after all but the last); nil for sizes Table 4 has no decoder for. Table
// 4 leaves the paddings open; these give the exact sizes
// (out = (in−1)·s − 2p + k + outPad):
//
//	32: 8 →(k4,s2,p1) 16 →(k4,s2,p1,op1) 33 →(k4,s1,p2) 32           (pythae's CIFAR decoder)
//	64: 8 →(k5,s2,p2,op1) 16 →(k5,s2,p2,op1) 32 →(k5,s2,p1) 65 →(k4,s1,p2) 64
func (c VAE) DecoderLayers(imageSize, channels int64) []ConvLayer {
	switch imageSize {
	case 32:
		return []ConvLayer{
			{c.Scaled(512), 4, 2, 1, 0},
			{c.Scaled(256), 4, 2, 1, 1},
			{channels, 4, 1, 2, 0},
		}
	case 64:
		return []ConvLayer{
			{c.Scaled(512), 5, 2, 2, 1},
			{c.Scaled(256), 5, 2, 2, 1},
			{c.Scaled(128), 5, 2, 1, 0},
			{channels, 4, 1, 2, 0},
		}
	}
	return nil
}

// Hidden is the hidden layer sizes of each MADE.
func (i IAF) Hidden() []int64 {
	h := make([]int64, max(i.HiddenLayers, 0))
	for j := range h {
		h[j] = int64(i.HiddenUnits)
	}
	return h
}

// Validate returns a *ValidationError listing every problem with the
// settings of the variant model (ModelVAE … ModelHVAE) for the images d
// describes (data.image_size, data.channels, data.range), or nil.
func (c VAE) Validate(model string, d Data) error {
	var k checker
	if !IsVAEFamily(model) {
		k.addf("model.name %q is not a VAE variant (want %s)", model, orList([]string{ModelVAE, ModelBetaVAE, ModelIWAE, ModelVAEIAF, ModelHVAE}))
	}
	d.checkImages(&k)
	c.check(&k, model, d)
	return k.err()
}

// Validate returns a *ValidationError listing every problem, or nil.
func (i IAF) Validate() error {
	var k checker
	i.check(&k)
	return k.err()
}

// Validate returns a *ValidationError listing every problem, or nil.
func (h HVAE) Validate() error {
	var k checker
	h.check(&k)
	return k.err()
}

func (c VAE) check(k *checker, model string, d Data) {
	k.positive("model.vae.latent", c.Latent)
	k.positiveFloat("model.vae.width", c.Width)
	if k.oneOf("model.vae.recon", c.Recon, ReconMSE, ReconBCE) && c.Recon == ReconBCE && d.Range == RangeSigned {
		k.addf("model.vae.recon %q needs targets in [0, 1], but data.range is %q: use data.range=%s or model.vae.recon=%s", ReconBCE, RangeSigned, RangeUnit, ReconMSE)
	}
	switch model {
	case ModelBetaVAE:
		k.positiveFloat("model.vae.beta", c.Beta)
	case ModelIWAE:
		k.positive("model.vae.importance_samples", c.ImportanceSamples)
	case ModelVAEIAF:
		c.IAF.check(k)
		if c.Latent == 1 {
			k.addf("model.vae.latent must be at least 2 for %s (the MADEs order the latent dimensions), got 1", ModelVAEIAF)
		}
	case ModelHVAE:
		c.HVAE.check(k)
	}
	if d.ImageSize > 0 && c.DecoderLayers(int64(d.ImageSize), 1) == nil {
		k.addf("model.name %q uses the Table 4 networks, which exist for data.image_size 32 or 64, got %d", model, d.ImageSize)
	}
}

func (i IAF) check(k *checker) {
	k.positive("model.vae.iaf.blocks", i.Blocks)
	k.positive("model.vae.iaf.hidden_layers", i.HiddenLayers)
	k.positive("model.vae.iaf.hidden_units", i.HiddenUnits)
}

func (h HVAE) check(k *checker) {
	k.positive("model.vae.hvae.leapfrog_steps", h.LeapfrogSteps)
	k.positiveFloat("model.vae.hvae.step_size", h.StepSize)
	if !(h.BetaZero > 0 && h.BetaZero <= 1) {
		k.addf("model.vae.hvae.beta_zero must be in (0, 1], got %g", h.BetaZero)
	}
}

// checkMollification rejects bce with Gaussian mollification.
func (c VAE) checkMollification(k *checker, m Mollification) {
	if c.Recon == ReconBCE && m.Enabled && m.Kind == KindGaussian {
		k.addf("model.vae.recon %q with Gaussian mollification: binary cross-entropy needs targets in [0, 1], mollified pixels leave that range, and the loss is then unbounded below; use model.vae.recon=mse, mollification.kind=blur, or mollification.enabled=false", ReconBCE)
	}
}
