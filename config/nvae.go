package config

// NVAE holds the settings of package nvae's model (model.nvae); the
// defaults are NVAE's published CIFAR-10 settings.
type NVAE struct {
	Channels          int     `mapstructure:"channels" yaml:"channels"` // encoder and decoder channels
	LatentScales      int     `mapstructure:"latent_scales" yaml:"latent_scales"`
	GroupsPerScale    int     `mapstructure:"groups_per_scale" yaml:"groups_per_scale"`
	LatentsPerGroup   int     `mapstructure:"latents_per_group" yaml:"latents_per_group"`
	CellsPerGroup     int     `mapstructure:"cells_per_group" yaml:"cells_per_group"`
	PreprocessBlocks  int     `mapstructure:"preprocess_blocks" yaml:"preprocess_blocks"`
	PreprocessCells   int     `mapstructure:"preprocess_cells" yaml:"preprocess_cells"`
	PostprocessBlocks int     `mapstructure:"postprocess_blocks" yaml:"postprocess_blocks"`
	PostprocessCells  int     `mapstructure:"postprocess_cells" yaml:"postprocess_cells"`
	Flows             int     `mapstructure:"flows" yaml:"flows"`       // IAF cells per group in the encoder
	Mixtures          int     `mapstructure:"mixtures" yaml:"mixtures"` // discretized logistic mixture components
	UseSE             bool    `mapstructure:"use_se" yaml:"use_se"`
	KLAnnealPortion   float64 `mapstructure:"kl_anneal_portion" yaml:"kl_anneal_portion"`
	KLConstPortion    float64 `mapstructure:"kl_const_portion" yaml:"kl_const_portion"`
	KLConstCoeff      float64 `mapstructure:"kl_const_coeff" yaml:"kl_const_coeff"`
	WeightDecayNorm   float64 `mapstructure:"weight_decay_norm" yaml:"weight_decay_norm"` // spectral regularisation λ
	// MollifiedLikelihood scores mollified batches (Gaussian mollification
	// leaves the 256-level grid and [0, 1]): NVAELikelihoodDiscretized,
	// NVAE's discretized mixture of logistics applied to the values as they
	// are, those outside [0, 1] taking its half-infinite edge formulas at
	// their own value, never clamped (what the authors effectively ran); or
	// NVAELikelihoodContinuous, the density of the same logistic mixture, a
	// proper density on all of R^C. Clean batches and evaluation always use
	// the discretized one. Package nvae's doc explains both.
	MollifiedLikelihood string `mapstructure:"mollified_likelihood" yaml:"mollified_likelihood"`
	// IWSamples is K of the importance-weighted bound on log p(x) that
	// evaluation reports in bits/dim; 1 is the ELBO. NVAE's evaluate.py
	// reports its final numbers with 1000; each sample is a forward pass.
	IWSamples int `mapstructure:"iw_samples" yaml:"iw_samples"`
	// ReadjustBN turns on NVAE's BN-statistics readjustment before
	// sampling (evaluate.py --readjust_bn): ReadjustBNIters sampling passes
	// of ReadjustBNBatch images at the sampling temperature with batch
	// statistics, NVAE's iter=500 and num_samples=36.
	ReadjustBN      bool `mapstructure:"readjust_bn" yaml:"readjust_bn"`
	ReadjustBNIters int  `mapstructure:"readjust_bn_iters" yaml:"readjust_bn_iters"`
	ReadjustBNBatch int  `mapstructure:"readjust_bn_batch" yaml:"readjust_bn_batch"`
}

// Values of model.nvae.mollified_likelihood.
const (
	NVAELikelihoodDiscretized = "discretized"
	NVAELikelihoodContinuous  = "continuous"
)

// DefaultNVAE is NVAE's CIFAR-10 model.
func DefaultNVAE() NVAE {
	return NVAE{
		Channels: 128, LatentScales: 1, GroupsPerScale: 30, LatentsPerGroup: 20, CellsPerGroup: 2,
		PreprocessBlocks: 1, PreprocessCells: 2, PostprocessBlocks: 1, PostprocessCells: 2,
		Flows: 1, Mixtures: 10, UseSE: true,
		KLAnnealPortion: 0.3, KLConstPortion: 1e-4, KLConstCoeff: 1e-4, WeightDecayNorm: 1e-2,
		MollifiedLikelihood: NVAELikelihoodDiscretized,
		// NVAE's evaluate.py: readjustment off unless asked for.
		IWSamples: 1, ReadjustBN: false, ReadjustBNIters: 500, ReadjustBNBatch: 36,
	}
}

// Validate returns a *ValidationError listing every problem, or nil.
func (n NVAE) Validate() error {
	var k checker
	n.check(&k)
	return k.err()
}

func (n NVAE) check(k *checker) {
	k.positive("model.nvae.channels", n.Channels)
	k.positive("model.nvae.latent_scales", n.LatentScales)
	k.positive("model.nvae.groups_per_scale", n.GroupsPerScale)
	k.positive("model.nvae.latents_per_group", n.LatentsPerGroup)
	k.positive("model.nvae.cells_per_group", n.CellsPerGroup)
	k.nonNegative("model.nvae.preprocess_blocks", n.PreprocessBlocks)
	k.nonNegative("model.nvae.preprocess_cells", n.PreprocessCells)
	k.nonNegative("model.nvae.postprocess_blocks", n.PostprocessBlocks)
	k.nonNegative("model.nvae.postprocess_cells", n.PostprocessCells)
	k.nonNegative("model.nvae.flows", n.Flows)
	k.positive("model.nvae.mixtures", n.Mixtures)
	if !(n.KLAnnealPortion >= 0 && n.KLAnnealPortion <= 1) {
		k.addf("model.nvae.kl_anneal_portion must be in [0, 1], got %g", n.KLAnnealPortion)
	}
	if !(n.KLConstPortion >= 0 && n.KLConstPortion <= 1) {
		k.addf("model.nvae.kl_const_portion must be in [0, 1], got %g", n.KLConstPortion)
	}
	k.positiveFloat("model.nvae.kl_const_coeff", n.KLConstCoeff)
	k.nonNegativeFloat("model.nvae.weight_decay_norm", n.WeightDecayNorm)
	k.oneOf("model.nvae.mollified_likelihood", n.MollifiedLikelihood, NVAELikelihoodDiscretized, NVAELikelihoodContinuous)
	if n.IWSamples < 1 {
		k.addf("model.nvae.iw_samples must be ≥ 1 (1 is the ELBO), got %d", n.IWSamples)
	}
	if n.ReadjustBN {
		if n.ReadjustBNIters < 1 {
			k.addf("model.nvae.readjust_bn_iters must be ≥ 1 when readjust_bn is true (NVAE uses 500), got %d", n.ReadjustBNIters)
		}
		if n.ReadjustBNBatch < 2 {
			k.addf("model.nvae.readjust_bn_batch must be ≥ 2 when readjust_bn is true (batch statistics need two images; NVAE uses 36), got %d", n.ReadjustBNBatch)
		}
	}
}
