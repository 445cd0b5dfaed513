// Command glow times one training step of a small-width Glow (flows.NewGlow;
// 3×32×32, L=3, K=4, hidden 64, channel split, sigmoid scale, learned
// prior, batch 16 by default; the paper's is -levels 3 -depth 20 -hidden
// 512 -batch 64; loss −mean log p(x) in nats, Adamax 1e-3) and prints one
// JSON line: steps/s, CPU time per step, peak RSS (and GPU memory on
// CUDA), the mean loss of the last timed steps and the cost of
// Gaussian-mollifying one batch. -cuda-graph trains through the trainer's
// captured step instead (steploop.RunCaptured). bench/glow.py is the same
// step in PyTorch (the modules of flows/testdata/gen_golden.py; its
// --cuda-graph a whole-step torch.cuda.CUDAGraph); bench/compare runs both
// (make bench; bench/gpu_check.sh stage 4).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"

	"github.com/mollify/mollify/bench/internal/steploop"
	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/flows"
	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

type options struct {
	steploop.Flags
	levels, depth int
	hidden        int64
	impl          string
}

func main() {
	o := options{impl: "go"}
	o.Register(flag.CommandLine, 100, 16, "Adamax")
	flag.IntVar(&o.levels, "levels", 3, "L")
	flag.IntVar(&o.depth, "depth", 4, "K steps per level")
	flag.Int64Var(&o.hidden, "hidden", 64, "coupling network width")
	flag.Parse()
	if o.ForeachOptim {
		o.impl = "go-foreach-optim"
	}
	steploop.Main("glow", func() error { return run(o) })
}

// lossTail is how many of the last timed steps final_nll averages.
const lossTail = 20

func run(o options) error {
	store, dev, err := o.Open(1)
	if err != nil {
		return err
	}
	defer store.Close()
	g := config.DefaultGlow() // channel split, sigmoid scale, learned per-channel prior
	g.Levels, g.Depth, g.Hidden = o.levels, o.depth, int(o.hidden)
	model, err := flows.NewGlow(store.Root(), g, []int64{o.Channels, o.Size, o.Size})
	if err != nil {
		return err
	}
	// 1024 fixed dequantized 8-bit images in [-1,1], (k+u)/128 − 1, cycled
	// in order.
	bench := o.Bench(128, 1, nn.OptimConfig{Name: "adamax", LR: 1e-3}, lossTail, 500)
	loss := func(x *ts.Tensor) (*ts.Tensor, error) {
		lp, err := model.LogProb(x)
		if err != nil {
			return nil, err
		}
		return lp.MustMean(gotch.Float, true).MustNeg(true), nil
	}
	captured := steploop.Model{
		LossFn: func(x *ts.Tensor) (nn.Loss, error) {
			l, err := loss(x)
			return nn.Loss{Total: l}, err
		},
		// ActNorm initialises on its first batch, which reads it back.
		Ready: func() error {
			for i, a := range model.ActNorms() {
				if !a.IsInitialised() {
					return fmt.Errorf("ActNorm %d has not seen its first batch", i)
				}
			}
			return nil
		},
	}
	out, final, err := o.Train(bench, store, dev, o.impl, loss, captured)
	if err != nil {
		return err
	}
	dims := float64(o.Channels * o.Size * o.Size)
	out["final_nll"], out["final_bpd"] = final, final/(dims*math.Ln2)+7
	return json.NewEncoder(os.Stdout).Encode(out)
}
