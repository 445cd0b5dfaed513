// Command vae32 times one training step of the Table 4 VAE on 32×32
// images (vaes.NewVAE; width 1/4, latent 256, 3 channels and batch 64 by
// default: mse recon on unit-range data, closed-form KL, Adam 3e-4) and
// prints one JSON line: steps/s, peak RSS, the mean loss of the last timed
// steps and the cost of Gaussian-mollifying one batch. bench/vae32.py is
// the same step in PyTorch eager; bench/compare runs both (make bench).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"github.com/mollify/mollify/bench/internal/steploop"
	"os"
	"runtime"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/nn"
	"github.com/mollify/mollify/vaes"
	"github.com/sugarme/gotch/ts"
)

type options struct {
	steps, warmup, threads        int
	batch, latent, channels, size int64
	width                         float64
	seed                          uint64
	device, cpuProfile            string
	impl                          string // row name in bench/compare's table
	nativeConvT                   bool
}

func main() {
	var o options
	flag.IntVar(&o.steps, "steps", 60, "timed steps")
	flag.IntVar(&o.warmup, "warmup", 10, "untimed steps first")
	flag.IntVar(&o.threads, "threads", 1, "ATen and BLAS threads")
	flag.Int64Var(&o.batch, "batch", 64, "batch size")
	flag.Int64Var(&o.latent, "latent", 256, "latent size (Table 4: 256)")
	flag.Int64Var(&o.channels, "channels", 3, "image channels")
	flag.Int64Var(&o.size, "size", 32, "image size (32 or 64)")
	flag.Float64Var(&o.width, "width", 0.25, "Table 4 width multiplier")
	flag.Uint64Var(&o.seed, "seed", 0, "seed")
	flag.StringVar(&o.device, "device", "cpu", "device")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the timed steps to this file (go tool pprof)")
	flag.BoolVar(&o.nativeConvT, "native-convt", false, "use libtorch's own transposed-convolution backward instead of the oneDNN one (ablation: model.vae.native_convt_backward)")
	foreachOptim := flag.Bool("foreach-optim", false, "run Adam as _foreach kernels instead of the fused one-pass kernel (ablation)")
	flag.Parse()
	o.impl = "go"
	if o.nativeConvT {
		o.impl += "-native-convt"
	}
	if *foreachOptim {
		ts.SetOptimFused(false)
		o.impl += "-foreach-optim"
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "vae32:", err)
		os.Exit(1)
	}
}

// lossTail is how many of the last timed steps final_loss averages.
const lossTail = 20

func run(o options) (err error) {
	runtime.LockOSThread()
	defer nn.Recover(&err)
	if o.steps < 1 || o.warmup < 0 {
		return fmt.Errorf("-steps must be positive and -warmup non-negative, got %d and %d", o.steps, o.warmup)
	}
	store, dev, err := steploop.NewStore(o.device, o.threads, o.seed)
	if err != nil {
		return err
	}
	defer store.Close()
	c := config.DefaultVAE()
	c.Latent, c.Width, c.Recon, c.NativeConvTBackward = int(o.latent), o.width, config.ReconMSE, o.nativeConvT
	model, err := vaes.NewVAE(store.Root(), c, config.Data{ImageSize: int(o.size), Channels: int(o.channels), Range: config.RangeUnit})
	if err != nil {
		return err
	}
	// 1024 fixed dequantized 8-bit images (k+u)/256, cycled in order.
	bench := steploop.ImageBench{Warmup: o.warmup, Steps: o.steps, Tail: lossTail, CPUProfile: o.cpuProfile,
		Batch: o.batch, Channels: o.channels, Size: o.size, Scale: 256, Shift: 0,
		Optim: nn.OptimConfig{Name: "adam", LR: 3e-4}, MollifyCalls: 200}
	out, final, err := bench.Run(store, dev, func(x *ts.Tensor) (*ts.Tensor, error) {
		l, err := model.Loss(x)
		return l.Total, err
	})
	if err != nil {
		return err
	}
	out["impl"], out["final_loss"] = o.impl, final
	return json.NewEncoder(os.Stdout).Encode(out)
}
