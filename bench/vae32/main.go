// Command vae32 times one training step of the Table 4 VAE on 32×32
// images (vaes.NewVAE; width 1/4, latent 256, 3 channels and batch 64 by
// default, configs/vae_cifar10.yaml's is -width 1 -batch 128: mse recon on
// unit-range data, closed-form KL, Adam 3e-4) and prints one JSON line:
// steps/s, peak RSS (and GPU memory on CUDA), the mean loss of the last
// timed steps and the cost of Gaussian-mollifying one batch. -cuda-graph
// trains through the trainer's captured step instead
// (steploop.RunCaptured). bench/vae32.py is the same step in PyTorch;
// bench/compare runs both (make bench; bench/gpu_check.sh stage 4).
package main

import (
	"encoding/json"
	"flag"
	"os"

	"github.com/mollify/mollify/bench/internal/steploop"
	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/nn"
	"github.com/mollify/mollify/vaes"
	"github.com/sugarme/gotch/ts"
)

type options struct {
	steploop.Flags
	latent      int64
	width       float64
	impl        string // row name in bench/compare's table
	nativeConvT bool
}

func main() {
	var o options
	o.Register(flag.CommandLine, 60, 64, "Adam")
	flag.Int64Var(&o.latent, "latent", 256, "latent size (Table 4: 256)")
	flag.Float64Var(&o.width, "width", 0.25, "Table 4 width multiplier")
	flag.BoolVar(&o.nativeConvT, "native-convt", false, "use libtorch's own transposed-convolution backward instead of the oneDNN one (ablation: model.vae.native_convt_backward)")
	flag.Parse()
	o.impl = "go"
	if o.nativeConvT {
		o.impl += "-native-convt"
	}
	if o.ForeachOptim {
		o.impl += "-foreach-optim"
	}
	steploop.Main("vae32", func() error { return run(o) })
}

// lossTail is how many of the last timed steps final_loss averages.
const lossTail = 20

func run(o options) error {
	store, dev, err := o.Open(0)
	if err != nil {
		return err
	}
	defer store.Close()
	c := config.DefaultVAE()
	c.Latent, c.Width, c.Recon, c.NativeConvTBackward = int(o.latent), o.width, config.ReconMSE, o.nativeConvT
	model, err := vaes.NewVAE(store.Root(), c, config.Data{ImageSize: int(o.Size), Channels: int(o.Channels), Range: config.RangeUnit})
	if err != nil {
		return err
	}
	// 1024 fixed dequantized 8-bit images (k+u)/256, cycled in order.
	bench := o.Bench(256, 0, nn.OptimConfig{Name: "adam", LR: 3e-4}, lossTail, 200)
	loss := func(x *ts.Tensor) (*ts.Tensor, error) {
		l, err := model.Loss(x)
		return l.Total, err
	}
	out, final, err := o.Train(bench, store, dev, o.impl, loss, steploop.Model{LossFn: model.Loss})
	if err != nil {
		return err
	}
	out["final_loss"] = final
	return json.NewEncoder(os.Stdout).Encode(out)
}
