package mollification

import (
	"fmt"
	"math"

	"github.com/mollify/mollify/config"
)

// Schedule is a noise schedule γ: the variance σ² of the Gaussian
// mollification at progress u = t/T ∈ [0, 1], decreasing from ~1 to ~0.
type Schedule interface {
	Sigma2(u float64) float64
	String() string
}

// Sigmoid is appendix C's sigmoid_schedule, clipped to [ClipMin, 1] as in
// the authors' code. The paper's default is Tau 0.7, Start 0, End 3,
// ClipMin 1e-9.
type Sigmoid struct {
	Tau, Start, End, ClipMin float64
}

// DefaultSigmoid returns the paper's sigmoid schedule (τ = 0.7).
func DefaultSigmoid() Sigmoid { return Sigmoid{Tau: 0.7, Start: 0, End: 3, ClipMin: 1e-9} }

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// Sigma2 returns (v_end − sigmoid((u·(end−start)+start)/τ)) / (v_end − v_start),
// clipped to [ClipMin, 1].
func (s Sigmoid) Sigma2(u float64) float64 {
	vStart := sigmoid(s.Start / s.Tau)
	vEnd := sigmoid(s.End / s.Tau)
	out := (vEnd - sigmoid((u*(s.End-s.Start)+s.Start)/s.Tau)) / (vEnd - vStart)
	return math.Min(math.Max(out, s.ClipMin), 1)
}

func (s Sigmoid) String() string {
	return fmt.Sprintf("sigmoid(tau=%g, start=%g, end=%g, clip_min=%g)", s.Tau, s.Start, s.End, s.ClipMin)
}

// Cosine is appendix C's cosine_schedule, cos(((u+NS)/(1+DS))·π/2)²,
// unclipped as in the paper. The default is NS 0.0002, DS 0.00025.
type Cosine struct {
	NS, DS float64
}

// Sigma2 returns cos(((u + NS)/(1 + DS))·π/2)².
func (c Cosine) Sigma2(u float64) float64 {
	v := math.Cos(((u + c.NS) / (1 + c.DS)) * math.Pi / 2)
	return v * v
}

func (c Cosine) String() string { return fmt.Sprintf("cosine(ns=%g, ds=%g)", c.NS, c.DS) }

// Linear is appendix C's linear_schedule, 1 − u (σ² reaches 0 at u = 1).
type Linear struct{}

// Sigma2 returns 1 − u.
func (Linear) Sigma2(u float64) float64 { return 1 - u }

func (Linear) String() string { return "linear" }

// LogSNR is log(α²/σ²) = log((1−σ²)/σ²) of the variance-preserving
// mollification: −Inf at σ² = 1, +Inf at σ² = 0.
func LogSNR(sigma2 float64) float64 { return math.Log1p(-sigma2) - math.Log(sigma2) }

// NewSchedule builds the schedule named by m.Schedule with its parameters.
func NewSchedule(m config.Mollification) (Schedule, error) {
	switch m.Schedule {
	case config.ScheduleSigmoid:
		s := Sigmoid{Tau: m.Sigmoid.Tau, Start: m.Sigmoid.Start, End: m.Sigmoid.End, ClipMin: m.Sigmoid.ClipMin}
		if !(s.Tau > 0) || !(s.End > s.Start) || !(s.ClipMin >= 0 && s.ClipMin < 1) {
			return nil, fmt.Errorf("mollification: invalid sigmoid schedule %v: need tau > 0, end > start and clip_min in [0, 1)", s)
		}
		return s, nil
	case config.ScheduleCosine:
		c := Cosine{NS: m.Cosine.NS, DS: m.Cosine.DS}
		if !(c.NS >= 0) || !(c.DS >= 0) || c.NS > 1+c.DS {
			return nil, fmt.Errorf("mollification: invalid cosine schedule %v: need 0 <= ns <= 1 + ds and ds >= 0", c)
		}
		return c, nil
	case config.ScheduleLinear:
		return Linear{}, nil
	}
	return nil, fmt.Errorf("mollification: unknown schedule %q (want %q, %q or %q)", m.Schedule,
		config.ScheduleSigmoid, config.ScheduleCosine, config.ScheduleLinear)
}
