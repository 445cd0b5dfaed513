package steploop

import (
	"fmt"
	"os"
	"time"

	"github.com/mollify/mollify/bench/internal/procstat"
	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/mollification"
	"github.com/mollify/mollify/nn"
	"github.com/mollify/mollify/train"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Model adapts a model built directly from flows or vaes to the trainer:
// a train.Model that declares train.Capturable. LossFn is the model's
// training loss; Ready, when not nil, says whether the step can be
// captured yet (Glow: once every ActNorm has initialised on its first
// batch). It counts its Loss calls: a replayed step makes none.
type Model struct {
	LossFn func(x *ts.Tensor) (nn.Loss, error)
	Ready  func() error
	calls  *int
}

// Loss is LossFn.
func (m Model) Loss(x *ts.Tensor) (nn.Loss, error) {
	if m.calls != nil && !emulatedReplay {
		*m.calls++
	}
	return m.LossFn(x)
}

// CaptureReady is Ready, or nil without one.
func (m Model) CaptureReady() error {
	if m.Ready == nil {
		return nil
	}
	return m.Ready()
}

func (m *Model) counted() *int {
	if m.calls == nil {
		m.calls = new(int)
	}
	return m.calls
}

// PreModel is a Model that maps data to model space first
// (train.Preprocessor: RealNVP's logit); the trainer mollifies there.
type PreModel struct {
	Model
	Pre func(x *ts.Tensor) (y, logDet *ts.Tensor, err error)
}

// Preprocess is Pre.
func (m PreModel) Preprocess(x *ts.Tensor) (y, logDet *ts.Tensor, err error) { return m.Pre(x) }

// GraphWarmup is the fewest untimed steps of a captured run: the
// trainer's 3 eager steps and the step that captures the graphs.
const GraphWarmup = 4

// batches serves an ImageSet to the trainer.
type batches struct{ set *ImageSet }

func (b batches) Batch(step int) (*ts.Tensor, error) { return b.set.Batch(step), nil }

// testGrapher, when set (by tests on the CPU), stands in for CUDA graphs;
// it sets emulatedReplay while its replays rerun the step's Go code,
// which a real replay never calls.
var (
	testGrapher    train.Grapher
	emulatedReplay bool
)

// RunCaptured trains through train.Trainer with Options.CUDAGraph "on",
// the capture code of real runs: a capturable optimizer (b.Optim with
// Capturable), model (a Model or PreModel), and, when b.Mollify, the
// Gaussian mollifier over the whole run (the level a device tensor
// written before each replay, as in the first phase of a real run);
// otherwise no mollification. The trainer runs its 3 eager warm-up steps,
// captures on the next and replays after; only the last b.Steps steps,
// after b.Warmup (at least GraphWarmup), are timed, and each of them must
// have been a replay. It returns the fields of Run (without the
// mollification cost, which is inside the step) and the mean loss of the
// last Tail steps (mollified when b.Mollify).
func (b ImageBench) RunCaptured(store *nn.Store, dev gotch.Device, model train.Model) (fields map[string]any, final float64, err error) {
	if b.Warmup < GraphWarmup || b.Steps < 1 {
		return nil, 0, fmt.Errorf("-cuda-graph needs -warmup at least %d (the trainer's 3 eager steps and the step that captures) and positive -steps, got %d and %d", GraphWarmup, b.Warmup, b.Steps)
	}
	if b.CPUProfile != "" {
		return nil, 0, fmt.Errorf("-cpuprofile profiles eager steps; leave out -cuda-graph")
	}
	var calls *int
	switch m := model.(type) {
	case Model:
		calls = m.counted()
		model = m
	case PreModel:
		calls = m.counted()
		model = m
	default:
		return nil, 0, fmt.Errorf("steploop: RunCaptured takes a steploop.Model or PreModel, got %T", model)
	}
	oc := b.Optim
	oc.Capturable = true
	opt, err := nn.NewOptimizer(store, oc)
	if err != nil {
		return nil, 0, err
	}
	defer opt.Close()
	images, err := NewImageSet(b.Batch, b.Channels, b.Size, b.Scale, b.Shift, dev)
	if err != nil {
		return nil, 0, err
	}
	defer images.Close()
	iters := b.Warmup + b.Steps
	var moll mollification.Mollifier = mollification.None{}
	if b.Mollify {
		if moll, err = mollification.NewGaussian(mollification.DefaultSigmoid(), iters); err != nil {
			return nil, 0, err
		}
	}
	defer moll.Close()
	var (
		start      time.Time
		cpu0       float64
		callsAt    int
		losses     []float64
		skippedNow int
	)
	timer := train.Hook{Name: "bench", Every: 1, Fn: func(t *train.Trainer, s *train.StepStats) error {
		switch {
		case s.Step == b.Warmup-1:
			if err := syncDevice(dev); err != nil {
				return err
			}
			start, cpu0, callsAt = time.Now(), procstat.CPUSeconds(), *calls
			skippedNow = t.Skipped()
		case s.Step >= b.Warmup:
			losses = append(losses, s.Loss)
		}
		return nil
	}}
	tr := &train.Trainer{
		Options: train.Options{Iterations: iters, LR: train.LRSchedule{Base: b.Optim.LR}, MaxNonFinite: 10, CUDAGraph: config.CUDAGraphOn},
		Device:  dev, Store: store, Model: model, Optim: opt, Mollifier: moll,
		Data: batches{images}, Log: os.Stderr, Hooks: []train.Hook{timer}, Graphs: testGrapher,
	}
	defer tr.Close()
	if err := tr.Run(); err != nil {
		return nil, 0, err
	}
	if err := syncDevice(dev); err != nil {
		return nil, 0, err
	}
	el, cpu := time.Since(start).Seconds(), procstat.CPUSeconds()-cpu0
	// A replay calls no Loss.
	if eager := *calls - callsAt; eager > 0 {
		return nil, 0, fmt.Errorf("%d of the %d timed steps ran the model eagerly instead of replaying the captured graphs (is the model ready to be captured? see the trainer's log above)", eager, b.Steps)
	}
	if n := tr.Skipped() - skippedNow; n > 0 {
		return nil, 0, fmt.Errorf("%d of the %d timed steps were skipped (non-finite loss): no update ran, so the timing is not a training step's", n, b.Steps)
	}
	if final, err = meanTail(losses, b.Tail, iters); err != nil {
		return nil, 0, err
	}
	steps := float64(b.Steps)
	fields = map[string]any{
		"steps": b.Steps, "seconds": el, "steps_per_s": steps / el, "cpu_ms_per_step": 1e3 * cpu / steps,
		"peak_rss_mb": procstat.PeakRSSMB(), "threads": nn.Threads(), "torch": nn.TorchVersion(),
		"params": store.NumParams(), "live_tensors": ts.LiveTensors(), "mollified": b.Mollify,
	}
	addGPUMemory(fields, dev)
	return fields, final, nil
}
