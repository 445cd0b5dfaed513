package config

import (
	"fmt"
	"math"
	"regexp"
	"strings"
)

// ValidationError lists every problem Validate found, one per line, each
// naming the key.
type ValidationError struct {
	Problems []string
}

func (e *ValidationError) Error() string {
	if len(e.Problems) == 1 {
		return "invalid config: " + e.Problems[0]
	}
	return "invalid config:\n  " + strings.Join(e.Problems, "\n  ")
}

// checker collects problems; each family's check method adds its own,
// naming keys as in the YAML (model.vae.latent).
type checker struct{ problems []string }

// err is a *ValidationError listing the problems, or nil.
func (c *checker) err() error {
	if len(c.problems) == 0 {
		return nil
	}
	return &ValidationError{Problems: c.problems}
}

func (c *checker) addf(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

func (c *checker) positive(key string, v int) {
	if v <= 0 {
		c.addf("%s must be > 0, got %d", key, v)
	}
}

func (c *checker) nonNegative(key string, v int) {
	if v < 0 {
		c.addf("%s must be >= 0, got %d", key, v)
	}
}

func (c *checker) positiveFloat(key string, v float64) {
	if !(v > 0) || math.IsInf(v, 0) {
		c.addf("%s must be a finite number > 0, got %g", key, v)
	}
}

func (c *checker) nonNegativeFloat(key string, v float64) {
	if !(v >= 0) || math.IsInf(v, 0) {
		c.addf("%s must be a finite number >= 0, got %g", key, v)
	}
}

func (c *checker) oneOf(key, v string, allowed ...string) bool {
	for _, a := range allowed {
		if v == a {
			return true
		}
	}
	c.addf("%s: unknown value %q (want %s)", key, v, orList(allowed))
	return false
}

func orList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = fmt.Sprintf("%q", x)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

var deviceRE = regexp.MustCompile(`^(auto|cpu|cuda(:[0-9]+)?)$`)

// Validate checks every field and returns a *ValidationError listing all
// problems, or nil.
func (c *Config) Validate() error {
	var k checker
	c.Run.validate(&k)
	c.Data.validate(&k)
	c.Model.validate(&k, c.Data)
	c.Optim.validate(&k, c.Run.Iterations)
	c.Mollification.validate(&k, c.Data, c.Run.Iterations)
	c.Eval.validate(&k)
	c.Output.validate(&k)
	c.Distributed.check(&k)
	if IsVAEFamily(c.Model.Name) {
		c.Model.VAE.checkMollification(&k, c.Mollification)
	}
	return k.err()
}

func (r Run) validate(k *checker) {
	if strings.TrimSpace(r.Name) == "" {
		k.addf("run.name must not be empty")
	} else if strings.ContainsAny(r.Name, `/\`) {
		k.addf("run.name %q must not contain a path separator (it names a folder under run.out_dir)", r.Name)
	}
	if !deviceRE.MatchString(r.Device) {
		k.addf("run.device: unknown device %q (want \"auto\", \"cpu\", \"cuda\" or \"cuda:N\")", r.Device)
	}
	k.nonNegative("run.threads", r.Threads)
	if r.OutDir == "" {
		k.addf("run.out_dir must not be empty")
	}
	k.positive("run.iterations", r.Iterations)
	k.positive("run.log_every", r.LogEvery)
	k.nonNegative("run.max_nonfinite", r.MaxNonFinite)
	if k.oneOf("run.cuda_graph", r.CUDAGraph, CUDAGraphAuto, CUDAGraphOn, CUDAGraphOff) && r.CUDAGraph == CUDAGraphOn && r.Device == "cpu" {
		k.addf("run.cuda_graph=on needs a CUDA device, but run.device is cpu: CUDA graphs capture GPU kernel launches and there are none to capture on the CPU; use run.cuda_graph=auto (eager on the CPU) or off")
	}
}

func (d Data) validate(k *checker) {
	if !k.oneOf("data.dataset", d.Dataset, Datasets...) {
		return
	}
	k.positive("data.batch_size", d.BatchSize)
	if d.Is2D() {
		k.positive("data.train_size", d.TrainSize)
		k.positive("data.test_size", d.TestSize)
		if d.ImageSize != 0 || d.Channels != 0 {
			k.addf("data.image_size and data.channels must be 0 for the 2-D dataset %q, got %d and %d", d.Dataset, d.ImageSize, d.Channels)
		}
		if d.HFlip {
			k.addf("data.hflip applies to images only; dataset %q is 2-D points", d.Dataset)
		}
		if d.TrainSize > 0 && d.DropLast && d.BatchSize > d.TrainSize {
			k.addf("data.batch_size %d exceeds data.train_size %d with data.drop_last: no batch would be drawn", d.BatchSize, d.TrainSize)
		}
		return
	}
	if d.ImageSize <= 0 {
		k.addf("data.image_size must be > 0 for the image dataset %q, got %d", d.Dataset, d.ImageSize)
	}
	if want := datasetChannels[d.Dataset]; d.Channels != want {
		k.addf("data.channels must be %d for dataset %q, got %d", want, d.Dataset, d.Channels)
	}
	k.oneOf("data.dequantization", d.Dequantization, "none", "uniform")
	k.oneOf("data.range", d.Range, Ranges...)
}

// checkImages is the part of Data a model built on its own (outside
// Config.Validate, which checks all of Data) needs: an image shape and a
// known range.
func (d Data) checkImages(k *checker) {
	if d.Is2D() {
		k.addf("data.dataset %q is 2-D points; the model needs images", d.Dataset)
	}
	if d.ImageSize <= 0 || d.Channels <= 0 {
		k.addf("data.image_size and data.channels must be > 0, got %d and %d", d.ImageSize, d.Channels)
	}
	k.oneOf("data.range", d.Range, Ranges...)
}

func (m Model) validate(k *checker, d Data) {
	if !k.oneOf("model.name", m.Name, Models...) {
		return
	}
	if Is2DDataset(d.Dataset) != (m.Name == ModelRealNVP2D) {
		if m.Name == ModelRealNVP2D {
			k.addf("model.name %q models 2-D points, but data.dataset %q is images (use realnvp, glow, a VAE or nvae)", m.Name, d.Dataset)
		} else {
			k.addf("model.name %q models images, but data.dataset %q is 2-D points (use realnvp2d)", m.Name, d.Dataset)
		}
	}
	switch {
	case m.Name == ModelRealNVP2D:
		m.RealNVP2D.check(k)
	case m.Name == ModelRealNVP:
		m.RealNVP.check(k, d)
	case m.Name == ModelGlow:
		m.Glow.check(k, d)
	case IsVAEFamily(m.Name):
		m.VAE.check(k, m.Name, d)
	case m.Name == ModelNVAE:
		m.NVAE.check(k)
	}
}

func (o Optim) validate(k *checker, iterations int) {
	k.oneOf("optim.name", o.Name, "adam", "adamax")
	k.positiveFloat("optim.lr", o.LR)
	if len(o.Betas) != 2 {
		k.addf("optim.betas must be a list of 2 numbers [beta1, beta2], got %v", o.Betas)
	} else {
		for i, b := range o.Betas {
			if !(b >= 0 && b < 1) {
				k.addf("optim.betas[%d] must be in [0, 1), got %g", i, b)
			}
		}
	}
	k.positiveFloat("optim.eps", o.Eps)
	k.nonNegativeFloat("optim.weight_decay", o.WeightDecay)
	k.nonNegativeFloat("optim.grad_clip", o.GradClip)
	s := o.LRSchedule
	k.oneOf("optim.lr_schedule.name", s.Name, "constant", "cosine")
	k.nonNegative("optim.lr_schedule.warmup", s.Warmup)
	if iterations > 0 && s.Warmup >= iterations {
		k.addf("optim.lr_schedule.warmup %d must be < run.iterations %d", s.Warmup, iterations)
	}
	k.nonNegativeFloat("optim.lr_schedule.min_lr", s.MinLR)
	if s.MinLR > o.LR && o.LR > 0 {
		k.addf("optim.lr_schedule.min_lr %g must not exceed optim.lr %g", s.MinLR, o.LR)
	}
}

func (m Mollification) validate(k *checker, d Data, iterations int) {
	kindOK := k.oneOf("mollification.kind", m.Kind, KindGaussian, KindBlur)
	k.oneOf("mollification.schedule", m.Schedule, ScheduleSigmoid, ScheduleCosine, ScheduleLinear)
	if !(m.Fraction >= 0 && m.Fraction <= 1) {
		k.addf("mollification.fraction must be in [0, 1], got %g", m.Fraction)
	}
	k.nonNegative("mollification.iterations", m.Iterations)
	if iterations > 0 && m.Iterations > iterations {
		k.addf("mollification.iterations %d exceeds run.iterations %d", m.Iterations, iterations)
	}
	s := m.Sigmoid
	k.positiveFloat("mollification.sigmoid.tau", s.Tau)
	if !(s.End > s.Start) {
		k.addf("mollification.sigmoid.end (%g) must be greater than mollification.sigmoid.start (%g)", s.End, s.Start)
	}
	if !(s.ClipMin >= 0 && s.ClipMin < 1) {
		k.addf("mollification.sigmoid.clip_min must be in [0, 1), got %g", s.ClipMin)
	}
	k.nonNegativeFloat("mollification.cosine.ns", m.Cosine.NS)
	k.nonNegativeFloat("mollification.cosine.ds", m.Cosine.DS)
	if m.Cosine.NS > m.Cosine.DS+1 {
		k.addf("mollification.cosine.ns %g must not exceed 1 + mollification.cosine.ds (%g): γ would not start at its maximum", m.Cosine.NS, 1+m.Cosine.DS)
	}
	b := m.Blur
	k.positiveFloat("mollification.blur.sigma_min", b.SigmaMin)
	k.nonNegativeFloat("mollification.blur.sigma_max", b.SigmaMax)
	if b.SigmaMax > 0 && b.SigmaMax <= b.SigmaMin {
		k.addf("mollification.blur.sigma_max %g must exceed mollification.blur.sigma_min %g (or be 0 for half the image width)", b.SigmaMax, b.SigmaMin)
	}
	if kindOK && m.Kind == KindBlur {
		if d.Is2D() {
			k.addf("mollification.kind \"blur\" needs image data, but data.dataset %q is 2-D points: use mollification.kind: gaussian", d.Dataset)
		} else if b.SigmaMax == 0 && d.ImageSize > 0 && float64(d.ImageSize)/2 <= b.SigmaMin {
			k.addf("mollification.blur.sigma_min %g must be below half the image width (%g)", b.SigmaMin, float64(d.ImageSize)/2)
		}
	}
	if m.Enabled && iterations > 0 && m.Steps(iterations) == 0 {
		k.addf("mollification is enabled but lasts 0 steps (mollification.fraction %g of run.iterations %d): set enabled: false or a larger fraction", m.Fraction, iterations)
	}
}

func (e Eval) validate(k *checker) {
	k.nonNegative("eval.every", e.Every)
	k.positive("eval.batch_size", e.BatchSize)
	k.nonNegative("eval.mmd_samples", e.MMDSamples)
	k.positiveFloat("eval.mmd_lengthscale", e.MMDLengthscale)
	k.positiveFloat("eval.mmd_variance", e.MMDVariance)
	k.nonNegative("eval.bpd_samples", e.BPDSamples)
	k.nonNegative("eval.fid_samples", e.FIDSamples)
}

func (o Output) validate(k *checker) {
	k.nonNegative("output.samples_every", o.SamplesEvery)
	k.nonNegative("output.num_samples", o.NumSamples)
	k.nonNegative("output.checkpoint_every", o.CheckpointEvery)
	k.nonNegative("output.keep", o.Keep)
	k.positiveFloat("output.temperature", o.Temperature)
}
