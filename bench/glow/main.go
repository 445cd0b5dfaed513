// Command glow times one training step of a small-width Glow (flows.NewGlow;
// 3×32×32, L=3, K=4, hidden 64, channel split, sigmoid scale, learned
// prior, batch 16 by default; loss −mean log p(x) in nats, Adamax 1e-3) and
// prints one JSON line: steps/s, CPU time per step, peak RSS, the mean loss of the last timed
// steps and the cost of Gaussian-mollifying one batch. bench/glow.py is the
// same step in PyTorch eager (the modules of flows/testdata/gen_golden.py);
// bench/compare runs both (make bench).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"github.com/mollify/mollify/bench/internal/steploop"
	"math"
	"os"
	"runtime"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/flows"
	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

type options struct {
	steps, warmup, threads        int
	levels, depth                 int
	batch, hidden, channels, size int64
	seed                          uint64
	impl, device, cpuProfile      string
}

func main() {
	o := options{impl: "go"}
	flag.IntVar(&o.steps, "steps", 100, "timed steps")
	flag.IntVar(&o.warmup, "warmup", 10, "untimed steps first (the first one initialises ActNorm)")
	flag.IntVar(&o.threads, "threads", 1, "ATen and BLAS threads")
	flag.IntVar(&o.levels, "levels", 3, "L")
	flag.IntVar(&o.depth, "depth", 4, "K steps per level")
	flag.Int64Var(&o.hidden, "hidden", 64, "coupling network width")
	flag.Int64Var(&o.batch, "batch", 16, "batch size")
	flag.Int64Var(&o.channels, "channels", 3, "image channels")
	flag.Int64Var(&o.size, "size", 32, "image size")
	flag.Uint64Var(&o.seed, "seed", 0, "seed")
	flag.StringVar(&o.device, "device", "cpu", "device")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the timed steps to this file")
	foreachOptim := flag.Bool("foreach-optim", false, "run Adamax as _foreach kernels instead of the fused one-pass kernel (ablation)")
	flag.Parse()
	if *foreachOptim {
		ts.SetOptimFused(false)
		o.impl = "go-foreach-optim"
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "glow:", err)
		os.Exit(1)
	}
}

// lossTail is how many of the last timed steps final_nll averages.
const lossTail = 20

func run(o options) (err error) {
	runtime.LockOSThread()
	defer nn.Recover(&err)
	if o.steps < 1 || o.warmup < 1 {
		return fmt.Errorf("-steps and -warmup must be positive (the first warm-up step initialises ActNorm), got %d and %d", o.steps, o.warmup)
	}
	store, dev, err := steploop.NewStore(o.device, o.threads, o.seed)
	if err != nil {
		return err
	}
	defer store.Close()
	g := config.DefaultGlow() // channel split, sigmoid scale, learned per-channel prior
	g.Levels, g.Depth, g.Hidden = o.levels, o.depth, int(o.hidden)
	model, err := flows.NewGlow(store.Root(), g, []int64{o.channels, o.size, o.size})
	if err != nil {
		return err
	}
	// 1024 fixed dequantized 8-bit images in [-1,1], (k+u)/128 − 1, cycled
	// in order.
	bench := steploop.ImageBench{Warmup: o.warmup, Steps: o.steps, Tail: lossTail, CPUProfile: o.cpuProfile,
		Batch: o.batch, Channels: o.channels, Size: o.size, Scale: 128, Shift: 1,
		Optim: nn.OptimConfig{Name: "adamax", LR: 1e-3}, MollifyCalls: 500}
	out, final, err := bench.Run(store, dev, func(x *ts.Tensor) (*ts.Tensor, error) {
		lp, err := model.LogProb(x)
		if err != nil {
			return nil, err
		}
		return lp.MustMean(gotch.Float, true).MustNeg(true), nil
	})
	if err != nil {
		return err
	}
	dims := float64(o.channels * o.size * o.size)
	out["impl"], out["final_nll"], out["final_bpd"] = o.impl, final, final/(dims*math.Ln2)+7
	return json.NewEncoder(os.Stdout).Encode(out)
}
