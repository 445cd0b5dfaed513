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
	Distributed   Distributed   `mapstructure:"distributed" yaml:"distributed"`

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
	// CUDAGraph captures the training step as CUDA graphs: auto (on for a
	// CUDA device when the model and mollifier can be captured, else
	// eager, with one log line), on (an error where it cannot be), off.
	CUDAGraph string `mapstructure:"cuda_graph" yaml:"cuda_graph"`
	// TensorBoard writes TensorBoard event files into the run folder: the
	// numbers of every metrics.jsonl record and the sample grids
	// (docs/tensorboard.md).
	TensorBoard bool `mapstructure:"tensorboard" yaml:"tensorboard"`
}

// run.cuda_graph values.
const (
	CUDAGraphAuto = "auto"
	CUDAGraphOn   = "on"
	CUDAGraphOff  = "off"
)

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
	// Range of image values fed to the model: RangeUnit | RangeSigned.
	Range string `mapstructure:"range" yaml:"range"`
	// Sizes of the synthetic 2-D train and test sets (10K each in the paper).
	TrainSize int `mapstructure:"train_size" yaml:"train_size"`
	TestSize  int `mapstructure:"test_size" yaml:"test_size"`
}

// Data ranges (data.range): the interval image values are fed to the
// model in.
const (
	RangeUnit   = "unit"   // [0, 1]
	RangeSigned = "signed" // [-1, 1]
)

// Ranges lists the data ranges Validate accepts.
var Ranges = []string{RangeUnit, RangeSigned}

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
// Each block's type, its defaults, its checks and the values the model
// derives from it live together in one file per family (realnvp2d.go,
// realnvp.go, glow.go, vae.go, nvae.go); flows and vaes take that type.
type Model struct {
	Name      string    `mapstructure:"name" yaml:"name"`
	RealNVP2D RealNVP2D `mapstructure:"realnvp2d" yaml:"realnvp2d"`
	RealNVP   RealNVP   `mapstructure:"realnvp" yaml:"realnvp"`
	Glow      Glow      `mapstructure:"glow" yaml:"glow"`
	VAE       VAE       `mapstructure:"vae" yaml:"vae"`
	NVAE      NVAE      `mapstructure:"nvae" yaml:"nvae"`
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
			CUDAGraph:    CUDAGraphAuto,
			TensorBoard:  true,
		},
		Data: Data{
			Dataset:        DatasetMoG,
			Root:           "datasets",
			BatchSize:      256,
			DropLast:       true,
			Dequantization: "uniform",
			Range:          RangeUnit,
			TrainSize:      10000,
			TestSize:       10000,
		},
		Model: Model{
			Name:      ModelRealNVP2D,
			RealNVP2D: DefaultRealNVP2D(),
			RealNVP:   DefaultRealNVP(),
			Glow:      DefaultGlow(),
			VAE:       DefaultVAE(),
			NVAE:      DefaultNVAE(),
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
		Distributed: DefaultDistributed(),
		Source:      "defaults",
	}
}
