package experiments

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/data"
	"github.com/mollify/mollify/models"
	"github.com/mollify/mollify/nn"
	"github.com/mollify/mollify/plots"
	"github.com/mollify/mollify/train"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Images evaluates and draws an image run: validation on the test split,
// sample grids, and a strip of samples at fixed latent noise over training
// (the paper's Fig. 8).
type Images struct {
	Config    *config.Config
	Model     models.Capabilities // what the model can do (models.BuildFor)
	Device    gotch.Device
	Test      data.Dataset
	Transform data.Transform

	strip stripState
	shape [3]int
}

// stripState is the samples-over-training strip so far: it lives in
// checkpoints, so a resumed run draws the whole strip.
type stripState struct {
	Rows  [][]uint8 // per snapshot, stripCols images
	Steps []int
}

func (s *stripState) MarshalState() ([]byte, error) { return json.Marshal(s) }
func (s *stripState) UnmarshalState(b []byte) error { *s = stripState{}; return json.Unmarshal(b, s) }

// Seeds of the generators used by evaluation hooks, which run with their
// own libtorch RNG state so that they draw the same noise at every step
// and never disturb the training run's random stream.
const (
	sampleSeed = 0x5a4d504c // fixed latent noise for samples
	evalSeed   = 0x4556414c // fixed dequantization noise for validation
)

const stripCols = 8

// withSeed runs fn with libtorch's generators seeded to seed, then puts the
// run's generator state back.
func withSeed(t *train.Trainer, seed uint64, fn func() error) error {
	state, goState, err := t.RNG.State(t.Device)
	if err != nil {
		return err
	}
	if err := ts.ManualSeed(seed); err != nil {
		return err
	}
	ferr := fn()
	sc := ts.NewScope()
	defer sc.Close()
	if err := t.RNG.Restore(t.Device, state, goState); err != nil {
		return err
	}
	for _, s := range state {
		s.MustDrop()
	}
	return ferr
}

// Hooks returns validation every eval.every (and at the end) and samples
// every output.samples_every (and at the end).
func (e *Images) Hooks() []train.Hook {
	c := e.Config
	e.shape = [3]int{c.Data.Channels, c.Data.ImageSize, c.Data.ImageSize}
	return []train.Hook{
		{Name: "validate", Every: c.Eval.Every, AtEnd: true, Fn: func(t *train.Trainer, _ *train.StepStats) error {
			var vals map[string]float64
			err := withSeed(t, evalSeed, func() (err error) {
				vals, err = e.validate()
				return err
			})
			if err != nil || vals == nil {
				return err
			}
			line := fmt.Sprintf("eval step %d:", t.Steps())
			rec := map[string]any{}
			for _, k := range sortedKeys(vals) {
				line += fmt.Sprintf(" %s %.4f", k, vals[k])
				rec[k] = vals[k]
			}
			fmt.Fprintln(t.Log, line)
			return t.Metric("eval", rec)
		}},
		{Name: "samples", Every: c.Output.SamplesEvery, AtEnd: true, State: &e.strip, Fn: func(t *train.Trainer, _ *train.StepStats) error {
			return withSeed(t, sampleSeed, func() error { return e.samples(t) })
		}},
	}
}

// validate averages the model's validation metrics over the test split
// (at most eval.bpd_samples examples).
func (e *Images) validate() (out map[string]float64, err error) {
	defer nn.Recover(&err)
	n := e.Test.Len()
	if m := e.Config.Eval.BPDSamples; m > 0 && m < n {
		n = m
	}
	bs := e.Config.Eval.BatchSize
	if bs <= 0 {
		bs = e.Config.Data.BatchSize
	}
	sums := map[string]float64{}
	seen := 0
	for lo := 0; lo < n; lo += bs {
		hi := min(lo+bs, n)
		idx := make([]int, hi-lo)
		for i := range idx {
			idx[i] = lo + i
		}
		err := func() error {
			sc := ts.NewScope()
			defer sc.Close()
			x, err := tensorOf(data.Subset{Data: e.Test, Indices: idx}, e.Device, e.Transform)
			if err != nil {
				return err
			}
			var vals map[string]float64
			ts.NoGrad(func() { vals, err = e.evaluateBatch(x) })
			if err != nil {
				return err
			}
			for k, v := range vals {
				sums[k] += v * float64(hi-lo)
			}
			return nil
		}()
		if err != nil {
			return nil, err
		}
		seen += hi - lo
	}
	if len(sums) == 0 {
		return nil, nil
	}
	out = map[string]float64{}
	for k, v := range sums {
		out[k] = v / float64(seen)
	}
	if b := e.Model.BitsPerDim; b != nil {
		if nll, ok := out["nll"]; ok {
			out["bpd"] = b.BitsPerDim(nll)
		}
	}
	return out, nil
}

// evaluateBatch uses the model's own metrics when it has them (the VAEs'
// bounds), else its density; BuildFor made sure it has one of the two.
func (e *Images) evaluateBatch(x *ts.Tensor) (map[string]float64, error) {
	if m := e.Model.Evaluator; m != nil {
		vals, err := m.Evaluate(x)
		if err != nil {
			return nil, err
		}
		out := map[string]float64{}
		for k, v := range vals {
			if out[k], err = v.Float64(); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	if m := e.Model.Density; m != nil {
		lp, err := m.LogProb(x)
		if err != nil {
			return nil, err
		}
		nll, err := lp.MustMean(gotch.Float, false).MustNeg(true).Float64()
		return map[string]float64{"nll": nll}, err
	}
	return nil, fmt.Errorf("experiments: the model has neither Evaluate nor LogProb; build it with models.BuildFor, which refuses eval.every > 0 for such a model")
}

// tensorOf converts a whole (small) dataset to the model's input.
func tensorOf(ds data.Dataset, device gotch.Device, tr data.Transform) (*ts.Tensor, error) {
	c, h, w := ds.Shape()
	n := ds.Len()
	pix := make([]uint8, 0, n*c*h*w)
	for i := 0; i < n; i++ {
		p, _ := ds.Example(i)
		pix = append(pix, p...)
	}
	b := &data.Batch{Pixels: pix, Shape: [4]int{n, c, h, w}}
	return b.Tensor(device, tr)
}

// samples writes a grid of output.num_samples (at most 64) samples and
// adds a row to the strip of fixed-noise samples.
func (e *Images) samples(t *train.Trainer) (err error) {
	defer nn.Recover(&err)
	s := e.Model.Sampler
	if s == nil {
		return fmt.Errorf("experiments: the model cannot sample; build it with models.BuildFor, which refuses output.samples_every > 0 for such a model")
	}
	n := min(max(e.Config.Output.NumSamples, stripCols), 64)
	sc := ts.NewScope()
	defer sc.Close()
	var x *ts.Tensor
	ts.NoGrad(func() { x, err = s.Sample(int64(n), e.Config.Output.Temperature) })
	if err != nil {
		return err
	}
	u8, err := e.Transform.Quantize(x)
	if errors.Is(err, data.ErrNonFiniteSamples) {
		// A diverged model is a result, not a crash: no image of garbage,
		// a warning and a record instead.
		fmt.Fprintf(t.Log, "warning: samples at step %d not written: %v\n", t.Steps(), err)
		return t.Metric("samples", map[string]any{"nonfinite": true, "error": err.Error()})
	}
	if err != nil {
		return err
	}
	pix, err := u8.MustTo(gotch.CPU, false).Bytes()
	if err != nil {
		return err
	}
	C, H, W := e.shape[0], e.shape[1], e.shape[2]
	cols := int(math.Ceil(math.Sqrt(float64(n))))
	img, err := plots.ImageGrid(pix, n, C, H, W, cols, 2)
	if err != nil {
		return err
	}
	gridPath := filepath.Join(t.Dir, "samples", fmt.Sprintf("step-%09d.png", t.Steps()))
	if err := plots.SavePNG(gridPath, img); err != nil {
		return err
	}
	// The same PNG, byte for byte, goes to TensorBoard (run.tensorboard).
	if png, err := os.ReadFile(gridPath); err != nil {
		return err
	} else if err := t.Image("samples", png); err != nil {
		return err
	}
	e.strip.Rows = append(e.strip.Rows, pix[:stripCols*C*H*W])
	e.strip.Steps = append(e.strip.Steps, t.Steps())
	var all []uint8
	for _, row := range e.strip.Rows {
		all = append(all, row...)
	}
	strip, err := plots.ImageGrid(all, len(e.strip.Rows)*stripCols, C, H, W, stripCols, 2)
	if err != nil {
		return err
	}
	return plots.SavePNG(filepath.Join(t.Dir, "samples_over_training.png"), strip)
}

func sortedKeys(m map[string]float64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
