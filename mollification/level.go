package mollification

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Leveled is a mollifier whose strength at a step lives in a device
// tensor, written before the step runs, so that a training step captured
// once as a CUDA graph serves every step of the phase: MollifyLevel reads
// the level from that tensor and makes no host read.
type Leveled interface {
	Mollifier
	// NewLevel allocates a level tensor on device; the caller frees it.
	NewLevel(device gotch.Device) (*ts.Tensor, error)
	// SetLevel writes the level of a 0-based step into lvl, in place, and
	// describes the step. Clean steps (Info.Active false) leave it alone:
	// they are not mollified at all.
	SetLevel(lvl *ts.Tensor, step int) (Info, error)
	// MollifyLevel mollifies x at the level held in lvl; the result belongs
	// to the caller's scope.
	MollifyLevel(x, lvl *ts.Tensor) (*ts.Tensor, error)
}

// NewLevel allocates [√(1−σ²), σ] as float32 on device.
func (g *Gaussian) NewLevel(device gotch.Device) (lvl *ts.Tensor, err error) {
	defer recoverTorch(&err, "Gaussian level")
	return ts.MustZeros([]int64{2}, gotch.Float, device), nil
}

// SetLevel writes [√(1−σ²), σ] of a step into lvl.
func (g *Gaussian) SetLevel(lvl *ts.Tensor, step int) (info Info, err error) {
	if err := checkStep(step); err != nil {
		return Info{}, err
	}
	info = g.At(step)
	if !info.Active {
		return info, nil
	}
	defer recoverTorch(&err, "Gaussian level")
	sc := ts.NewScope()
	defer sc.Close()
	a, s := gaussianScales(info.Sigma2)
	ts.NoGrad(func() { lvl.Copy_(ts.MustOfSlice([]float32{float32(a), float32(s)})) })
	return info, nil
}

// MollifyLevel returns lvl[0]·x + lvl[1]·ε, the same operations in the same
// order as Mollify, with the two scales read on the device.
func (g *Gaussian) MollifyLevel(x, lvl *ts.Tensor) (out *ts.Tensor, err error) {
	if x == nil || lvl == nil {
		return nil, fmt.Errorf("mollification: MollifyLevel needs a batch and a level")
	}
	defer recoverTorch(&err, "Gaussian mollification")
	a, s := lvl.MustSelect(0, 0, false), lvl.MustSelect(0, 1, false)
	eps := x.MustRandnLike(false)
	eps.MustMul_(s)
	out = x.MustMul(a, false)
	out.MustAdd_(eps)
	return out, nil
}

// gaussianScales are √(1−σ²) and σ, σ² clamped to [0, 1].
func gaussianScales(sigma2 float64) (a, s float64) {
	sigma2 = math.Min(math.Max(sigma2, 0), 1)
	return math.Sqrt(1 - sigma2), math.Sqrt(sigma2)
}
