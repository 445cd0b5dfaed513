// Command realnvp times one training step of the multi-scale RealNVP at
// the paper's CIFAR-10 size (flows.NewRealNVP with config.DefaultRealNVP,
// configs/realnvp_cifar10.yaml: 2 scales, 4 residual blocks of 32 feature
// maps, logit α 0.05; 3×32×32, batch 64; loss −mean log p(x) in nats on
// uniformly dequantized [0,1] data, batch norms on batch statistics;
// Adam 1e-3) and prints one JSON line: steps/s, CPU time per step, peak
// RSS (and GPU memory on CUDA), the mean loss of the last timed steps and
// the cost of Gaussian-mollifying one batch. -cuda-graph trains through
// the trainer's captured step instead (steploop.RunCaptured), which, as
// models.RealNVP does, takes the logit first and mollifies and scores in
// logit space (its loss leaves out the logit's constant log-det).
// bench/realnvp.py is the same step in PyTorch (the modules of
// flows/testdata/gen_golden.py); bench/gpu_check.sh stage 4 runs both.
package main

import (
	"encoding/json"
	"flag"
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
	model config.RealNVP
}

func main() {
	o := options{model: config.DefaultRealNVP()}
	o.Register(flag.CommandLine, 20, 64, "Adam")
	flag.IntVar(&o.model.Scales, "scales", o.model.Scales, "scales (model.realnvp.scales)")
	flag.IntVar(&o.model.ResBlocks, "res-blocks", o.model.ResBlocks, "residual blocks per coupling network (model.realnvp.res_blocks)")
	flag.IntVar(&o.model.Channels, "hidden", o.model.Channels, "feature maps of the first scale's coupling networks (model.realnvp.channels)")
	flag.Float64Var(&o.model.LogitAlpha, "logit-alpha", o.model.LogitAlpha, "logit preprocessing α (model.realnvp.logit_alpha)")
	flag.Parse()
	steploop.Main("realnvp", func() error { return run(o) })
}

// lossTail is how many of the last timed steps final_nll averages.
const lossTail = 20

func run(o options) error {
	store, dev, err := o.Open(0)
	if err != nil {
		return err
	}
	defer store.Close()
	model, err := flows.NewRealNVP(store.Root(), o.model, []int64{o.Channels, o.Size, o.Size})
	if err != nil {
		return err
	}
	// 1024 fixed uniformly dequantized 8-bit images (k+u)/256, cycled in
	// order.
	bench := o.Bench(256, 0, nn.OptimConfig{Name: "adam", LR: 1e-3}, lossTail, 200)
	nll := func(lp *ts.Tensor) *ts.Tensor { return lp.MustMean(gotch.Float, true).MustNeg(true) }
	loss := func(x *ts.Tensor) (*ts.Tensor, error) {
		lp, err := model.LogProb(x)
		if err != nil {
			return nil, err
		}
		return nll(lp), nil
	}
	captured := steploop.PreModel{
		Model: steploop.Model{LossFn: func(y *ts.Tensor) (nn.Loss, error) {
			lp, err := model.LogProbPreprocessed(y)
			if err != nil {
				return nn.Loss{}, err
			}
			return nn.Loss{Total: nll(lp)}, nil
		}},
		Pre: model.Preprocess,
	}
	model.SetTraining(true)
	out, final, err := o.Train(bench, store, dev, "go", loss, captured)
	if err != nil {
		return err
	}
	out["final_nll"] = final
	if !o.CUDAGraph { // the captured loss is in logit space, mollified
		dims := float64(o.Channels * o.Size * o.Size)
		out["final_bpd"] = final/(dims*math.Ln2) + 8
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}
