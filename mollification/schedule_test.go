package mollification

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/mollify/mollify/config"
)

func scheduleOf(t *testing.T, name string, p map[string]float64) Schedule {
	t.Helper()
	m := config.Default().Mollification
	m.Schedule = name
	m.Sigmoid = config.SigmoidSchedule{Tau: p["tau"], Start: p["start"], End: p["end"], ClipMin: p["clip_min"]}
	m.Cosine = config.CosineSchedule{NS: p["ns"], DS: p["ds"]}
	s, err := NewSchedule(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The schedules match appendix C's Python, as run by gen_golden.py.
func TestSchedulesMatchAppendixC(t *testing.T) {
	g := loadGolden(t)
	for _, c := range g.Schedules.Cases {
		s := scheduleOf(t, c.Name, c.Params)
		for i, step := range g.Schedules.Steps {
			u := float64(step) / float64(g.Schedules.T)
			if got, want := s.Sigma2(u), c.Sigma2[i]; math.Abs(got-want) > 1e-9 {
				t.Errorf("%v: γ(%g) = %.12g, Python gives %.12g", s, u, got, want)
			}
		}
	}
}

func TestSchedulesDecreaseFromOneToZero(t *testing.T) {
	for _, s := range []Schedule{DefaultSigmoid(), Sigmoid{Tau: 0.2, End: 3, ClipMin: 1e-9}, Cosine{NS: 0.0002, DS: 0.00025}, Linear{}} {
		prev := math.Inf(1)
		for i := 0; i <= 1000; i++ {
			v := s.Sigma2(float64(i) / 1000)
			if v > prev {
				t.Fatalf("%v increases at u=%g: %g > %g", s, float64(i)/1000, v, prev)
			}
			prev = v
		}
		if v := s.Sigma2(0); math.Abs(v-1) > 1e-6 {
			t.Errorf("%v: γ(0) = %g, want 1", s, v)
		}
		if v := s.Sigma2(1); v > 1e-8 {
			t.Errorf("%v: γ(1) = %g, want ~0", s, v)
		}
	}
}

func TestLogSNR(t *testing.T) {
	tests := []struct{ sigma2, want float64 }{
		{0.5, 0},
		{0.188, math.Log(0.812 / 0.188)},
		{1e-9, math.Log((1 - 1e-9) / 1e-9)},
		{1, math.Inf(-1)},
		{0, math.Inf(1)},
	}
	for _, tc := range tests {
		if got := LogSNR(tc.sigma2); !(got == tc.want || math.Abs(got-tc.want) < 1e-12) {
			t.Errorf("LogSNR(%g) = %g, want %g", tc.sigma2, got, tc.want)
		}
	}
}

func TestNewScheduleErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(*config.Mollification)
		want string
	}{
		{"unknown", func(m *config.Mollification) { m.Schedule = "sigmod" }, `unknown schedule "sigmod"`},
		{"zero tau", func(m *config.Mollification) { m.Sigmoid.Tau = 0 }, "need tau > 0"},
		{"end before start", func(m *config.Mollification) { m.Sigmoid.Start = 3; m.Sigmoid.End = 0 }, "end > start"},
		{"negative ns", func(m *config.Mollification) { m.Schedule = "cosine"; m.Cosine.NS = -1 }, "invalid cosine schedule"},
	}
	for _, tc := range tests {
		m := config.Default().Mollification
		tc.edit(&m)
		if _, err := NewSchedule(m); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
}

// The paper's sigmoid schedule (τ = 0.7) at t/T = 0, .1, .25, .5, .75, .9, 1.
func ExampleSigmoid() {
	s := DefaultSigmoid()
	for _, u := range []float64{0, 0.1, 0.25, 0.5, 0.75, 0.9, 1} {
		fmt.Printf("%.3g ", s.Sigma2(u))
	}
	// Output: 1 0.783 0.497 0.188 0.0515 0.0146 1e-09
}
