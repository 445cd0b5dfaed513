package mollification

import (
	"fmt"

	"github.com/sugarme/gotch/ts"
)

// Gaussian is the variance-preserving Gaussian mollifier (Algorithm 1):
// x̃ = √(1−σ²)·x + σ·ε with σ² = γ(step/T) for step < T.
type Gaussian struct {
	schedule Schedule
	phase
}

// NewGaussian mollifies the first steps steps with schedule s.
func NewGaussian(s Schedule, steps int) (*Gaussian, error) {
	if s == nil {
		return nil, fmt.Errorf("mollification: NewGaussian needs a schedule")
	}
	if steps < 0 {
		return nil, fmt.Errorf("mollification: the mollification phase must last >= 0 steps, got %d", steps)
	}
	return &Gaussian{schedule: s, phase: phase{steps}}, nil
}

// Schedule returns the noise schedule.
func (g *Gaussian) Schedule() Schedule { return g.schedule }

// Steps is the length of the mollification phase.
func (g *Gaussian) Steps() int { return g.steps }

// At returns σ² of a step.
func (g *Gaussian) At(step int) Info {
	u, active := g.progress(step)
	if !active {
		return Info{Kind: KindGaussian, Progress: 1}
	}
	return Info{Kind: KindGaussian, Active: true, Progress: u, Sigma2: g.schedule.Sigma2(u)}
}

// Mollify returns √(1−σ²)·x + σ·ε on x's device and dtype, drawing ε from
// libtorch's generator; x keeps any shape.
func (g *Gaussian) Mollify(x *ts.Tensor, step int) (out *ts.Tensor, info Info, err error) {
	if err := checkStep(step); err != nil {
		return nil, Info{}, err
	}
	info = g.At(step)
	defer recoverTorch(&err, "Gaussian mollification")
	if !info.Active {
		return x.MustShallowClone(), info, nil
	}
	return gaussianMix(x, info.Sigma2), info, nil
}

// gaussianMix returns √(1−σ²)·x + σ·ε: randn, two scalings and one add.
func gaussianMix(x *ts.Tensor, sigma2 float64) *ts.Tensor {
	a, s := gaussianScales(sigma2)
	eps := x.MustRandnLike(false)
	eps.MustMulScalar_(ts.FloatScalar(s))
	out := x.MustMulScalar(ts.FloatScalar(a), false)
	out.MustAdd_(eps)
	return out
}

// Close does nothing: a Gaussian holds no tensors.
func (g *Gaussian) Close() {}
