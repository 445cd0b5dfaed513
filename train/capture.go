package train

import (
	"fmt"
	"slices"
	"time"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/mollification"
	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Capturable is a model whose training step can be captured as a CUDA
// graph: fixed shapes, and no host reads of tensor values or branches on
// them inside Preprocess and Loss. CaptureReady returns nil when the model
// can be captured now; a model with data-dependent initialisation
// (Glow's ActNorm) is ready once its first eager step has run, and says
// why it is not otherwise. Models that do not implement it run eagerly.
type Capturable interface {
	CaptureReady() error
}

// Graph is one captured sequence of kernels.
type Graph interface {
	Replay() error
	Close()
}

// Grapher captures graphs: NewCUDAGrapher's on a GPU, RerunGrapher's on
// the CPU (tests).
type Grapher interface {
	// Capture records fn; share, when not nil, is a graph whose memory
	// pool the new one uses too (the two graphs of a step must share it).
	// fn's kernels do not run until Replay.
	Capture(share Graph, fn func() error) (Graph, error)
}

// RerunGrapher stands in for CUDA graphs where there are none (the CPU):
// a "graph" reruns its function at each replay. For a step written the way
// capture needs (results copied into tensors that outlive it, levels and
// rates read from device tensors) that is what a replay does, so the
// captured path can be tested on the CPU; it counts its captures.
type RerunGrapher struct{ Captures int }

type rerunGraph struct{ fn func() error }

// Capture stores fn; it runs at each Replay.
func (g *RerunGrapher) Capture(_ Graph, fn func() error) (Graph, error) {
	g.Captures++
	return rerunGraph{fn}, nil
}

func (r rerunGraph) Replay() error { return r.fn() }
func (rerunGraph) Close()          {}

// captureWarmup is how many eager steps run before the capture: real
// training steps that also give cuDNN and the caching allocator their
// first calls and initialise data-dependent layers.
const captureWarmup = 3

// CaptureMode resolves run.cuda_graph for a model, mollifier and device
// (cuda: the device is a GPU, or a test's Grapher stands in for one):
// whether the step will be captured, and why not. "on" where it cannot be
// is an error that says why, for cmd/train to report before training;
// "auto" falls back to eager steps with the reason.
func CaptureMode(mode string, cuda bool, m Model, moll mollification.Mollifier) (capture bool, why string, err error) {
	why = captureObstacle(cuda, m, moll)
	switch mode {
	case config.CUDAGraphOff:
		return false, "run.cuda_graph=off", nil
	case config.CUDAGraphOn:
		if why != "" {
			return false, why, fmt.Errorf("train: run.cuda_graph=on, but the step cannot be captured: %s (use run.cuda_graph=auto to fall back to eager steps)", why)
		}
		return true, "", nil
	case config.CUDAGraphAuto, "":
		return why == "", why, nil
	}
	return false, "", fmt.Errorf("train: run.cuda_graph %q: want auto, on or off", mode)
}

// SyncBatchNormCapture applies distributed.sync_batchnorm (syncBN) in a
// job of world processes to CaptureMode's decision: its collective would
// sit inside the captured forward, where c10d's wait cannot run, so "on"
// is an error and "auto" falls back to eager steps with the reason. One
// process does not synchronise and keeps the decision.
func SyncBatchNormCapture(mode string, capture bool, why string, syncBN bool, world int) (bool, string, error) {
	if !capture || !syncBN || world < 2 {
		return capture, why, nil
	}
	why = "distributed.sync_batchnorm all-reduces the batch-norm statistics inside the forward, which a captured graph cannot hold"
	if mode == config.CUDAGraphOn {
		return false, why, fmt.Errorf("train: run.cuda_graph=on, but %s (use run.cuda_graph=auto for eager steps, or distributed.sync_batchnorm=false)", why)
	}
	return false, why, nil
}

func captureObstacle(cuda bool, m Model, moll mollification.Mollifier) string {
	if !cuda {
		return "the device is the CPU (CUDA graphs capture GPU kernels)"
	}
	if _, ok := m.(Capturable); !ok {
		return fmt.Sprintf("the model (%T) does not declare that it can be captured", m)
	}
	if _, ok := moll.(mollification.Leveled); !ok && moll.Steps() > 0 {
		return fmt.Sprintf("the %s mollifier cannot take its level from a device tensor", moll.At(0).Kind)
	}
	return ""
}

// startCapture decides, at the start of Run, whether steps after the
// warm-up are replayed from graphs, and says so on the log for a GPU run.
func (t *Trainer) startCapture() (bool, error) {
	emulated := t.Graphs != nil
	cuda := t.Device.IsCuda() || emulated
	capture, why, err := CaptureMode(t.Options.CUDAGraph, cuda, t.Model, t.Mollifier)
	if err != nil {
		return false, err
	}
	if capture, why, err = SyncBatchNormCapture(t.Options.CUDAGraph, capture, why, t.Options.SyncBatchNorm, t.WorldSize()); err != nil {
		return false, err
	}
	if capture && !t.Optim.Capturable() {
		why = "the optimizer keeps its step and learning rate on the host (build it with nn.OptimConfig.Capturable)"
		if t.Options.CUDAGraph == config.CUDAGraphOn {
			return false, fmt.Errorf("train: run.cuda_graph=on, but %s", why)
		}
		capture = false
	}
	if capture && !emulated {
		g, err := NewCUDAGrapher(t.Device)
		if err != nil {
			if t.Options.CUDAGraph == config.CUDAGraphOn {
				return false, err
			}
			capture, why = false, err.Error()
		} else {
			t.Graphs = g
		}
	}
	switch {
	case capture:
		fmt.Fprintf(t.logger(), "training step: captured as CUDA graphs after %d eager warm-up steps\n", captureWarmup)
	case cuda:
		fmt.Fprintf(t.logger(), "training step: eager (%s)\n", why)
	}
	return capture, nil
}

// captured is the state of a captured step: static inputs and outputs,
// and the two graphs (forward+backward, then the update).
type captured struct {
	shape    []int64
	x        *ts.Tensor // static batch
	level    *ts.Tensor // mollification level, nil without one
	summary  *ts.Tensor // [loss, grad norm, terms...]
	terms    []string
	active   bool // graph A mollifies
	loss, up Graph
	leveled  mollification.Leveled
}

func (c *captured) close() {
	for _, g := range []Graph{c.loss, c.up} {
		if g != nil {
			g.Close()
		}
	}
	for _, t := range []*ts.Tensor{c.x, c.level, c.summary} {
		if t != nil {
			t.MustDrop()
		}
	}
}

// ensureGrads gives every parameter a zero gradient tensor, so that the
// captured backward accumulates into tensors that outlive the capture.
func ensureGrads(params []*ts.Tensor) (err error) {
	defer nn.Recover(&err)
	sc := ts.NewScope()
	defer sc.Close()
	var sum *ts.Tensor
	for _, p := range params {
		s := p.MustSum(p.DType(), false).MustMulScalar(ts.FloatScalar(0), true)
		if sum == nil {
			sum = s
		} else {
			sum = sum.MustAdd(s, true)
		}
	}
	if sum != nil {
		sum.MustBackward()
	}
	return nil
}

// capture records the step for batches shaped like x, mollified or not.
func (t *Trainer) capture(x *ts.Tensor, active bool) (err error) {
	defer nn.Recover(&err)
	c := t.captured
	if c == nil {
		c = &captured{}
		t.captured = c
		if c.leveled, _ = t.Mollifier.(mollification.Leveled); c.leveled != nil {
			sc := ts.NewScope() // the level outlives the step
			c.level, err = c.leveled.NewLevel(t.Device)
			if err == nil {
				sc.Detach(c.level)
			}
			sc.Close()
			if err != nil {
				return err
			}
		}
		if err := ensureGrads(t.Store.Parameters()); err != nil {
			return err
		}
	}
	if c.loss != nil {
		c.loss.Close()
		c.loss = nil
	}
	if c.x == nil {
		sc := ts.NewScope()
		c.x = x.MustDetachCopy(false)
		sc.Detach(c.x)
		sc.Close()
		c.shape = x.MustSize()
	}
	c.active = active
	if c.summary == nil {
		// nn.StepSummary's layout: loss, gradient norm, finite, then the
		// terms an eager step reported, sorted.
		c.terms = t.termNames
		sc := ts.NewScope()
		c.summary = ts.MustZeros([]int64{int64(3 + len(c.terms))}, gotch.Double, t.Device)
		sc.Detach(c.summary)
		sc.Close()
	}
	params := t.Store.Parameters()
	clip := t.Options.GradClip
	// A distributed step takes the norm of the averaged gradients, after
	// the all-reduce that runs between the graphs (reducedSummary).
	normInGraph := clip > 0 && !t.distributed()
	// A recapture (the phase change) shares the update graph's pool.
	c.loss, err = t.Graphs.Capture(c.up, func() (err error) {
		defer nn.Recover(&err)
		sc := ts.NewScope()
		defer sc.Close()
		for _, p := range params {
			p.ZeroGrad()
		}
		if err := t.buffers.Save(); err != nil {
			return err
		}
		in := c.x
		if p, ok := t.Model.(Preprocessor); ok {
			if in, _, err = p.Preprocess(in); err != nil {
				return err
			}
		}
		if c.active {
			if in, err = c.leveled.MollifyLevel(in, c.level); err != nil {
				return err
			}
		}
		loss, err := t.Model.Loss(in)
		if err != nil {
			return err
		}
		loss.Total.MustBackward()
		var norm *ts.Tensor
		if normInGraph {
			if norm, err = t.Optim.GradNorm(); err != nil {
				return err
			}
		}
		terms := make([]*ts.Tensor, len(c.terms))
		for i, k := range c.terms {
			if terms[i] = loss.Terms[k]; terms[i] == nil {
				return fmt.Errorf("the loss has no term %q, which an eager step reported", k)
			}
		}
		sum, err := nn.StepSummary(loss.Total.MustDetach(false), norm, detachAll(terms)...)
		if err != nil {
			return err
		}
		ts.NoGrad(func() { c.summary.Copy_(sum) })
		return nil
	})
	if err != nil {
		return fmt.Errorf("train: capturing the loss and gradient: %w", err)
	}
	if c.up != nil {
		return nil
	}
	c.up, err = t.Graphs.Capture(c.loss, func() (err error) {
		defer nn.Recover(&err)
		sc := ts.NewScope()
		defer sc.Close()
		if clip > 0 {
			norm := c.summary.MustSelect(0, 1, false).MustTotype(gotch.Float, false)
			return t.Optim.StepClipped(norm, clip)
		}
		return t.Optim.Step()
	})
	if err != nil {
		return fmt.Errorf("train: capturing the update: %w", err)
	}
	return nil
}

// capturedStep runs a step by replaying the graphs: the batch x is copied
// into the static input, the level and learning rate into their tensors,
// then one host read of the summary decides whether the update runs. The
// first call (and the first clean step after the mollification phase)
// captures. It reports false, for an eager step instead, when x does not
// have the captured shape or the model is not ready to be captured.
func (t *Trainer) capturedStep(x *ts.Tensor, st *StepStats, start time.Time) (ok bool, err error) {
	defer nn.Recover(&err)
	step := st.Step
	c := t.captured
	if c != nil && !slices.Equal(x.MustSize(), c.shape) {
		return false, nil
	}
	if c == nil {
		if m, isCap := t.Model.(Capturable); isCap {
			if err := m.CaptureReady(); err != nil {
				return false, nil // one more eager step
			}
		}
	}
	st.Moll = t.Mollifier.At(step)
	if c == nil || st.Moll.Active != c.active {
		// The first capture, or the phase changed (mollified → clean): a
		// new capture of the loss graph, without the noise.
		if err := t.capture(x, st.Moll.Active); err != nil {
			return true, err
		}
		c = t.captured
	}
	if c.leveled != nil {
		if st.Moll, err = c.leveled.SetLevel(c.level, step); err != nil {
			return true, err
		}
	}
	ts.NoGrad(func() { c.x.Copy_(x) })
	t.Optim.SetLR(st.LR)
	if err := c.loss.Replay(); err != nil {
		return true, err
	}
	if t.distributed() {
		if err := t.reducedSummary(c.summary); err != nil {
			return true, err
		}
	}
	vals, err := nn.ReadStepSummary(c.summary) // the step's one host read
	if err != nil {
		return true, err
	}
	st.Loss, st.GradNorm = vals.Loss, vals.GradNorm
	if len(c.terms) > 0 {
		st.Terms = make(map[string]float64, len(c.terms))
		for i, k := range c.terms {
			st.Terms[k] = vals.Terms[i]
		}
	}
	if !vals.Finite {
		st.Skipped = true
		st.StepTime = time.Since(start)
		return true, t.buffers.Restore()
	}
	if err := c.up.Replay(); err != nil {
		return true, err
	}
	st.StepTime = time.Since(start)
	return true, nil
}

// reducedSummary runs between the loss graph and the update graph of a
// distributed step: it averages the gradients and the summary over the
// ranks (the finite flag's mean is 1 only if every rank's loss was
// finite), then writes the norm of the averaged gradients and its
// finiteness into the summary, where the update graph reads the norm. The
// all-reduce stays outside the graphs: Gloo cannot be captured, and NCCL
// capture is left for later (docs/distributed.md).
func (t *Trainer) reducedSummary(summary *ts.Tensor) (err error) {
	defer nn.Recover(&err)
	sc := ts.NewScope()
	defer sc.Close()
	if err := t.reduceStep(summary); err != nil {
		return err
	}
	if t.Options.GradClip <= 0 {
		return nil
	}
	norm, err := t.Optim.GradNorm()
	if err != nil {
		return err
	}
	ts.NoGrad(func() {
		n := norm.MustReshape([]int64{1}, false).MustTotype(gotch.Double, false)
		summary.MustNarrow(0, 1, 1, false).Copy_(n)
		ok := summary.MustNarrow(0, 2, 1, false)
		ok.Copy_(ok.MustMul(n.MustIsfinite(false).MustTotype(gotch.Double, false), false))
	})
	return nil
}

func detachAll(xs []*ts.Tensor) []*ts.Tensor {
	out := make([]*ts.Tensor, len(xs))
	for i, x := range xs {
		out[i] = x.MustDetach(false)
	}
	return out
}
