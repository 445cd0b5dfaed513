package train

import (
	"fmt"
	"math"

	"github.com/mollify/mollify/config"
)

// Options are what the loop needs to know about a run: its length, the
// learning-rate schedule, gradient clipping, how many bad steps it
// tolerates, and the checkpoint cadence. NewOptions builds them from a
// config; the trainer reads nothing else of it.
type Options struct {
	Iterations   int
	LR           LRSchedule
	GradClip     float64 // clip the gradient norm to this; 0: off
	MaxNonFinite int     // consecutive skipped steps before the run stops
	LogEvery     int     // progress lines and "train" metrics rows
	// CheckpointEvery steps and at the end; Keep is how many to keep
	// (0: all).
	CheckpointEvery int
	Keep            int
	// CUDAGraph is run.cuda_graph: auto, on or off (see CaptureMode).
	CUDAGraph string
	// TensorBoard is run.tensorboard: write TensorBoard event files.
	TensorBoard bool
	// SyncBatchNorm is distributed.sync_batchnorm: in a data-parallel run
	// of more than one process, batch norms normalise over the global
	// batch during training steps (syncBatchNorm).
	SyncBatchNorm bool
	// RunConfig is stored in every checkpoint's metadata (the resolved
	// config, so a checkpoint says how it was made); it may be empty.
	RunConfig string
}

// LRSchedule is a base rate with optional linear warm-up and cosine decay.
type LRSchedule struct {
	Base   float64
	Warmup int     // steps of linear warm-up from 0
	Cosine bool    // decay to Min over the steps after warm-up
	Min    float64 // floor of the cosine decay
}

// At is the learning rate of a 0-based step of a run of `total` steps.
func (s LRSchedule) At(step, total int) float64 {
	if s.Warmup > 0 && step < s.Warmup {
		return s.Base * float64(step+1) / float64(s.Warmup)
	}
	if s.Cosine {
		p := float64(step-s.Warmup) / float64(max(total-s.Warmup, 1))
		return s.Min + 0.5*(s.Base-s.Min)*(1+math.Cos(math.Pi*min(p, 1)))
	}
	return s.Base
}

// NewOptions takes the trainer's settings from a validated config.
func NewOptions(c *config.Config) (Options, error) {
	y, err := c.YAML()
	if err != nil {
		return Options{}, fmt.Errorf("train: %w", err)
	}
	s := c.Optim.LRSchedule
	return Options{
		Iterations:      c.Run.Iterations,
		LR:              LRSchedule{Base: c.Optim.LR, Warmup: s.Warmup, Cosine: s.Name == "cosine", Min: s.MinLR},
		GradClip:        c.Optim.GradClip,
		MaxNonFinite:    c.Run.MaxNonFinite,
		LogEvery:        max(c.Run.LogEvery, 1),
		CheckpointEvery: c.Output.CheckpointEvery,
		Keep:            c.Output.Keep,
		CUDAGraph:       c.Run.CUDAGraph,
		TensorBoard:     c.Run.TensorBoard,
		SyncBatchNorm:   c.Distributed.SyncBatchNorm,
		RunConfig:       string(y),
	}, nil
}

// StandardHooks are the trainer's own hooks for these options: progress,
// "train" metrics rows and checkpoints.
func (o Options) StandardHooks() []Hook {
	return []Hook{ProgressHook(o.LogEvery), MetricsHook(o.LogEvery), CheckpointHook(o.CheckpointEvery)}
}
