package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"time"

	"github.com/mollify/mollify/mollification"
	"github.com/mollify/mollify/nn"
	"github.com/mollify/mollify/train/dist"
	"github.com/mollify/mollify/train/tensorboard"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Model is what the loop trains.
type Model interface {
	// Loss returns the loss of a batch (already mollified, on the device)
	// and named scalar terms for the metrics (nn.Loss; terms may be nil).
	// Tensors belong to the caller's scope.
	Loss(x *ts.Tensor) (nn.Loss, error)
}

// Batches yields the training batch of a 0-based step, on the device, in
// the caller's scope. The batch must be a function of the step (and the
// seed) so that a resumed run sees the same data.
type Batches interface {
	Batch(step int) (*ts.Tensor, error)
}

// StepStats describes one step for hooks.
type StepStats struct {
	Step     int // 0-based index of the step just run
	Loss     float64
	Terms    map[string]float64
	Moll     mollification.Info
	Skipped  bool    // the loss or gradient was not finite; no update
	GradNorm float64 // NaN unless gradient clipping is on
	LR       float64
	StepTime time.Duration
	DataWait time.Duration // time spent waiting for the batch
}

// Hook runs after steps: every Every steps (when (step+1)%Every == 0) and,
// with AtEnd, after the last step. Hooks run in Priority order (lower
// first; equal priorities keep the order of Trainer.Hooks) and open their
// own scopes.
//
// A hook that accumulates over the run (a curve, a strip of samples, a
// figure's snapshots) keeps that in State, which every checkpoint saves
// under the hook's Name and Resume restores, so a resumed run writes the
// same outputs as an uninterrupted one. Resume runs when a checkpoint has
// been loaded (its State already restored); Start runs once before the
// first step of Run (after any resume); End runs once when Run returns,
// with the error that ends it, so that a hook can record a failed or
// diverged run.
//
// In a data-parallel run (Trainer.Dist) hooks run on rank 0 only, and
// draw their noise from a stream of their own (rngstreams.go), so the
// ranks' training noise stays in step. AllRanks hooks run on every rank
// (the checkpoint, whose collective gathers every rank's state): they
// must make the same collectives on each.
type Hook struct {
	Name     string
	Priority int
	Every    int
	AtEnd    bool
	AllRanks bool
	Fn       func(t *Trainer, s *StepStats) error
	Resume   func(t *Trainer) error
	Start    func(t *Trainer) error
	End      func(t *Trainer, runErr error) error
	State    HookState
}

// Priorities of the trainer's own hooks. Checkpoints come last, so that a
// checkpoint holds every record and state change of its step.
const (
	PriorityLog        = -100
	PriorityDefault    = 0
	PriorityCheckpoint = 1000
)

// HookState is the part of a hook that lives in checkpoints.
type HookState interface {
	MarshalState() ([]byte, error)
	UnmarshalState([]byte) error
}

// Trainer holds one run.
type Trainer struct {
	Options   Options
	Dir       string
	Device    gotch.Device
	Store     *nn.Store
	Model     Model
	Optim     *nn.Optimizer
	Mollifier mollification.Mollifier
	Data      Batches
	RNG       *nn.RNG
	Hooks     []Hook
	Log       io.Writer // progress output; os.Stderr by default

	step      int // steps done
	nonFinite int // consecutive skipped steps
	skipped   int // skipped steps in total
	metrics   *os.File
	board     *tensorboard.Writer // TensorBoard events of this RunUntil (tensorboard_hook.go)
	lastCkpt  string
	buffers   *nn.BufferSnapshot // model buffers before the current step
	termNames []string           // the loss terms of an eager step, sorted
	captured  *captured          // the captured step, once captured

	// Graphs captures the step when Options.CUDAGraph allows it; nil
	// means CUDA graphs on a CUDA device (tests set an emulation).
	Graphs Grapher

	// Dist is the data-parallel group (distributed.go); nil for one
	// process. Data and Mollifier must then serve this rank's slice of
	// each global batch (data's Shard, mollification.Shard).
	Dist   *dist.Group
	synced bool // parameters broadcast, gradients allocated

	// hookRNG is the hooks' generator stream while training runs;
	// trainRNG the training stream while hooks run (rngstreams.go).
	hookRNG, trainRNG map[int]*ts.Tensor
}

// ErrNonFinite is wrapped by the error that stops a run after too many
// consecutive NaN/Inf steps.
var ErrNonFinite = errors.New("loss or gradient not finite")

// Steps returns how many steps are done.
func (t *Trainer) Steps() int { return t.step }

// Skipped returns how many steps were skipped for non-finite values.
func (t *Trainer) Skipped() int { return t.skipped }

const metricsName = "metrics.jsonl"

func (t *Trainer) logger() io.Writer {
	if t.Log == nil {
		return os.Stderr
	}
	return t.Log
}

// Metric appends a record to metrics.jsonl with the current step, and
// its numbers to the TensorBoard event file (run.tensorboard).
func (t *Trainer) Metric(kind string, values map[string]any) error {
	if !t.Leader() {
		return nil // rank 0 writes the run's records
	}
	if t.metrics == nil {
		f, err := os.OpenFile(filepath.Join(t.Dir, metricsName), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("train: opening metrics: %w", err)
		}
		t.metrics = f
	}
	now := time.Now()
	rec := map[string]any{"kind": kind, "step": t.step, "time": now.UTC().Format(time.RFC3339Nano)}
	for k, v := range values {
		if f, ok := v.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
			v = fmt.Sprint(f) // JSON has no NaN
		}
		rec[k] = v
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if _, err = t.metrics.Write(append(b, '\n')); err != nil {
		return err
	}
	return t.boardScalars(kind, values, now)
}

// lrAt is the learning rate of a 0-based step under the schedule.
func (t *Trainer) lrAt(step int) float64 { return t.Options.LR.At(step, t.Options.Iterations) }

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// Preprocessor is a model whose density lives in a space other than the
// data's (RealNVP's logit space). The trainer maps each batch there first
// and mollifies it there, so that mollification smooths the density the
// model fits; Loss then receives model-space batches. LogDet is
// log|det ∂y/∂x| per example, in nats; evaluation in data space adds it.
type Preprocessor interface {
	Preprocess(x *ts.Tensor) (y, logDet *ts.Tensor, err error)
}

// Stepper is a model whose schedule follows the trainer's step count
// (NVAE's KL warm-up). SetStep gets the 0-based step before each step's
// loss, eager or replayed, skipped steps counted; it may write device
// tensors in place but must not read them back (it runs outside any
// captured graph, as SetLR does).
type Stepper interface {
	SetStep(step int) error
}

// trainStep runs one step in its own scope.
func (t *Trainer) trainStep(step int, graphs bool) (st StepStats, err error) {
	sc := ts.NewScope()
	defer sc.Close()
	defer nn.Recover(&err)
	st = StepStats{Step: step, GradNorm: math.NaN(), LR: t.lrAt(step)}
	rowNoiseOff, err := t.keyRowNoise()
	if err != nil {
		return st, err
	}
	defer rowNoiseOff()
	defer t.syncBatchNorm()()
	start := time.Now()
	x, err := t.Data.Batch(step)
	if err != nil {
		return st, fmt.Errorf("train: batch for step %d: %w", step, err)
	}
	st.DataWait = time.Since(start)
	if m, ok := t.Model.(Stepper); ok {
		if err := m.SetStep(step); err != nil {
			return st, fmt.Errorf("train: step %d: %w", step, err)
		}
	}
	if graphs {
		if ok, err := t.capturedStep(x, &st, start); ok || err != nil {
			return st, err
		}
	}
	return t.eagerStep(x, st, start)
}

// eagerStep runs one step op by op (the batch x is already on the device).
func (t *Trainer) eagerStep(x *ts.Tensor, st StepStats, start time.Time) (_ StepStats, err error) {
	step := st.Step
	if t.captured != nil {
		// The gradients live in the captured graphs' memory: they are
		// zeroed in place, never freed.
		t.zeroGradsInPlace()
	}
	if p, ok := t.Model.(Preprocessor); ok {
		if x, _, err = p.Preprocess(x); err != nil {
			return st, fmt.Errorf("train: step %d: %w", step, err)
		}
	}
	xm, info, err := t.Mollifier.Mollify(x, step)
	if err != nil {
		return st, err
	}
	st.Moll = info
	// The forward pass updates batch-norm statistics in place; a step that
	// is thrown away must not leave them changed.
	if err := t.buffers.Save(); err != nil {
		return st, err
	}
	skip := func() (StepStats, error) {
		st.Skipped = true
		st.StepTime = time.Since(start)
		if err := t.buffers.Restore(); err != nil {
			return st, err
		}
		return st, t.zeroGrads()
	}
	loss, err := t.Model.Loss(xm)
	if err != nil {
		return st, fmt.Errorf("train: step %d: %w", step, err)
	}
	if t.distributed() {
		if err := t.eagerReduce(loss, &st); err != nil {
			return st, err
		}
		if !finite(st.Loss) {
			return skip()
		}
	} else {
		if st.Loss, err = loss.Total.Float64(); err != nil {
			return st, err
		}
		if len(loss.Terms) > 0 {
			st.Terms = make(map[string]float64, len(loss.Terms))
			for k, v := range loss.Terms {
				st.Terms[k], _ = v.Float64()
			}
		}
		if !finite(st.Loss) {
			return skip()
		}
		loss.Total.MustBackward()
	}
	// A capturable optimizer clips as the captured step does (the norm as
	// a device tensor, the factor inside the update), so eager and captured
	// steps of a run compute the same numbers.
	var norm *ts.Tensor
	if clip := t.Options.GradClip; clip > 0 {
		if t.Optim.Capturable() {
			if norm, err = t.Optim.GradNorm(); err == nil {
				st.GradNorm, err = norm.Float64()
			}
		} else {
			st.GradNorm, err = t.Optim.ClipGradNorm(clip)
		}
		if err != nil {
			return st, err
		}
		if !finite(st.GradNorm) {
			return skip()
		}
	}
	if len(st.Terms) > 0 && t.termNames == nil {
		for k := range st.Terms {
			t.termNames = append(t.termNames, k)
		}
		sort.Strings(t.termNames)
	}
	t.Optim.SetLR(st.LR)
	if norm != nil {
		err = t.Optim.StepClipped(norm, t.Options.GradClip)
	} else {
		err = t.Optim.Step()
	}
	if err != nil {
		return st, err
	}
	if err := t.zeroGrads(); err != nil {
		return st, err
	}
	st.StepTime = time.Since(start)
	return st, nil
}

// zeroGrads drops the gradients after an eager step. Once they belong to
// captured graphs they are never freed: every later step (a replay, or
// eagerStep) zeroes them in place before its backward. A distributed run
// keeps them too (the all-reduce needs every gradient defined, the same
// on every rank) and zeroes them in place.
func (t *Trainer) zeroGrads() error {
	if t.captured != nil {
		return nil
	}
	if t.distributed() {
		t.zeroGradsInPlace()
		return nil
	}
	return t.Optim.ZeroGrad()
}

// eagerReduce runs the backward of a distributed eager step whatever the
// loss (every rank must join the all-reduce) and averages the gradients,
// the loss and the terms over the ranks.
func (t *Trainer) eagerReduce(loss nn.Loss, st *StepStats) error {
	if t.termNames == nil && len(loss.Terms) > 0 {
		for k := range loss.Terms {
			t.termNames = append(t.termNames, k)
		}
		sort.Strings(t.termNames)
	}
	summary, err := eagerSummary(loss, t.termNames)
	if err != nil {
		return err
	}
	loss.Total.MustBackward()
	if err := t.reduceStep(summary); err != nil {
		return err
	}
	vals := summary.Float64Values()
	st.Loss = vals[0]
	if len(t.termNames) > 0 {
		st.Terms = make(map[string]float64, len(t.termNames))
		for i, k := range t.termNames {
			st.Terms[k] = vals[1+i]
		}
	}
	return nil
}

func (t *Trainer) zeroGradsInPlace() {
	for _, p := range t.Store.Parameters() {
		p.ZeroGrad()
	}
}

// Run trains until Options.Iterations steps are done, calling the hooks. It can
// be called on a resumed trainer.
func (t *Trainer) Run() error { return t.RunUntil(t.Options.Iterations) }

// orderedHooks returns the hooks sorted by priority, stable.
func (t *Trainer) orderedHooks() ([]Hook, error) {
	hooks := append([]Hook(nil), t.Hooks...)
	sort.SliceStable(hooks, func(i, j int) bool { return hooks[i].Priority < hooks[j].Priority })
	seen := map[string]bool{}
	for _, h := range hooks {
		if h.State != nil && seen[h.Name] {
			return nil, fmt.Errorf("train: two hooks named %q keep state; their checkpointed states would collide", h.Name)
		}
		seen[h.Name] = true
	}
	return hooks, nil
}

// RunUntil trains until `stop` steps are done (at most Options.Iterations),
// as if the run were interrupted there: the mollification phase and the
// hooks still follow Options.Iterations. End callbacks run either way.
func (t *Trainer) RunUntil(stop int) (err error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if t.Log == nil {
		t.Log = os.Stderr
	}
	hooks, err := t.rankHooks()
	if err != nil {
		return err
	}
	defer func() {
		for _, h := range hooks {
			if h.End != nil {
				if e := h.End(t, err); e != nil {
					err = errors.Join(err, fmt.Errorf("train: hook %s at the end: %w", h.Name, e))
				}
			}
		}
		if t.metrics != nil {
			t.metrics.Close()
			t.metrics = nil
		}
		err = errors.Join(err, t.closeBoard())
	}()
	if t.Leader() {
		if err := t.openBoard(); err != nil {
			return err
		}
	}
	if err := t.checkSameStep(); err != nil {
		return err
	}
	if err := t.syncStart(); err != nil {
		return err
	}
	if err := t.initHookStream(); err != nil {
		return err
	}
	if t.buffers == nil {
		if t.buffers, err = t.Store.NewBufferSnapshot(); err != nil {
			return err
		}
	}
	if err := t.onHookStream(func() error {
		for _, h := range hooks {
			if h.Start != nil {
				if err := h.Start(t); err != nil {
					return fmt.Errorf("train: hook %s at the start: %w", h.Name, err)
				}
			}
		}
		return nil
	}); err != nil {
		return err
	}
	total := t.Options.Iterations
	maxBad := t.Options.MaxNonFinite
	stop = min(stop, total)
	graphs, err := t.startCapture()
	if err != nil {
		return err
	}
	first := t.step
	for t.step < stop {
		step := t.step
		st, err := t.trainStep(step, graphs && step-first >= captureWarmup)
		if err != nil {
			return err
		}
		t.step++
		if st.Skipped {
			t.nonFinite++
			t.skipped++
			if t.nonFinite > maxBad {
				kept := "no checkpoint was written yet"
				if t.lastCkpt != "" {
					kept = "the last good checkpoint is " + t.lastCkpt
				}
				return fmt.Errorf("train: %d consecutive steps up to step %d had a non-finite loss or gradient: %w (lower optim.lr, set optim.grad_clip, or raise run.max_nonfinite; %s)",
					t.nonFinite, step, ErrNonFinite, kept)
			}
		} else {
			t.nonFinite = 0
		}
		if err := t.runHooks(hooks, &st, step, total); err != nil {
			return err
		}
	}
	return nil
}

// runHooks runs the hooks due after a step, on the hooks' generator
// stream.
func (t *Trainer) runHooks(hooks []Hook, st *StepStats, step, total int) (err error) {
	entered := false
	defer func() {
		if entered {
			err = errors.Join(err, t.leaveHooks())
		}
	}()
	for _, h := range hooks {
		if h.Fn != nil && (h.Every > 0 && (step+1)%h.Every == 0 || h.AtEnd && t.step == total) {
			if !entered {
				if err := t.enterHooks(); err != nil {
					return err
				}
				entered = true
			}
			if err := h.Fn(t, st); err != nil {
				return fmt.Errorf("train: hook %s at step %d: %w", h.Name, t.step, err)
			}
		}
	}
	return nil
}

// rankHooks are the ordered hooks this rank runs: all on rank 0, the
// AllRanks ones elsewhere.
func (t *Trainer) rankHooks() ([]Hook, error) {
	hooks, err := t.orderedHooks()
	if err != nil || t.Leader() {
		return hooks, err
	}
	var mine []Hook
	for _, h := range hooks {
		if h.AllRanks {
			mine = append(mine, h)
		}
	}
	return mine, nil
}

// Close frees what the trainer allocated for itself (not the store, model,
// optimizer or mollifier, which the caller owns).
func (t *Trainer) Close() {
	if t.captured != nil {
		t.captured.close()
		t.captured = nil
	}
	if t.buffers != nil {
		t.buffers.Close()
		t.buffers = nil
	}
	for _, st := range []map[int]*ts.Tensor{t.hookRNG, t.trainRNG} {
		freeStates(st)
	}
	t.hookRNG, t.trainRNG = nil, nil
}
