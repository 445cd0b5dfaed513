package train

import (
	"bytes"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/nn"
	"github.com/mollify/mollify/train/dist"
	"github.com/sugarme/gotch/ts"
)

// The runs of TestTwoRanksSyncBatchNormTrainAsOneProcess, started by
// runDistWorker like rownoise_test.go's.
func init() {
	rowNoiseWorkers["vae-bn-synced"] = func(g *dist.Group) (*Trainer, func(), error) { return bnVAETrainer(g, true) }
	rowNoiseWorkers["vae-bn-per-rank"] = func(g *dist.Group) (*Trainer, func(), error) { return bnVAETrainer(g, false) }
}

// bnVAETrainer is vaeTrainer's VAE with its batch norms in training mode,
// for 6 steps, with distributed.sync_batchnorm set to sync. Its Adam has
// ε = 1 (and lr 1e-2): the convolution biases before a batch norm have a
// true gradient of zero, and a standard Adam turns the rounding in it
// into whole learning-rate steps (docs/CONVENTIONS.md, pitfalls), which
// no summation order common to one and two processes avoids (with ε = 1e-8
// the synced run ends 0.07 from one process's in decoder.convt1.bias,
// about 7 steps of lr); with ε = 1
// a gradient g much below 1 moves a parameter by about lr·g, so rounding
// stays rounding and the parameters can be compared.
//
// On a group of more than one process it also checks the CUDA-graph
// decision: run.cuda_graph=on is an error naming distributed.sync_batchnorm,
// auto falls back to eager steps with one log line (a RerunGrapher stands
// in for CUDA graphs, and its capture count must stay 0 over the run).
func bnVAETrainer(g *dist.Group, sync bool) (*Trainer, func(), error) {
	tr, done, err := vaeTrainer(g, config.ModelVAE, false)
	if err != nil {
		return nil, done, err
	}
	tr.Model.(rowNoiseModel).Model.(interface{ SetTraining(bool) }).SetTraining(true)
	tr.Options.Iterations = 6
	tr.Options.LR.Base = 1e-2
	tr.Options.SyncBatchNorm = sync
	opt, err := nn.NewOptimizer(tr.Store, nn.OptimConfig{Name: "adam", LR: 1e-2, Eps: 1, Capturable: true})
	if err != nil {
		return nil, done, err
	}
	tr.Optim.Close()
	tr.Optim = opt
	closeAll := func() { opt.Close(); done() }
	if g == nil || g.Size() == 1 || !sync {
		return tr, closeAll, nil
	}
	grapher := &RerunGrapher{}
	tr.Graphs = grapher
	tr.Options.CUDAGraph = config.CUDAGraphOn
	if _, err := tr.startCapture(); err == nil || !strings.Contains(err.Error(), "run.cuda_graph=on, but distributed.sync_batchnorm all-reduces") {
		return nil, closeAll, fmt.Errorf("run.cuda_graph=on with distributed.sync_batchnorm on 2 ranks: error %v", err)
	}
	var log bytes.Buffer
	tr.Log = &log
	tr.Options.CUDAGraph = config.CUDAGraphAuto
	if capture, err := tr.startCapture(); capture || err != nil || !strings.Contains(log.String(), "training step: eager (distributed.sync_batchnorm") {
		return nil, closeAll, fmt.Errorf("run.cuda_graph=auto with distributed.sync_batchnorm on 2 ranks: capture %v, error %v, log %q", capture, err, log.String())
	}
	tr.Hooks = append(tr.Hooks, Hook{Name: "no-capture", AllRanks: true, End: func(*Trainer, error) error {
		if grapher.Captures != 0 {
			return fmt.Errorf("the step was captured %d times with distributed.sync_batchnorm on", grapher.Captures)
		}
		return nil
	}}, Hook{Name: "sync-off-in-hooks", Every: 1, AllRanks: true, Fn: func(*Trainer, *StepStats) error {
		if nn.BatchNormSynced() {
			return fmt.Errorf("hooks run with the batch-norm sync on")
		}
		return nil
	}})
	return tr, closeAll, nil
}

// Two Gloo ranks training a VAE whose batch norms are in training mode,
// each on half of every batch, with distributed.sync_batchnorm end with
// the parameters of one process on the whole batch (to 1e-6 relative,
// like the other parity tests; measured 6e-8); with per-rank statistics
// (the option off) they end far from them (measured 1.5e-2).
func TestTwoRanksSyncBatchNormTrainAsOneProcess(t *testing.T) {
	ref, done, err := bnVAETrainer(nil, true)
	defer done()
	if err == nil {
		err = ref.Run()
	}
	if err != nil {
		t.Fatalf("one process: %v", err)
	}
	for _, c := range []struct {
		name string
		sync bool
	}{{"vae-bn-synced", true}, {"vae-bn-per-rank", false}} {
		out := filepath.Join(t.TempDir(), c.name+".safetensors")
		spawnRanks(t, c.name, 2, out)
		sc := ts.NewScope()
		got, _, err := nn.LoadTensors(out)
		if err != nil {
			t.Fatal(err)
		}
		worst, where := 0.0, ""
		for n, w := range ref.Store.Named() {
			if got[n] == nil {
				t.Fatalf("%s: the 2-rank run saved no %s", c.name, n)
			}
			wv, gv := w.Float64Values(), got[n].Float64Values()
			for i := range wv {
				if d := math.Abs(wv[i]-gv[i]) / math.Max(1, math.Abs(wv[i])); d > worst {
					worst, where = d, n
				}
			}
		}
		sc.Close()
		t.Logf("%s: largest relative difference %.3g (%s)", c.name, worst, where)
		switch {
		case c.sync && worst > 1e-6:
			t.Errorf("%s: %s of the 2-rank run is %.3g (relative) away from the one-process run's", c.name, where, worst)
		case !c.sync && worst < 1e-4:
			t.Errorf("%s: per-rank batch statistics left the parameters within %.3g of one process's: the test cannot tell", c.name, worst)
		}
	}
}

// SyncBatchNormCapture keeps CaptureMode's decision unless the sync is on
// in a job of several processes, where on is an error and auto is eager.
func TestSyncBatchNormCapture(t *testing.T) {
	const obstacle = "distributed.sync_batchnorm all-reduces the batch-norm statistics inside the forward"
	for _, c := range []struct {
		mode        string
		capture     bool
		sync        bool
		world       int
		wantCapture bool
		wantWhy     string // substring; "" keeps the given why
		wantErr     string
	}{
		{config.CUDAGraphOn, true, true, 2, false, obstacle, "run.cuda_graph=on, but " + obstacle},
		{config.CUDAGraphAuto, true, true, 4, false, obstacle, ""},
		{config.CUDAGraphAuto, true, false, 2, true, "", ""},
		{config.CUDAGraphOn, true, true, 1, true, "", ""},
		{config.CUDAGraphAuto, false, true, 2, false, "", ""}, // already eager: its own reason stays
		{config.CUDAGraphOff, false, true, 2, false, "", ""},
	} {
		capture, why, err := SyncBatchNormCapture(c.mode, c.capture, "given", c.sync, c.world)
		name := fmt.Sprintf("%s capture=%v sync=%v world=%d", c.mode, c.capture, c.sync, c.world)
		if capture != c.wantCapture {
			t.Errorf("%s: capture %v, want %v", name, capture, c.wantCapture)
		}
		if c.wantWhy == "" && why != "given" || !strings.Contains(why, c.wantWhy) {
			t.Errorf("%s: why %q, want %q", name, why, c.wantWhy)
		}
		if c.wantErr == "" && err != nil || c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
			t.Errorf("%s: error %v, want %q", name, err, c.wantErr)
		}
	}
}
