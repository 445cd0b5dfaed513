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
	"github.com/mollify/mollify/bench/internal/steploop"
	"math"
	"os"

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
	dims := float64(o.Channels * o.Size * o.Size)
	out["impl"], out["final_nll"], out["final_bpd"] = o.impl, final, final/(dims*math.Ln2)+7
	return json.NewEncoder(os.Stdout).Encode(out)
}
