package steploop

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/flows"
	"github.com/mollify/mollify/nn"
	"github.com/mollify/mollify/train"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// rerun stands in for CUDA graphs on the CPU: a graph reruns its function
// at each replay (train's captured path is written so that this is what a
// replay does), with emulatedReplay set so that the Loss calls of a
// replay are not counted as eager steps.
type rerun struct{ captures int }

type rerunGraph struct{ fn func() error }

func (r *rerun) Capture(_ train.Graph, fn func() error) (train.Graph, error) {
	r.captures++
	return rerunGraph{fn}, nil
}

func (g rerunGraph) Replay() error {
	emulatedReplay = true
	defer func() { emulatedReplay = false }()
	return g.fn()
}

func (rerunGraph) Close() {}

func emulate(t *testing.T) *rerun {
	r := &rerun{}
	testGrapher = r
	t.Cleanup(func() { testGrapher = nil })
	return r
}

func tinyBench() ImageBench {
	return ImageBench{Warmup: 5, Steps: 6, Tail: 3, Batch: 4, Channels: 3, Size: 8, Scale: 128, Shift: 1,
		Optim: nn.OptimConfig{Name: "adamax", LR: 1e-3}, Mollify: true}
}

// tinyGlow is a small Glow and its capture adapter, ready once its
// ActNorms have seen a batch, as bench/glow builds it.
func tinyGlow(t *testing.T) (*nn.Store, Model) {
	t.Helper()
	store := nn.NewStore(gotch.CPU)
	t.Cleanup(store.Close)
	g := config.DefaultGlow()
	g.Levels, g.Depth, g.Hidden = 2, 1, 8
	f, err := flows.NewGlow(store.Root(), g, []int64{3, 8, 8})
	if err != nil {
		t.Fatal(err)
	}
	return store, Model{
		LossFn: func(x *ts.Tensor) (nn.Loss, error) {
			lp, err := f.LogProb(x)
			if err != nil {
				return nn.Loss{}, err
			}
			return nn.Loss{Total: lp.MustMean(gotch.Float, true).MustNeg(true)}, nil
		},
		Ready: func() error {
			for _, a := range f.ActNorms() {
				if !a.IsInitialised() {
					return errors.New("ActNorm not initialised")
				}
			}
			return nil
		},
	}
}

// On the CPU, -cuda-graph fails with the trainer's reason, before any step.
func TestRunCapturedOnTheCPUSaysWhy(t *testing.T) {
	store, m := tinyGlow(t)
	_, _, err := tinyBench().RunCaptured(store, gotch.CPU, m)
	if err == nil || !strings.Contains(err.Error(), "run.cuda_graph=on, but the step cannot be captured: the device is the CPU") {
		t.Fatalf("got %v, want the trainer's CPU error", err)
	}
}

// Through emulated graphs, the trainer captures once after its eager
// warm-up, every timed step is a replay, and the run reports the fields
// bench/compare reads, with a finite loss.
func TestRunCapturedReplaysTheTimedSteps(t *testing.T) {
	store, glow := tinyGlow(t)
	r := emulate(t)
	fields, final, err := tinyBench().RunCaptured(store, gotch.CPU, glow)
	if err != nil {
		t.Fatal(err)
	}
	if r.captures != 2 { // loss+backward, then the update
		t.Errorf("%d captures, want 2", r.captures)
	}
	if math.IsNaN(final) || math.IsInf(final, 0) {
		t.Errorf("final loss %v", final)
	}
	for _, k := range []string{"steps_per_s", "cpu_ms_per_step", "seconds", "peak_rss_mb"} {
		if v, ok := fields[k].(float64); !ok || !(v > 0) {
			t.Errorf("%s = %v, want a positive number", k, fields[k])
		}
	}
	if fields["steps"] != 6 || fields["mollified"] != true {
		t.Errorf("steps %v mollified %v, want 6 and true", fields["steps"], fields["mollified"])
	}
	if _, ok := fields["peak_alloc_mb"]; ok {
		t.Error("peak_alloc_mb on the CPU")
	}
}

// A PreModel's batches go through Preprocess before the loss, as the
// trainer does with RealNVP's logit; without mollification too.
func TestRunCapturedPreModel(t *testing.T) {
	store := nn.NewStore(gotch.CPU)
	defer store.Close()
	r := config.RealNVP{Scales: 2, ResBlocks: 1, Channels: 4, LogitAlpha: 0.05}
	f, err := flows.NewRealNVP(store.Root(), r, []int64{3, 8, 8})
	if err != nil {
		t.Fatal(err)
	}
	pre := 0
	m := PreModel{
		Model: Model{LossFn: func(y *ts.Tensor) (nn.Loss, error) {
			lp, err := f.LogProbPreprocessed(y)
			if err != nil {
				return nn.Loss{}, err
			}
			return nn.Loss{Total: lp.MustMean(gotch.Float, true).MustNeg(true)}, nil
		}},
		Pre: func(x *ts.Tensor) (*ts.Tensor, *ts.Tensor, error) { pre++; return f.Preprocess(x) },
	}
	emulate(t)
	b := tinyBench()
	b.Scale, b.Shift, b.Mollify, b.Optim.Name = 256, 0, false, "adam"
	fields, _, err := b.RunCaptured(store, gotch.CPU, m)
	if err != nil {
		t.Fatal(err)
	}
	if pre < b.Warmup+b.Steps {
		t.Errorf("Preprocess ran %d times in %d steps", pre, b.Warmup+b.Steps)
	}
	if fields["mollified"] != false {
		t.Errorf("mollified = %v", fields["mollified"])
	}
}

// Steps that never replay (the model never says it is ready) are not
// timed as captured ones: the run is an error that says so.
func TestRunCapturedRefusesEagerTimedSteps(t *testing.T) {
	store, glow := tinyGlow(t)
	glow.Ready = func() error { return errors.New("never") }
	emulate(t)
	_, _, err := tinyBench().RunCaptured(store, gotch.CPU, glow)
	if err == nil || !strings.Contains(err.Error(), "6 of the 6 timed steps ran the model eagerly") {
		t.Fatalf("got %v", err)
	}
}

func TestRunCapturedChecksWarmup(t *testing.T) {
	store, glow := tinyGlow(t)
	b := tinyBench()
	b.Warmup = 3
	_, _, err := b.RunCaptured(store, gotch.CPU, glow)
	if err == nil || !strings.Contains(err.Error(), "-warmup at least 4") {
		t.Fatalf("got %v", err)
	}
}
