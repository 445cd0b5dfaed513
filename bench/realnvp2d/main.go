// Command realnvp2d times the 2D RealNVP training step of the paper's toy
// experiments (5 affine couplings, 2×64 MLPs, batch 256, Adam 5e-4) and
// prints one JSON line: steps/s, peak RSS and, with -rss-every, an RSS
// trace. bench/realnvp2d.py is the same step in PyTorch eager; bench/run.sh
// runs both side by side.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"github.com/mollify/mollify/bench/internal/procstat"
	"github.com/mollify/mollify/bench/internal/steploop"
	"os"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/flows"
	"github.com/mollify/mollify/mollification"
	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

func main() {
	steps := flag.Int("steps", 3000, "timed steps")
	warmup := flag.Int("warmup", 300, "untimed steps first")
	threads := flag.Int("threads", 1, "ATen and BLAS threads")
	batch := flag.Int64("batch", 256, "batch size")
	seed := flag.Uint64("seed", 0, "seed")
	device := flag.String("device", "cpu", "device")
	rssEvery := flag.Int("rss-every", 0, "record RSS every N steps (soak mode)")
	flag.Parse()
	if err := run(*steps, *warmup, *threads, *batch, *seed, *device, *rssEvery); err != nil {
		fmt.Fprintln(os.Stderr, "realnvp2d:", err)
		os.Exit(1)
	}
}

func run(steps, warmup, threads int, batch int64, seed uint64, device string, rssEvery int) (err error) {
	runtime.LockOSThread()
	defer nn.Recover(&err)
	store, dev, err := steploop.NewStore(device, threads, seed)
	if err != nil {
		return err
	}
	defer store.Close()
	model, err := flows.NewRealNVP2D(store.Root(), config.DefaultRealNVP2D()) // 5 couplings of 2 × 64
	if err != nil {
		return err
	}
	opt, err := nn.NewOptimizer(store, nn.OptimConfig{Name: "adam", LR: 5e-4})
	if err != nil {
		return err
	}
	defer opt.Close()
	// A fixed 10k-point two-Gaussian dataset, cycled in order.
	const n = 10000
	data := func() *ts.Tensor {
		sc := ts.NewScope()
		defer sc.Close()
		sign := ts.MustRandint(2, []int64{n, 1}, gotch.Float, dev).MustMulScalar(ts.FloatScalar(4), true).MustSubScalar(ts.FloatScalar(2), true)
		mu := ts.MustCat([]*ts.Tensor{sign.MustZerosLike(false), sign}, 1)
		x := nn.Randn([]int64{n, 2}, dev).MustMulScalar(ts.FloatScalar(2.0/3), true).MustAdd(mu, true)
		sc.Keep(x)
		return x
	}()
	defer data.MustDrop()

	var trace []float64
	step := func(i int) error {
		sc := ts.NewScope()
		defer sc.Close()
		off := (int64(i) * batch) % (n - batch)
		x := data.MustNarrow(0, off, batch, false)
		loss := model.LogProb(x).MustMean(gotch.Float, true).MustNeg(true)
		loss.MustBackward()
		if err := opt.Step(); err != nil {
			return err
		}
		return opt.ZeroGrad()
	}
	for i := 0; i < warmup; i++ {
		if err := step(i); err != nil {
			return err
		}
	}
	start := time.Now()
	for i := 0; i < steps; i++ {
		if err := step(warmup + i); err != nil {
			return err
		}
		if rssEvery > 0 && (i+1)%rssEvery == 0 {
			trace = append(trace, procstat.RSSMB())
		}
	}
	el := time.Since(start).Seconds()
	// The cost of Gaussian mollification of one batch, as the trainer calls
	// it once per step (sigmoid schedule, mid-phase).
	moll, err := mollification.NewGaussian(mollification.DefaultSigmoid(), 2*steps)
	if err != nil {
		return err
	}
	const mollCalls = 5000
	mstart := time.Now()
	for i := 0; i < mollCalls; i++ {
		func() {
			sc := ts.NewScope()
			defer sc.Close()
			x := data.MustNarrow(0, (int64(i)*batch)%(n-batch), batch, false)
			if _, _, err = moll.Mollify(x, steps/2+i%steps); err != nil {
				panic(err)
			}
		}()
	}
	mollUS := time.Since(mstart).Seconds() / mollCalls * 1e6
	var loss float64
	func() {
		sc := ts.NewScope()
		defer sc.Close()
		loss, _ = model.LogProb(data).MustMean(gotch.Float, true).MustNeg(true).Float64()
	}()
	gc := debug.SetGCPercent(-1)
	debug.SetGCPercent(gc)
	out := map[string]any{
		"impl": "go", "steps": steps, "seconds": el, "steps_per_s": float64(steps) / el,
		"peak_rss_mb": procstat.PeakRSSMB(), "rss_mb": procstat.RSSMB(), "final_nll": loss, "threads": nn.Threads(),
		"live_tensors": ts.LiveTensors(), "torch": nn.TorchVersion(), "gogc": gc,
		"mollify_us": mollUS, "mollify_share_of_step": mollUS / (el / float64(steps) * 1e6),
	}
	if len(trace) > 0 {
		out["rss_trace_mb"] = trace
		out["rss_every"] = rssEvery
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}
