// Command train trains a model from a config:
//
//	go run ./cmd/train -config realnvp_mog
//	go run ./cmd/train -config glow_cifar10 --set run.device=cuda:0 --set optim.lr=5e-4
//	go run ./cmd/train -resume runs/realnvp_mog-20261127-101500
//	go run ./cmd/train -sweep sweeps/toy.yaml -index 3
//
// -config takes a path, or NAME for configs/NAME.yaml (also embedded in the
// binary). -resume continues the run in a folder from its newest
// checkpoint, with the config saved there; with no checkpoint yet it starts
// the run there, so a preempted job can always be restarted with the same
// command. With -resume and -config, the two must describe the same run;
// with -resume alone, --set overrides the saved config (e.g. run.device).
//
// -sweep FILE -index I trains run I of a sweep file (cmd/sweep plan lists
// them) in its folder OUT_DIR/ID, started or resumed as -resume does, and
// returns at once if the run is done; so an array task (Slurm, Kubernetes)
// can rerun the same command after a preemption. The worker holds
// OUT_DIR/ID/.lock while it runs and appends its output to train.log there.
// --set may then change only settings that leave the run id alone
// (run.device, run.threads, ...: sweep.IgnoredInID).
//
// A run that finishes writes done.json (steps, wall seconds, time) into its
// folder.
//
// Data-parallel training: started with torchrun's variables (RANK,
// WORLD_SIZE, MASTER_ADDR, MASTER_PORT; cmd/launch sets them) or Slurm's
// for more than one process, train joins a c10d group (distributed.* keys)
// and each rank trains on its slice of every data.batch_size batch; rank 0
// logs, evaluates and writes the run folder (rank 0 picks its name when
// -run-dir is not given). A rank that stops responding makes the others
// exit 1 with a one-line error (docs/distributed.md):
//
//	go run ./cmd/launch -nproc 2 -- train -config realnvp_mog -run-dir runs/mog2
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/data"
	"github.com/mollify/mollify/experiments"
	"github.com/mollify/mollify/experiments/sweep"
	"github.com/mollify/mollify/models"
	"github.com/mollify/mollify/mollification"
	"github.com/mollify/mollify/nn"
	"github.com/mollify/mollify/train"
	"github.com/mollify/mollify/train/dist"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

type setFlags []string

func (s *setFlags) String() string     { return strings.Join(*s, ",") }
func (s *setFlags) Set(v string) error { *s = append(*s, v); return nil }

func main() {
	err := run(os.Args[1:])
	if err != nil {
		// The train package's own errors already start with "train: ".
		fmt.Fprintln(os.Stderr, "train:", strings.TrimPrefix(err.Error(), "train: "))
	}
	closeRunLog() // after the error line, which a sweep's train.log must end with
	if err != nil {
		os.Exit(1)
	}
}

func run(args []string) error {
	runtime.LockOSThread()
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	name := fs.String("config", "", "config file or name under configs/ (default: demo)")
	resume := fs.String("resume", "", "run folder to resume (or start, if it has no checkpoint)")
	runDir := fs.String("run-dir", "", "run folder for a new run (default: run.out_dir/run.name-TIMESTAMP)")
	sweepFile := fs.String("sweep", "", "sweep file: train run -index of it in its sweep folder")
	index := fs.Int("index", -1, "with -sweep: the run's index (0 to runs-1; cmd/sweep plan lists them)")
	var sets setFlags
	fs.Var(&sets, "set", "override a config key: --set optim.lr=1e-3 (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (flags go before them; use --set key=value for overrides)", fs.Args())
	}
	if *sweepFile != "" || *index != -1 {
		if *name != "" || *resume != "" || *runDir != "" {
			return errors.New("-sweep picks the config and the run folder: drop -config, -resume and -run-dir (the sweep file names the base config; cmd/sweep plan shows the folders)")
		}
		return runSweep(*sweepFile, *index, sets)
	}
	var cfg *config.Config
	var err error
	dir := *resume
	if dir != "" {
		saved := filepath.Join(dir, config.ResolvedName)
		if _, statErr := os.Stat(saved); statErr == nil {
			if *name != "" {
				// Restarting a job with its original command line is fine as
				// long as it describes the same run.
				if cfg, err = config.Load(saved, nil); err == nil {
					err = sameRun(cfg, *name, sets, saved)
				}
			} else {
				// Without -config, --set overrides the saved run (e.g. the device).
				cfg, err = config.Load(saved, sets)
			}
		} else {
			cfg, err = config.Load(*name, sets)
		}
	} else {
		cfg, err = config.Load(*name, sets)
	}
	if err != nil {
		return err
	}
	if dir == "" {
		dir = *runDir // empty: a new folder named at the start (rank 0's clock)
	}
	return trainRun(cfg, dir, *resume != "", cfg.Run.Iterations)
}

// newRunDir is the folder of a new run without -run-dir.
func newRunDir(cfg *config.Config) string {
	return filepath.Join(cfg.Run.OutDir, cfg.Run.Name+"-"+time.Now().Format("20060102-150405"))
}

// trainRun trains the run in dir (empty: a new folder) until `stop` steps
// are done; tests stop early to stand for a killed job.
func trainRun(cfg *config.Config, dir string, resume bool, stop int) (err error) {
	env, err := dist.FromEnv()
	if err != nil {
		return fmt.Errorf("%w (unset the variables for a one-process run)", err)
	}
	setup, err := nn.NewSetup(cfg.Run.Device, cfg.Run.Threads, cfg.Run.Seed)
	if err != nil {
		return err
	}
	defer setup.Close()
	dev, rng, store, threads := setup.Device, setup.RNG, setup.Store, setup.Threads
	var group *dist.Group
	if env.Distributed() {
		if group, err = joinGroup(cfg, env, dev); err != nil {
			return err
		}
		defer func() { err = groupError(group, err) }()
		defer group.Close()
	}
	leader := env.Rank == 0
	if dir == "" {
		dir = newRunDir(cfg)
	}
	if group != nil {
		if dir, err = shareString(group, dir, dev); err != nil {
			return err
		}
	}
	logw := io.Writer(os.Stderr) // only rank 0 logs
	if !leader {
		logw = io.Discard
	}
	model, caps, err := models.BuildFor(cfg, store.Root())
	if err != nil {
		return err
	}
	o := cfg.Optim
	moll, err := mollification.FromConfig(cfg, dev)
	if err != nil {
		return err
	}
	defer moll.Close()
	// run.cuda_graph=on with a step that cannot be captured (a CPU device,
	// a model or mollifier that reads the host) fails here, before training.
	capture, why, err := train.CaptureMode(cfg.Run.CUDAGraph, dev.IsCuda(), model, moll)
	if err != nil {
		return err
	}
	// Nor with distributed.sync_batchnorm on several processes.
	if capture, _, err = train.SyncBatchNormCapture(cfg.Run.CUDAGraph, capture, why, cfg.Distributed.SyncBatchNorm, env.WorldSize); err != nil {
		return err
	}
	// The run folder appears once the run can start.
	if leader {
		if _, err := cfg.Save(dir); err != nil {
			return err
		}
	}
	if group != nil {
		moll, err = mollification.Shard(moll, env.Rank, env.WorldSize)
		if err != nil {
			return err
		}
	}
	oc := nn.OptimConfig{Name: o.Name, LR: o.LR, Eps: o.Eps, WeightDecay: o.WeightDecay, Capturable: capture}
	if len(o.Betas) == 2 {
		oc.Beta1, oc.Beta2 = o.Betas[0], o.Betas[1]
	}
	opt, err := nn.NewOptimizer(store, oc)
	if err != nil {
		return err
	}
	defer opt.Close()

	opts, err := train.NewOptions(cfg)
	if err != nil {
		return err
	}
	t := &train.Trainer{Options: opts, Dir: dir, Device: dev, Store: store, Model: model, Optim: opt, Mollifier: moll, RNG: rng, Log: logw, Dist: group}
	t.Hooks = opts.StandardHooks() // progress, metrics and checkpoints; hooks run in priority order
	if cfg.Data.Is2D() {
		// The data sets are drawn with a fixed seed, so runs that differ in
		// run.seed train on the same points.
		pts, err := data.NewPoints(cfg.Data.Dataset, cfg.Data.TrainSize, cfg.Data.TestSize, 0)
		if err != nil {
			return err
		}
		batches, err := data.NewPointBatches(pts.Train, cfg.Data.BatchSize, cfg.Data.DropLast, cfg.Run.Seed, dev)
		if err != nil {
			return err
		}
		if group != nil {
			if err := batches.Shard(env.Rank, env.WorldSize); err != nil {
				return err
			}
		}
		t.Data = batches
		m2, ok := model.(experiments.Model2D)
		if !ok {
			return fmt.Errorf("model %q cannot evaluate densities and sample, which the 2-D experiments need", cfg.Model.Name)
		}
		exp, err := experiments.NewToy2D(cfg, pts, m2, dev)
		if err != nil {
			return err
		}
		defer exp.Close()
		t.Hooks = append(t.Hooks, exp.Hooks()...)
	} else {
		stream, img, err := imageData(cfg, dev, caps, env, logw)
		if err != nil {
			return err
		}
		defer stream.Close()
		t.Data = stream
		t.Hooks = append(t.Hooks, img.Hooks()...)
		// FID (or, for MNIST without the Inception weights, FCD); off with a
		// log line when neither network is available.
		fe, err := experiments.NewFID(cfg, caps.Sampler, dev, img.Transform, logw)
		if err != nil {
			return err
		}
		defer fe.Close()
		t.Hooks = append(t.Hooks, fe.Hooks()...)
	}
	if h, ok, err := evalDelayHook(cfg.Eval.Every); err != nil {
		return err
	} else if ok {
		t.Hooks = append(t.Hooks, h)
	}
	if resume {
		switch err := t.Resume(); {
		case err == nil:
			fmt.Fprintf(logw, "resuming %s at step %d\n", dir, t.Steps())
		case errors.Is(err, nn.ErrNoCheckpoint):
			fmt.Fprintf(logw, "no checkpoint in %s: starting the run there\n", dir)
		default:
			return err
		}
	}
	if leader {
		if err := writeEnv(dir, cfg, threads, env); err != nil {
			return err
		}
	}
	fmt.Fprintf(logw, "run %s: %s on %s, %d parameters, %d threads, libtorch %s%s\n", dir, cfg.Model.Name, cfg.Run.Device, store.NumParams(), nn.Threads(), nn.TorchVersion(), worldNote(env, cfg, dev))
	start := time.Now()
	defer t.Close()
	// A done.json left from before (the run resumed to more iterations)
	// would mark it finished while it runs.
	if leader {
		if err := os.Remove(filepath.Join(dir, sweep.DoneName)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := t.RunUntil(stop); err != nil {
		if errors.Is(err, train.ErrNonFinite) && leader {
			// Diverging is how this run ends (the 2-D tables count it): the
			// command still fails, but done.json keeps a sweep from
			// training it again.
			if derr := sweep.WriteDiverged(dir, t.Steps(), time.Since(start), err.Error()); derr != nil {
				return errors.Join(err, derr)
			}
		}
		return err
	}
	if t.Steps() >= cfg.Run.Iterations && leader {
		if err := sweep.WriteDone(dir, t.Steps(), time.Since(start)); err != nil {
			return err
		}
	}
	fmt.Fprintf(logw, "done: %d steps in %s, run folder %s\n", t.Steps(), time.Since(start).Round(time.Second), dir)
	return nil
}

// joinGroup joins the data-parallel job of env with the distributed.*
// settings, and exits the process with the one-line error when the
// heartbeat finds a rank gone: a collective blocked in Gloo cannot be
// abandoned otherwise (the library itself never exits).
func joinGroup(cfg *config.Config, env dist.Env, dev gotch.Device) (*dist.Group, error) {
	d := cfg.Distributed
	g, err := dist.New(env, d.BackendFor(dev.IsCuda()), dev, d.Timeout(),
		dist.WithBucketBytes(d.BucketBytes()), dist.WithHeartbeat(d.HeartbeatInterval(), d.HeartbeatTimeout()))
	if err != nil {
		return nil, fmt.Errorf("%w (distributed.backend, distributed.timeout_minutes)", err)
	}
	go func() {
		err := <-g.Failed()
		fmt.Fprintf(os.Stderr, "train: rank %d: %v\n", env.Rank, err)
		closeRunLog()
		os.Exit(1)
	}()
	return g, nil
}

// groupError makes the error of a distributed run one line: the
// heartbeat's report when it has one (a rank died), else the first line
// of err with the rank (libtorch's messages carry a C++ backtrace).
func groupError(g *dist.Group, err error) error {
	if err == nil {
		return nil
	}
	if e := g.Err(); e != nil {
		return fmt.Errorf("rank %d: %w", g.Rank(), e)
	}
	line, _, _ := strings.Cut(err.Error(), "\n")
	return fmt.Errorf("rank %d: %s", g.Rank(), strings.TrimPrefix(line, "train: "))
}

// shareString returns rank 0's s on every rank (the run folder's name,
// which rank 0's clock picks).
func shareString(g *dist.Group, s string, dev gotch.Device) (_ string, err error) {
	const limit = 4096
	if len(s) > limit {
		return "", fmt.Errorf("the run folder's path has more than %d bytes", limit)
	}
	defer nn.Recover(&err)
	sc := ts.NewScope()
	defer sc.Close()
	buf := make([]int64, limit+1)
	buf[0] = int64(len(s))
	for i := 0; i < len(s); i++ {
		buf[1+i] = int64(s[i])
	}
	x := ts.MustOfSlice(buf)
	if dev.IsCuda() { // NCCL broadcasts CUDA tensors only
		x = x.MustTo(dev, false)
	}
	if err := g.Broadcast([]*ts.Tensor{x}, 0); err != nil {
		return "", err
	}
	got := x.Int64Values()
	out := make([]byte, got[0])
	for i := range out {
		out[i] = byte(got[1+i])
	}
	return string(out), nil
}

// worldNote describes the process group on the run line.
func worldNote(env dist.Env, cfg *config.Config, dev gotch.Device) string {
	if !env.Distributed() {
		return ""
	}
	return fmt.Sprintf(", rank 0 of %d (%s, %s backend), %d examples per rank of the global batch %d", env.WorldSize, env.Source,
		cfg.Distributed.BackendFor(dev.IsCuda()), cfg.Data.BatchSize/env.WorldSize, cfg.Data.BatchSize)
}

// imageData loads the train and test splits, starts the seeded,
// prefetching loader and prepares the image evaluation hooks.
func imageData(cfg *config.Config, dev gotch.Device, model models.Capabilities, env dist.Env, logw io.Writer) (*data.Stream, *experiments.Images, error) {
	d := cfg.Data
	tr, err := data.ParseTransform(d.Dequantization, d.Range)
	if err != nil {
		return nil, nil, err
	}
	trainSet, err := data.LoadImages(d.Dataset, d.Root, data.Train, d.ImageSize, d.Channels, logw)
	if err != nil {
		return nil, nil, err
	}
	testSet, err := data.LoadImages(d.Dataset, d.Root, data.Test, d.ImageSize, d.Channels, logw)
	if err != nil {
		return nil, nil, err
	}
	loader, err := data.NewLoader(trainSet, data.LoaderConfig{BatchSize: d.BatchSize, DropLast: d.DropLast, Shuffle: true, HFlip: d.HFlip, Seed: cfg.Run.Seed,
		Rank: env.Rank, World: env.WorldSize})
	if err != nil {
		return nil, nil, err
	}
	stream, err := loader.Stream(dev, tr)
	if err != nil {
		return nil, nil, err
	}
	return stream, &experiments.Images{Config: cfg, Model: model, Device: dev, Test: testSet, Transform: tr}, nil
}

// sameRun checks that -config name with sets resolves to the config saved
// in a run folder.
func sameRun(saved *config.Config, name string, sets []string, path string) error {
	asked, err := config.Load(name, sets)
	if err != nil {
		return err
	}
	s := *saved
	asked.Source, s.Source = "", "" // only the settings must match
	a, err := asked.YAML()
	if err != nil {
		return err
	}
	b, err := s.YAML()
	if err != nil {
		return err
	}
	if string(a) != string(b) {
		return fmt.Errorf("-resume: %s was started with a different config than -config %s %v; resume without -config, or use a new run folder", path, name, sets)
	}
	return nil
}

// writeEnv records where and how the run ran.
func writeEnv(dir string, cfg *config.Config, threads int, job dist.Env) error {
	host, _ := os.Hostname()
	env := map[string]any{
		"go": runtime.Version(), "libtorch": nn.TorchVersion(), "device": cfg.Run.Device,
		"threads": threads, "host": host, "cpus": runtime.NumCPU(), "args": os.Args,
		"started": time.Now().UTC().Format(time.RFC3339), "world_size": job.WorldSize,
	}
	b, _ := json.MarshalIndent(env, "", "  ")
	return os.WriteFile(filepath.Join(dir, "env.json"), b, 0o644)
}
