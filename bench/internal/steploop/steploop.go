// Package steploop times a training step the same way in every Go benchmark
// under bench/: untimed warm-up steps, an optional CPU profile of the timed
// ones, wall and CPU time, the mean loss of the last steps and, on CUDA,
// the caching allocator's peaks. It also sets up the runtime (device,
// threads, seed) the same way for each program, builds the fixed
// dequantized image set the image benchmarks cycle through and times one
// Gaussian mollification per batch. RunCaptured times the trainer's own
// captured step (train.Trainer with run.cuda_graph=on) on the same images,
// through Model and PreModel, which adapt a model built from flows or vaes.
package steploop

import (
	"flag"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/mollify/mollify/bench/internal/procstat"
	"github.com/mollify/mollify/mollification"
	"github.com/mollify/mollify/nn"
	"github.com/mollify/mollify/train"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// NewStore parses device, sets the ATen and BLAS thread count, seeds
// libtorch's and the Go generators, and returns an empty parameter store on
// that device, which the caller closes.
func NewStore(device string, threads int, seed uint64) (*nn.Store, gotch.Device, error) {
	s, err := nn.NewSetup(device, threads, seed)
	if err != nil {
		return nil, gotch.CPU, err
	}
	return s.Store, s.Device, nil
}

// Result of Run.
type Result struct {
	Seconds    float64 // wall time of the timed steps
	CPUSeconds float64 // user+system CPU time of the timed steps
	FinalLoss  float64 // mean loss of the last tail timed steps
}

// Run calls step(0..warmup-1) untimed, then step(warmup..warmup+steps-1)
// timed, profiling those into cpuProfile when it is not empty. step returns
// the step's loss; a non-finite mean of the last tail losses is an error.
func Run(warmup, steps, tail int, cpuProfile string, step func(i int) (float64, error)) (r Result, err error) {
	for i := 0; i < warmup; i++ {
		if _, err := step(i); err != nil {
			return r, err
		}
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return r, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return r, err
		}
		defer pprof.StopCPUProfile()
	}
	losses := make([]float64, 0, steps)
	start, cpu0 := time.Now(), procstat.CPUSeconds()
	for i := 0; i < steps; i++ {
		v, err := step(warmup + i)
		if err != nil {
			return r, err
		}
		losses = append(losses, v)
	}
	r.Seconds, r.CPUSeconds = time.Since(start).Seconds(), procstat.CPUSeconds()-cpu0
	r.FinalLoss, err = meanTail(losses, tail, warmup+steps)
	return r, err
}

// meanTail is the mean of the last tail losses of a run of steps steps,
// an error when it is not finite.
func meanTail(losses []float64, tail, steps int) (mean float64, err error) {
	last := losses[max(0, len(losses)-tail):]
	for _, v := range last {
		mean += v / float64(len(last))
	}
	if math.IsNaN(mean) || math.IsInf(mean, 0) {
		return mean, fmt.Errorf("the loss is %v after %d steps", mean, steps)
	}
	return mean, nil
}

// ImageSet is a fixed set of 1024 dequantized 8-bit images
// (k+u)/scale − shift, cycled through in order, one batch per step.
type ImageSet struct {
	data  *ts.Tensor
	batch int64
}

// imageSetSize is how many images an ImageSet holds.
const imageSetSize = 1024

// NewImageSet draws the images (shape c×size×size) from the seeded
// generator. Close frees them.
func NewImageSet(batch, c, size int64, scale, shift float64, dev gotch.Device) (*ImageSet, error) {
	if batch < 1 || batch > imageSetSize {
		return nil, fmt.Errorf("-batch must be in 1..%d, got %d", imageSetSize, batch)
	}
	sc := ts.NewScope()
	defer sc.Close()
	shape := []int64{imageSetSize, c, size, size}
	x := ts.MustRandint(256, shape, gotch.Float, dev).MustAdd(ts.MustRand(shape, gotch.Float, dev), true).
		MustDivScalar(ts.FloatScalar(scale), true)
	if shift != 0 {
		x = x.MustSubScalar(ts.FloatScalar(shift), true)
	}
	sc.Keep(x)
	return &ImageSet{data: x, batch: batch}, nil
}

// Batch is step i's batch, a view owned by the open scope.
func (s *ImageSet) Batch(i int) *ts.Tensor {
	return s.data.MustNarrow(0, (int64(i)*s.batch)%(imageSetSize-s.batch+1), s.batch, false)
}

// Close frees the images.
func (s *ImageSet) Close() { s.data.MustDrop() }

// MollifyMicros is the mean cost in µs of Gaussian-mollifying batch(i) at
// mid-phase (sigmoid schedule over 1000 steps, step 500), as the trainer
// does once per step, over calls calls.
func MollifyMicros(calls int, batch func(i int) *ts.Tensor) (float64, error) {
	moll, err := mollification.NewGaussian(mollification.DefaultSigmoid(), 1000)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	for i := 0; i < calls; i++ {
		sc := ts.NewScope()
		_, _, err := moll.Mollify(batch(i), 500)
		sc.Close()
		if err != nil {
			return 0, err
		}
	}
	return time.Since(start).Seconds() / float64(calls) * 1e6, nil
}

// ImageBench is one image model's training-step benchmark: an optimizer
// over the store, a fixed ImageSet of Batch×Channels×Size² images
// (k+u)/Scale − Shift cycled in order, Warmup untimed steps then Steps
// timed ones, and the cost of mollifying one batch (MollifyCalls calls).
// Mollify is for RunCaptured: Gaussian-mollify every step inside the
// captured graph.
type ImageBench struct {
	Warmup, Steps, Tail   int
	CPUProfile            string
	Batch, Channels, Size int64
	Scale, Shift          float64
	Optim                 nn.OptimConfig
	MollifyCalls          int
	Mollify               bool
}

// Run trains with loss (a scalar to minimise for a batch, in the step's
// scope) and returns the shared JSON fields of the Go benchmarks:
// steps, seconds, steps_per_s, cpu_ms_per_step, peak_rss_mb, threads,
// torch, params, live_tensors, mollify_us, mollify_share_of_step, on
// CUDA peak_alloc_mb and peak_reserved_mb; and the mean loss of the last
// Tail steps.
func (b ImageBench) Run(store *nn.Store, dev gotch.Device, loss func(x *ts.Tensor) (*ts.Tensor, error)) (fields map[string]any, final float64, err error) {
	opt, err := nn.NewOptimizer(store, b.Optim)
	if err != nil {
		return nil, 0, err
	}
	defer opt.Close()
	images, err := NewImageSet(b.Batch, b.Channels, b.Size, b.Scale, b.Shift, dev)
	if err != nil {
		return nil, 0, err
	}
	defer images.Close()
	step := func(i int) (float64, error) {
		sc := ts.NewScope()
		defer sc.Close()
		l, err := loss(images.Batch(i))
		if err != nil {
			return 0, err
		}
		l.MustBackward()
		if err := opt.Step(); err != nil {
			return 0, err
		}
		if err := opt.ZeroGrad(); err != nil {
			return 0, err
		}
		v, err := l.Float64()
		if err == nil && (i == b.Warmup-1 || i == b.Warmup+b.Steps-1) {
			// The clock starts after the warm-up's queued work and stops
			// after the last update's, as the PyTorch twins time.
			err = syncDevice(dev)
		}
		return v, err
	}
	res, err := Run(b.Warmup, b.Steps, b.Tail, b.CPUProfile, step)
	if err != nil {
		return nil, 0, err
	}
	// Gaussian mollification of one batch, as the trainer does once per step.
	mollUS, err := MollifyMicros(b.MollifyCalls, images.Batch)
	if err != nil {
		return nil, 0, err
	}
	el, steps := res.Seconds, float64(b.Steps)
	fields = map[string]any{
		"steps": b.Steps, "seconds": el, "steps_per_s": steps / el,
		"cpu_ms_per_step": 1e3 * res.CPUSeconds / steps, "peak_rss_mb": procstat.PeakRSSMB(),
		"threads": nn.Threads(), "torch": nn.TorchVersion(), "params": store.NumParams(), "live_tensors": ts.LiveTensors(),
		"mollify_us": mollUS, "mollify_share_of_step": mollUS / (el / steps * 1e6),
	}
	addGPUMemory(fields, dev)
	return fields, res.FinalLoss, nil
}

// Flags are the flags of the Go image step benchmarks, named as in their
// PyTorch twins (bench/benchargs.py).
type Flags struct {
	Steps, Warmup, Threads int
	Batch, Channels, Size  int64
	Seed                   uint64
	Device, CPUProfile     string
	ForeachOptim           bool
	// CUDAGraph trains through train.Trainer with run.cuda_graph=on
	// (RunCaptured); Mollify Gaussian-mollifies its steps.
	CUDAGraph, Mollify bool
}

// Register adds the flags to fs with a benchmark's default steps and
// batch; optim names its optimizer for -foreach-optim's help.
func (f *Flags) Register(fs *flag.FlagSet, steps int, batch int64, optim string) {
	fs.IntVar(&f.Steps, "steps", steps, "timed steps")
	fs.IntVar(&f.Warmup, "warmup", 10, "untimed steps first")
	fs.IntVar(&f.Threads, "threads", 1, "ATen and BLAS threads")
	fs.Int64Var(&f.Batch, "batch", batch, "batch size")
	fs.Int64Var(&f.Channels, "channels", 3, "image channels")
	fs.Int64Var(&f.Size, "size", 32, "image size")
	fs.Uint64Var(&f.Seed, "seed", 0, "seed")
	fs.StringVar(&f.Device, "device", "cpu", "device")
	fs.StringVar(&f.CPUProfile, "cpuprofile", "", "write a CPU profile of the timed steps to this file (go tool pprof)")
	fs.BoolVar(&f.ForeachOptim, "foreach-optim", false, "run "+optim+" as _foreach kernels instead of the fused one-pass kernel (ablation)")
	fs.BoolVar(&f.CUDAGraph, "cuda-graph", false, "train through the trainer with run.cuda_graph=on and a capturable "+optim+", timing the replayed steps (-warmup at least 4: 3 eager steps and the capture)")
	fs.BoolVar(&f.Mollify, "mollify", true, "with -cuda-graph: Gaussian-mollify every step inside the captured graph, as in the first phase of a run (false: no mollification)")
}

// Bench is the ImageBench of these flags: images (k+u)/scale − shift.
func (f Flags) Bench(scale, shift float64, optim nn.OptimConfig, tail, mollifyCalls int) ImageBench {
	return ImageBench{Warmup: f.Warmup, Steps: f.Steps, Tail: tail, CPUProfile: f.CPUProfile,
		Batch: f.Batch, Channels: f.Channels, Size: f.Size, Scale: scale, Shift: shift, Optim: optim, MollifyCalls: mollifyCalls,
		Mollify: f.Mollify}
}

// Train runs b: eagerly with loss, or with -cuda-graph through the trainer
// with model (b.RunCaptured). It returns the JSON fields, impl (base, with
// "-graph" under -cuda-graph) included, and the mean loss of the last
// steps.
func (f Flags) Train(b ImageBench, store *nn.Store, dev gotch.Device, impl string, loss func(x *ts.Tensor) (*ts.Tensor, error), model train.Model) (fields map[string]any, final float64, err error) {
	if f.CUDAGraph {
		fields, final, err = b.RunCaptured(store, dev, model)
		impl += "-graph"
	} else {
		fields, final, err = b.Run(store, dev, loss)
	}
	if err != nil {
		return nil, 0, err
	}
	fields["impl"] = impl
	return fields, final, nil
}

// Open checks -steps and -warmup (at least minWarmup untimed steps: Glow's
// first step initialises ActNorm), applies -foreach-optim and sets up the
// device, threads, seed and an empty store.
func (f Flags) Open(minWarmup int) (*nn.Store, gotch.Device, error) {
	if f.CUDAGraph {
		minWarmup = max(minWarmup, GraphWarmup)
	}
	if f.Steps < 1 || f.Warmup < minWarmup {
		why := ""
		switch {
		case f.CUDAGraph:
			why = " (-cuda-graph: the trainer's 3 eager steps and the step that captures)"
		case minWarmup > 0:
			why = " (the first warm-up step initialises data-dependent layers such as ActNorm)"
		}
		return nil, gotch.CPU, fmt.Errorf("-steps must be positive and -warmup at least %d%s, got %d and %d", minWarmup, why, f.Steps, f.Warmup)
	}
	if f.ForeachOptim {
		ts.SetOptimFused(false)
	}
	return NewStore(f.Device, f.Threads, f.Seed)
}

// Main runs a benchmark's body on a locked OS thread (torch's state is per
// thread) and exits 1 with "name: error" when it fails.
func Main(name string, body func() error) {
	runtime.LockOSThread()
	err := func() (err error) {
		defer nn.Recover(&err)
		return body()
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}
