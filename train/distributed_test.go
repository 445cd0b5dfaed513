package train

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/data"
	"github.com/mollify/mollify/flows"
	"github.com/mollify/mollify/internal/testenv"
	"github.com/mollify/mollify/mollification"
	"github.com/mollify/mollify/nn"
	"github.com/mollify/mollify/train/dist"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// The distributed tests re-execute this test binary as the ranks:
// TestMain runs the worker named by $MOLLIFY_TRAIN_DIST_WORKER, with
// torchrun's variables set, and it writes its parameters to $DIST_OUT.
const distWorkerVar = "MOLLIFY_TRAIN_DIST_WORKER"

// distConfig is the runs compared: 24 steps of the 2-D flow on a global
// batch of 64, mollified for the first 12, gradient clipping on.
func distConfig() *config.Config {
	c := testConfig(24)
	c.Optim.GradClip = 5
	c.Data.BatchSize = 64
	return c
}

// distTrainer is one rank's trainer (g nil: one process on the global
// batch): sharded points and mollifier, a capturable optimizer, and with
// captured the step replayed by RerunGrapher; a hook on rank 0 draws
// noise every 5 steps as an evaluation would.
func distTrainer(t testing.TB, g *dist.Group, captured bool) (*Trainer, func(), error) {
	return distTrainerOn(t, g, captured, gotch.CPU)
}

// distTrainerOn is distTrainer on a device; on a GPU the captured step
// uses real CUDA graphs.
func distTrainerOn(t testing.TB, g *dist.Group, captured bool, dev gotch.Device) (*Trainer, func(), error) {
	c := distConfig()
	rng, err := nn.Seed(c.Run.Seed)
	if err != nil {
		return nil, nil, err
	}
	store := nn.NewStore(dev)
	tr := newTrainerOn(t, c, store, rng, dev)
	closers := []func(){store.Close}
	done := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	opt, err := nn.NewOptimizer(store, nn.OptimConfig{Name: "adam", LR: c.Optim.LR, Capturable: true})
	if err != nil {
		return nil, done, err
	}
	closers = append(closers, opt.Close, tr.Close)
	tr.Optim, tr.Model = opt, capFlow{tr.Model.(flowModel)}
	pts, err := data.NewPoints(data.MoG, 1000, 10, 0)
	if err != nil {
		return nil, done, err
	}
	batches, err := data.NewPointBatches(pts.Train, c.Data.BatchSize, true, 7, dev)
	if err != nil {
		return nil, done, err
	}
	tr.Data = batches
	if g != nil {
		tr.Dist = g
		if err := batches.Shard(g.Rank(), g.Size()); err != nil {
			return nil, done, err
		}
		if tr.Mollifier, err = mollification.Shard(tr.Mollifier, g.Rank(), g.Size()); err != nil {
			return nil, done, err
		}
	}
	if captured {
		tr.Options.CUDAGraph = config.CUDAGraphOn
		if !dev.IsCuda() {
			tr.Graphs = &RerunGrapher{}
		}
	} else {
		tr.Options.CUDAGraph = config.CUDAGraphOff
	}
	tr.Hooks = append(tr.Hooks, Hook{Name: "evaluation", Every: 5, Fn: func(*Trainer, *StepStats) error {
		sc := ts.NewScope()
		defer sc.Close()
		ts.MustRandn([]int64{100}, gotch.Float, gotch.CPU)
		return nil
	}})
	return tr, done, nil
}

// newTrainerOn is newTrainer's model and mollifier on a given store.
func newTrainerOn(t testing.TB, c *config.Config, store *nn.Store, rng *nn.RNG, dev gotch.Device) *Trainer {
	f, err := flows.NewRealNVP2D(store.Root(), config.RealNVP2D{Couplings: 3, HiddenLayers: 2, HiddenUnits: 16})
	if err != nil {
		panic(err)
	}
	moll, err := mollification.FromConfig(c, dev)
	if err != nil {
		panic(err)
	}
	o, err := NewOptions(c)
	if err != nil {
		panic(err)
	}
	o.TensorBoard = false
	return &Trainer{Options: o, Dir: os.TempDir(), Device: dev, Store: store, Model: flowModel{f},
		Mollifier: moll, RNG: rng, Log: &bytes.Buffer{}}
}

func runDistWorker(name string) int {
	err := func() error {
		env, err := dist.FromEnv()
		if err != nil {
			return err
		}
		g, err := dist.New(env, "gloo", gotch.CPU, time.Minute, dist.WithHeartbeat(200*time.Millisecond, 5*time.Second))
		if err != nil {
			return err
		}
		defer g.Close()
		build := func(g *dist.Group) (*Trainer, func(), error) { return distTrainer(nil, g, name == "captured") }
		if b, ok := rowNoiseWorkers[name]; ok { // rownoise_test.go
			build = b
		}
		tr, done, err := build(g)
		defer done()
		if err != nil {
			return err
		}
		if err := tr.Run(); err != nil {
			return err
		}
		if g.Rank() != 0 {
			return nil
		}
		return nn.SaveTensors(os.Getenv("DIST_OUT"), tr.Store.Named(), map[string]string{"steps": strconv.Itoa(tr.Steps())})
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func spawnRanks(t *testing.T, name string, n int, out string) {
	t.Helper()
	if !ts.C10dAvailable() {
		t.Skip("libtch has no c10d (see build/stubs.txt)")
	}
	port := testenv.FreePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmds := make([]*exec.Cmd, n)
	errs := make([]*bytes.Buffer, n)
	for r := range cmds {
		c := exec.CommandContext(ctx, os.Args[0])
		c.Env = append(os.Environ(), distWorkerVar+"="+name, "RANK="+strconv.Itoa(r), "WORLD_SIZE="+strconv.Itoa(n),
			"LOCAL_RANK="+strconv.Itoa(r), "MASTER_ADDR=127.0.0.1", "MASTER_PORT="+port, "DIST_OUT="+out)
		errs[r] = &bytes.Buffer{}
		c.Stderr = errs[r]
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[r] = c
	}
	for r, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("rank %d: %v\n%s", r, err, errs[r])
		}
	}
}

// Two Gloo ranks over 127.0.0.1, each on half of every batch, end with
// the parameters of one process on the whole batch: eager steps, and steps
// replayed from the captured graphs with the all-reduce between them
// (RerunGrapher stands in for CUDA graphs). Mollification noise keyed per
// global row, clipping of the averaged gradient, and the hooks' own
// generator stream (rank 0's "evaluation" draws would otherwise shift its
// noise away from rank 1's) are all needed for it.
func TestTwoRanksTrainAsOneProcess(t *testing.T) {
	ref, done, err := distTrainer(t, nil, false)
	defer done()
	if err != nil {
		t.Fatal(err)
	}
	if err := ref.Run(); err != nil {
		t.Fatal(err)
	}
	want := ref.Store.Named()
	for _, mode := range []string{"eager", "captured"} {
		out := filepath.Join(t.TempDir(), mode+".safetensors")
		spawnRanks(t, mode, 2, out)
		sc := ts.NewScope()
		got, _, err := nn.LoadTensors(out)
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for n, w := range want {
			wv, gv := w.Float64Values(), got[n].Float64Values()
			for i := range wv {
				worst = math.Max(worst, math.Abs(wv[i]-gv[i])/math.Max(1, math.Abs(wv[i])))
			}
		}
		sc.Close()
		if worst > 1e-6 {
			t.Errorf("%s: a parameter is %.3g (relative) away from the one-process run's", mode, worst)
		}
		t.Logf("%s: largest relative difference %.3g", mode, worst)
	}
}

// maxRelDiff is the largest |a−b|/max(1,|a|) between two stores' tensors.
func maxRelDiff(a, b *nn.Store) float64 {
	worst := 0.0
	bn := b.Named()
	for n, w := range a.Named() {
		wv, gv := w.Float64Values(), bn[n].Float64Values()
		for i := range wv {
			worst = math.Max(worst, math.Abs(wv[i]-gv[i])/math.Max(1, math.Abs(wv[i])))
		}
	}
	return worst
}

// On a GPU (the GPU script's stage 2; skipped elsewhere): a one-process
// NCCL group, eager and with the step captured as real CUDA graphs (the
// all-reduce between them), trains as the plain run does.
func TestNCCLWorldSizeOneMatchesPlainRun(t *testing.T) {
	if !gotch.CUDA.IsAvailable() {
		t.Skip("no CUDA device")
	}
	if !ts.NCCLAvailable() {
		t.Skip("libtch was built without NCCL (a CPU libtorch)")
	}
	dev := gotch.CudaBuilder(0)
	plain, done, err := distTrainerOn(t, nil, false, dev)
	defer done()
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.Run(); err != nil {
		t.Fatal(err)
	}
	for _, captured := range []bool{false, true} {
		g, err := dist.New(dist.Single(), "nccl", dev, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		tr, done, err := distTrainerOn(t, g, captured, dev)
		if err == nil {
			err = tr.Run()
		}
		if err == nil {
			if d := maxRelDiff(plain.Store, tr.Store); d > 1e-6 {
				t.Errorf("captured %v: the NCCL world-size-1 run ends %.3g (relative) away from the plain run", captured, d)
			} else {
				t.Logf("captured %v: largest relative difference %.3g", captured, d)
			}
		}
		done()
		if cerr := g.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}
