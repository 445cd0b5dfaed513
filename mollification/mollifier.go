package mollification

import (
	"errors"
	"fmt"
	"github.com/mollify/mollify/nn"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/mollify/mollify/config"
)

// Mollifier is what the training loop calls once per step, on the batch,
// before the model sees it.
type Mollifier interface {
	// Mollify returns the batch to train on at a 0-based step: mollified
	// during the phase, x's data (a shallow copy) after it. x is not freed;
	// the result belongs to the caller's open scope.
	Mollify(x *ts.Tensor, step int) (*ts.Tensor, Info, error)
	// At describes a step without touching tensors (progress lines, plots).
	At(step int) Info
	// Steps is the length T of the mollification phase.
	Steps() int
	// Close frees device memory the mollifier holds.
	Close()
}

// Kinds reported in Info.Kind.
const (
	KindNone     = "none"
	KindGaussian = config.KindGaussian
	KindBlur     = config.KindBlur
)

// Info describes the mollification of one step, for the progress line and
// the metrics.
type Info struct {
	Kind   string // KindGaussian, KindBlur or KindNone
	Active bool   // the step's batch is mollified
	// Progress is u = step/T while active, 1 after the phase.
	Progress float64
	// Sigma2 is the Gaussian σ² = γ(u); 0 when inactive or for blur.
	Sigma2 float64
	// BlurSigma (pixels) and BlurTime = BlurSigma²/2 of the heat equation;
	// 0 when inactive or for Gaussian.
	BlurSigma, BlurTime float64
}

// LogSNR is log(α²/σ²) of a Gaussian step; +Inf for clean data.
func (i Info) LogSNR() float64 {
	if !i.Active || i.Kind != KindGaussian {
		return math.Inf(1)
	}
	return LogSNR(i.Sigma2)
}

// String is a short label for the progress line.
func (i Info) String() string {
	switch {
	case !i.Active:
		return "clean"
	case i.Kind == KindGaussian:
		return fmt.Sprintf("σ²=%.3g", i.Sigma2)
	case i.Kind == KindBlur:
		return fmt.Sprintf("blur σ=%.3gpx", i.BlurSigma)
	}
	return i.Kind
}

// phase maps a step onto the progress of a mollification phase of T steps.
type phase struct{ steps int }

func (p phase) progress(step int) (u float64, active bool) {
	if step < p.steps {
		return float64(step) / float64(p.steps), true
	}
	return 1, false
}

func checkStep(step int) error {
	if step < 0 {
		return fmt.Errorf("mollification: step %d is negative (steps are 0-based)", step)
	}
	return nil
}

// recoverTorch turns a panic of a gotch Must op into an error; Go bugs
// (runtime errors) keep their stack.
func recoverTorch(err *error, what string) { nn.RecoverValue(recover(), err, "mollification: "+what) }

// None is the vanilla-training mollifier: every step is clean.
type None struct{}

// Mollify returns a shallow copy of x.
func (None) Mollify(x *ts.Tensor, step int) (out *ts.Tensor, info Info, err error) {
	if err := checkStep(step); err != nil {
		return nil, Info{}, err
	}
	defer recoverTorch(&err, "clean batch")
	return x.MustShallowClone(), None{}.At(step), nil
}

// At reports a clean step.
func (None) At(int) Info { return Info{Kind: KindNone, Progress: 1} }

// Steps is 0.
func (None) Steps() int { return 0 }

// Close does nothing.
func (None) Close() {}

// FromConfig builds the mollifier of a run: None when mollification is
// disabled, else Gaussian or Blur over the first
// c.Mollification.Steps(c.Run.Iterations) steps. A Blur allocates its
// matrices on device (see NewBlur about scopes).
func FromConfig(c *config.Config, device gotch.Device) (Mollifier, error) {
	m := c.Mollification
	if !m.Enabled {
		return None{}, nil
	}
	steps := m.Steps(c.Run.Iterations)
	switch m.Kind {
	case config.KindGaussian:
		s, err := NewSchedule(m)
		if err != nil {
			return nil, err
		}
		return NewGaussian(s, steps)
	case config.KindBlur:
		if c.Data.Is2D() || c.Data.ImageSize <= 0 {
			return nil, fmt.Errorf("mollification: kind %q needs image data, but data.dataset %q is not NCHW images: use kind %q", m.Kind, c.Data.Dataset, config.KindGaussian)
		}
		return NewBlur(BlurOptions{
			Height: c.Data.ImageSize, Width: c.Data.ImageSize,
			SigmaMax: m.Blur.SigmaMax, SigmaMin: m.Blur.SigmaMin,
			Steps: steps, Device: device,
		})
	}
	return nil, errors.New("mollification: unknown kind " + fmt.Sprintf("%q (want %q or %q)", m.Kind, config.KindGaussian, config.KindBlur))
}
