package config

// Config is a whole run. Field tags: `mapstructure` for viper, `yaml` for
// the resolved copy written into a run folder (same names).
type Config struct {
	Run           Run           `mapstructure:"run" yaml:"run"`
	Data          Data          `mapstructure:"data" yaml:"data"`
	Model         Model         `mapstructure:"model" yaml:"model"`
	Optim         Optim         `mapstructure:"optim" yaml:"optim"`
	Mollification Mollification `mapstructure:"mollification" yaml:"mollification"`
	Eval          Eval          `mapstructure:"eval" yaml:"eval"`
	Output        Output        `mapstructure:"output" yaml:"output"`

	// Source says where the config was read from ("configs/glow_cifar10.yaml",
	// "embedded:realnvp_mog.yaml", "defaults"). Not part of the schema.
	Source string `mapstructure:"-" yaml:"-"`
}

// Run identifies the run and sets the training loop's budget.
type Run struct {
	Name    string `mapstructure:"name" yaml:"name"`
	Seed    uint64 `mapstructure:"seed" yaml:"seed"`
	Device  string `mapstructure:"device" yaml:"device"`   // auto | cpu | cuda | cuda:N
	Threads int    `mapstructure:"threads" yaml:"threads"` // intra-op CPU threads; 0 keeps libtorch's default
	OutDir  string `mapstructure:"out_dir" yaml:"out_dir"` // run folders are created under it
	// Iterations is the number of optimizer steps.
	Iterations int `mapstructure:"iterations" yaml:"iterations"`
	LogEvery   int `mapstructure:"log_every" yaml:"log_every"` // progress line / metrics row every N steps
	// MaxNonFinite is how many consecutive steps with a NaN or Inf loss are
	// skipped (as the authors' code does) before the run fails.
	MaxNonFinite int `mapstructure:"max_nonfinite" yaml:"max_nonfinite"`
}

// Dataset names.
const (
	DatasetMoG      = "mog"      // 2-D mixture of two Gaussians (appendix D.1)
	DatasetVonMises = "vonmises" // von Mises (κ=1) on the unit circle in R² (appendix D.1)
	DatasetMNIST    = "mnist"
	DatasetCIFAR10  = "cifar10"
	DatasetCelebA   = "celeba" // 148×148 centre crop resized to 64×64
)

// Datasets lists the dataset names Validate accepts.
var Datasets = []string{DatasetMoG, DatasetVonMises, DatasetMNIST, DatasetCIFAR10, DatasetCelebA}

// Is2DDataset reports whether name is one of the synthetic 2-D point sets.
func Is2DDataset(name string) bool { return name == DatasetMoG || name == DatasetVonMises }

// datasetChannels is the channel count of each image dataset.
var datasetChannels = map[string]int{DatasetMNIST: 1, DatasetCIFAR10: 3, DatasetCelebA: 3}

// Data describes the training data and how batches are drawn.
type Data struct {
	Dataset   string `mapstructure:"dataset" yaml:"dataset"`
	Root      string `mapstructure:"root" yaml:"root"`             // where downloaded datasets live
	ImageSize int    `mapstructure:"image_size" yaml:"image_size"` // H = W; 0 for 2-D data
	Channels  int    `mapstructure:"channels" yaml:"channels"`     // 0 for 2-D data
	BatchSize int    `mapstructure:"batch_size" yaml:"batch_size"`
	DropLast  bool   `mapstructure:"drop_last" yaml:"drop_last"`
	HFlip     bool   `mapstructure:"hflip" yaml:"hflip"` // random horizontal flips (images only)
	// Dequantization of 8-bit images: none | uniform ((x + u)/256, u ~ U[0,1)).
	Dequantization string `mapstructure:"dequantization" yaml:"dequantization"`
	// Range of image values fed to the model: unit ([0,1]) | signed ([-1,1]).
	Range string `mapstructure:"range" yaml:"range"`
	// Sizes of the synthetic 2-D train and test sets (10K each in the paper).
	TrainSize int `mapstructure:"train_size" yaml:"train_size"`
	TestSize  int `mapstructure:"test_size" yaml:"test_size"`
}

// Is2D reports whether the data are 2-D points rather than images.
func (d Data) Is2D() bool { return Is2DDataset(d.Dataset) }

// Shape is the shape of one example: [2] for 2-D data, [C, H, W] for images.
func (d Data) Shape() []int64 {
	if d.Is2D() {
		return []int64{2}
	}
	return []int64{int64(d.Channels), int64(d.ImageSize), int64(d.ImageSize)}
}

// Model names.
const (
	ModelRealNVP2D = "realnvp2d" // REAL-NVP with MLP couplings for 2-D data
	ModelRealNVP   = "realnvp"   // multi-scale REAL-NVP for images
	ModelGlow      = "glow"
	ModelVAE       = "vae"
	ModelBetaVAE   = "beta_vae"
	ModelIWAE      = "iwae"
	ModelVAEIAF    = "vae_iaf"
	ModelHVAE      = "hvae"
	ModelNVAE      = "nvae"
)

// Models lists the model names Validate accepts.
var Models = []string{ModelRealNVP2D, ModelRealNVP, ModelGlow, ModelVAE, ModelBetaVAE, ModelIWAE, ModelVAEIAF, ModelHVAE, ModelNVAE}

// IsVAEFamily reports whether the model uses the VAE block (Table 4 nets).
func IsVAEFamily(name string) bool {
	switch name {
	case ModelVAE, ModelBetaVAE, ModelIWAE, ModelVAEIAF, ModelHVAE:
		return true
	}
	return false
}

// Model selects an architecture by Name; only the block that Name uses is
// read, the others keep their defaults. The five VAE variants share VAE.
type Model struct {
	Name      string    `mapstructure:"name" yaml:"name"`
	RealNVP2D RealNVP2D `mapstructure:"realnvp2d" yaml:"realnvp2d"`
	RealNVP   RealNVP   `mapstructure:"realnvp" yaml:"realnvp"`
	Glow      Glow      `mapstructure:"glow" yaml:"glow"`
	VAE       VAE       `mapstructure:"vae" yaml:"vae"`
	NVAE      NVAE      `mapstructure:"nvae" yaml:"nvae"`
}

// RealNVP2D is the toy flow of appendix D.3.1: 5 affine couplings whose
// scale and shift nets have 2 hidden layers of 64 units.
type RealNVP2D struct {
	Couplings    int `mapstructure:"couplings" yaml:"couplings"`
	HiddenLayers int `mapstructure:"hidden_layers" yaml:"hidden_layers"`
	HiddenUnits  int `mapstructure:"hidden_units" yaml:"hidden_units"`
}

// RealNVP is the multi-scale image flow of Dinh et al. 2017 (appendix
// D.3.2: 4 residual blocks of 32 feature maps on CIFAR10, 2 on CelebA).
type RealNVP struct {
	Scales     int     `mapstructure:"scales" yaml:"scales"`
	ResBlocks  int     `mapstructure:"res_blocks" yaml:"res_blocks"`
	Channels   int     `mapstructure:"channels" yaml:"channels"`       // hidden feature maps of the first scale
	LogitAlpha float64 `mapstructure:"logit_alpha" yaml:"logit_alpha"` // logit preprocessing α; 0 disables it
}

// Glow is the multi-scale Glow of Kingma & Dhariwal 2018 (K=20, L=3).
type Glow struct {
	Levels      int    `mapstructure:"levels" yaml:"levels"` // L
	Depth       int    `mapstructure:"depth" yaml:"depth"`   // K steps per level
	Hidden      int    `mapstructure:"hidden" yaml:"hidden"` // coupling net channels
	Split       string `mapstructure:"split" yaml:"split"`   // channel | checkerboard
	Scale       string `mapstructure:"scale" yaml:"scale"`   // sigmoid | exp
	// LearnedBase false: every latent is N(0, I). Otherwise Prior picks the
	// learned prior: per_channel is the authors' Glow (normflows' GlowBase,
	// one mean and log-scale per channel, for each level's factored-out
	// half and for the top); conditional is the original Glow's conv prior
	// of each factored-out half given the kept half, with a per-element top.
	LearnedBase bool   `mapstructure:"learned_base" yaml:"learned_base"`
	Prior       string `mapstructure:"prior" yaml:"prior"` // per_channel | conditional
}

// VAE configures the Table 4 encoder/decoder and the variant-specific
// parts; fields a variant does not use are ignored.
type VAE struct {
	Latent int `mapstructure:"latent" yaml:"latent"`
	// Width multiplies Table 4's channel counts (128…1024); 1 is the
	// paper's network, 0.25 a quarter-width one for MNIST on a CPU.
	Width float64 `mapstructure:"width" yaml:"width"`
	Recon string  `mapstructure:"recon" yaml:"recon"` // mse | bce
	// Beta weights the KL term of beta_vae (0.1 in the paper).
	Beta float64 `mapstructure:"beta" yaml:"beta"`
	// ImportanceSamples is K of iwae (5 in the paper).
	ImportanceSamples int  `mapstructure:"importance_samples" yaml:"importance_samples"`
	IAF               IAF  `mapstructure:"iaf" yaml:"iaf"`
	HVAE              HVAE `mapstructure:"hvae" yaml:"hvae"`
}

// IAF is vae_iaf's posterior flow: MADE blocks (3 × 128, ReLU), 2 blocks.
type IAF struct {
	Blocks       int `mapstructure:"blocks" yaml:"blocks"`
	HiddenLayers int `mapstructure:"hidden_layers" yaml:"hidden_layers"`
	HiddenUnits  int `mapstructure:"hidden_units" yaml:"hidden_units"`
}

// HVAE is the Hamiltonian VAE of Caterini et al. 2018.
type HVAE struct {
	LeapfrogSteps int     `mapstructure:"leapfrog_steps" yaml:"leapfrog_steps"`
	StepSize      float64 `mapstructure:"step_size" yaml:"step_size"`             // initial leapfrog step size
	LearnStepSize bool    `mapstructure:"learn_step_size" yaml:"learn_step_size"` // "adaptive" in the paper
	BetaZero      float64 `mapstructure:"beta_zero" yaml:"beta_zero"`             // initial tempering, in (0, 1]
}

// NVAE follows NVAE's published CIFAR-10 settings.
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
}

// Optim configures the optimizer.
type Optim struct {
	Name        string    `mapstructure:"name" yaml:"name"` // adam | adamax
	LR          float64   `mapstructure:"lr" yaml:"lr"`
	Betas       []float64 `mapstructure:"betas" yaml:"betas,flow"`
	Eps         float64   `mapstructure:"eps" yaml:"eps"`
	WeightDecay float64   `mapstructure:"weight_decay" yaml:"weight_decay"`
	// GradClip is the maximum global L2 norm of the gradients; 0 disables it.
	GradClip   float64    `mapstructure:"grad_clip" yaml:"grad_clip"`
	LRSchedule LRSchedule `mapstructure:"lr_schedule" yaml:"lr_schedule"`
}

// LRSchedule shapes the learning rate over the run.
type LRSchedule struct {
	Name   string  `mapstructure:"name" yaml:"name"`     // constant | cosine
	Warmup int     `mapstructure:"warmup" yaml:"warmup"` // iterations of linear warm-up from 0
	MinLR  float64 `mapstructure:"min_lr" yaml:"min_lr"` // floor of the cosine decay
}

// Mollification kinds and noise schedules.
const (
	KindGaussian = "gaussian"
	KindBlur     = "blur"

	ScheduleSigmoid = "sigmoid"
	ScheduleCosine  = "cosine"
	ScheduleLinear  = "linear"
)

// Mollification configures data mollification (Tran et al. 2023): the
// training batch is mollified during the first Iterations steps (or the
// first Fraction of run.iterations when Iterations is 0) and clean after.
type Mollification struct {
	Enabled bool   `mapstructure:"enabled" yaml:"enabled"` // false: vanilla training
	Kind    string `mapstructure:"kind" yaml:"kind"`       // gaussian | blur
	// Schedule is the noise schedule γ of the Gaussian kind. Blur uses its
	// own log-spaced times (appendix B) and ignores it.
	Schedule   string          `mapstructure:"schedule" yaml:"schedule"` // sigmoid | cosine | linear
	Sigmoid    SigmoidSchedule `mapstructure:"sigmoid" yaml:"sigmoid"`
	Cosine     CosineSchedule  `mapstructure:"cosine" yaml:"cosine"`
	Blur       Blur            `mapstructure:"blur" yaml:"blur"`
	Fraction   float64         `mapstructure:"fraction" yaml:"fraction"`
	Iterations int             `mapstructure:"iterations" yaml:"iterations"` // > 0 overrides fraction
}

// Steps is the length of the mollification phase for a run of
// runIterations steps: Iterations if set, else round(Fraction·runIterations);
// 0 when mollification is disabled.
func (m Mollification) Steps(runIterations int) int {
	if !m.Enabled {
		return 0
	}
	if m.Iterations > 0 {
		return m.Iterations
	}
	return int(m.Fraction*float64(runIterations) + 0.5)
}

// SigmoidSchedule holds the parameters of appendix C's sigmoid_schedule.
type SigmoidSchedule struct {
	Tau     float64 `mapstructure:"tau" yaml:"tau"`
	Start   float64 `mapstructure:"start" yaml:"start"`
	End     float64 `mapstructure:"end" yaml:"end"`
	ClipMin float64 `mapstructure:"clip_min" yaml:"clip_min"`
}

// CosineSchedule holds the parameters of appendix C's cosine_schedule.
type CosineSchedule struct {
	NS float64 `mapstructure:"ns" yaml:"ns"`
	DS float64 `mapstructure:"ds" yaml:"ds"`
}

// Blur sets the blur scales σ_B (pixels) at the start and the end of the
// mollification phase; the heat-equation time is t = σ_B²/2.
type Blur struct {
	SigmaMax float64 `mapstructure:"sigma_max" yaml:"sigma_max"` // 0: half the image width (appendix B)
	SigmaMin float64 `mapstructure:"sigma_min" yaml:"sigma_min"` // 0.5: sub-pixel blur
}

// Eval configures evaluation during and after training.
type Eval struct {
	Every     int `mapstructure:"every" yaml:"every"` // steps between evaluations; 0: only at the end
	BatchSize int `mapstructure:"batch_size" yaml:"batch_size"`
	// MMD with an RBF kernel σ²·exp(−‖x−x'‖²/(2l)) (appendix D.4).
	MMDSamples     int     `mapstructure:"mmd_samples" yaml:"mmd_samples"`
	MMDLengthscale float64 `mapstructure:"mmd_lengthscale" yaml:"mmd_lengthscale"`
	MMDVariance    float64 `mapstructure:"mmd_variance" yaml:"mmd_variance"`
	// BPDSamples test examples for NLL / bits per dim; 0: the whole test set.
	BPDSamples int    `mapstructure:"bpd_samples" yaml:"bpd_samples"`
	FIDSamples int    `mapstructure:"fid_samples" yaml:"fid_samples"`
	FIDStats   string `mapstructure:"fid_stats" yaml:"fid_stats"` // .npz with mu, sigma of the reference set
}

// Output configures what a run writes besides metrics.
type Output struct {
	SamplesEvery    int  `mapstructure:"samples_every" yaml:"samples_every"` // 0: only at the end
	NumSamples      int  `mapstructure:"num_samples" yaml:"num_samples"`     // samples per image grid / scatter
	Plots           bool `mapstructure:"plots" yaml:"plots"`
	CheckpointEvery int  `mapstructure:"checkpoint_every" yaml:"checkpoint_every"` // 0: only at the end
	Keep            int  `mapstructure:"keep" yaml:"keep"`                         // checkpoints kept; 0 keeps all
	// Temperature scales the latent standard deviation of sample grids
	// (1: the model itself; flows often look better at 0.7).
	Temperature float64 `mapstructure:"temperature" yaml:"temperature"`
}

// Default returns the paper's toy experiment (appendix D.3.1): REAL-NVP
// with 5 couplings on the 2-D mixture of Gaussians, Adam 5e-4, batch 256,
// 20000 steps, Gaussian mollification with the sigmoid schedule (τ=0.7)
// for the first half of training. Every other model's block holds the
// paper's settings for that model.
func Default() Config {
	return Config{
		Run: Run{
			Name:         "realnvp_mog",
			Seed:         0,
			Device:       "auto",
			OutDir:       "runs",
			Iterations:   20000,
			LogEvery:     100,
			MaxNonFinite: 20,
		},
		Data: Data{
			Dataset:        DatasetMoG,
			Root:           "datasets",
			BatchSize:      256,
			DropLast:       true,
			Dequantization: "uniform",
			Range:          "unit",
			TrainSize:      10000,
			TestSize:       10000,
		},
		Model: Model{
			Name:      ModelRealNVP2D,
			RealNVP2D: RealNVP2D{Couplings: 5, HiddenLayers: 2, HiddenUnits: 64},
			RealNVP:   RealNVP{Scales: 2, ResBlocks: 4, Channels: 32, LogitAlpha: 0.05},
			Glow:      Glow{Levels: 3, Depth: 20, Hidden: 512, Split: "channel", Scale: "sigmoid", LearnedBase: true, Prior: "per_channel"},
			VAE: VAE{
				Latent: 256, Width: 1, Recon: "mse", Beta: 0.1, ImportanceSamples: 5,
				IAF:  IAF{Blocks: 2, HiddenLayers: 3, HiddenUnits: 128},
				HVAE: HVAE{LeapfrogSteps: 1, StepSize: 0.001, LearnStepSize: true, BetaZero: 0.3},
			},
			NVAE: NVAE{
				Channels: 128, LatentScales: 1, GroupsPerScale: 30, LatentsPerGroup: 20, CellsPerGroup: 2,
				PreprocessBlocks: 1, PreprocessCells: 2, PostprocessBlocks: 1, PostprocessCells: 2,
				Flows: 1, Mixtures: 10, UseSE: true,
				KLAnnealPortion: 0.3, KLConstPortion: 1e-4, KLConstCoeff: 1e-4, WeightDecayNorm: 1e-2,
			},
		},
		Optim: Optim{
			Name:       "adam",
			LR:         5e-4,
			Betas:      []float64{0.9, 0.999},
			Eps:        1e-8,
			LRSchedule: LRSchedule{Name: "constant"},
		},
		Mollification: Mollification{
			Enabled:  true,
			Kind:     KindGaussian,
			Schedule: ScheduleSigmoid,
			Sigmoid:  SigmoidSchedule{Tau: 0.7, Start: 0, End: 3, ClipMin: 1e-9},
			Cosine:   CosineSchedule{NS: 0.0002, DS: 0.00025},
			Blur:     Blur{SigmaMax: 0, SigmaMin: 0.5},
			Fraction: 0.5,
		},
		Eval: Eval{
			Every:          2000,
			BatchSize:      1000,
			MMDSamples:     10000,
			MMDLengthscale: 1,
			MMDVariance:    1e-4,
			BPDSamples:     0,
			FIDSamples:     50000,
		},
		Output: Output{
			SamplesEvery:    2000,
			NumSamples:      10000,
			Plots:           true,
			CheckpointEvery: 5000,
			Keep:            2,
			Temperature:     1,
		},
		Source: "defaults",
	}
}
