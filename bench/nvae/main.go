// Command nvae times one training step of NVAE (package nvae) at a
// preset's size (configs/nvae_cifar10.yaml by default: 128 channels, 30
// groups of 20 latents, 1 flow per group, 3×32×32; batch 200 as the
// paper) and prints one JSON line: steps/s, CPU time per step, peak RSS,
// on CUDA the caching allocator's peaks (peak_alloc_mb, peak_reserved_mb,
// warm-up included) and whether the peak allocation fits limit_gb (issue
// 14: 80 GB, fits_limit), and the mean loss of the last timed steps. The
// step is the model's Loss (recon + warm-up·balanced KL + spectral
// regulariser) in float32 with the preset's Adamax; the images are fixed
// 8-bit values (k+u)/256 in [0, 1). bench/gpu_check.sh stage 5 runs it on
// the GPU; on a CPU shrink the model with -set, e.g.
//
//	go run ./bench/nvae -batch 2 -steps 1 -warmup 1 -set model.nvae.channels=8 -set model.nvae.groups_per_scale=2
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/mollify/mollify/bench/internal/steploop"
	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/nn"
	"github.com/mollify/mollify/nvae"
	"github.com/sugarme/gotch/ts"
)

// sets collects repeated -set key=value flags.
type sets []string

func (s *sets) String() string     { return strings.Join(*s, ",") }
func (s *sets) Set(v string) error { *s = append(*s, v); return nil }

type options struct {
	steploop.Flags
	preset  string
	sets    sets
	limitGB float64
}

// lossTail is how many of the last timed steps final_loss averages.
const lossTail = 3

func main() {
	var o options
	o.Register(flag.CommandLine, 5, 200, "Adamax")
	flag.StringVar(&o.preset, "preset", "nvae_cifar10", "config whose model.nvae, data and optim settings are timed")
	flag.Var(&o.sets, "set", "key=value override of the preset, as cmd/train's --set (repeatable)")
	flag.Float64Var(&o.limitGB, "limit-gb", 80, "peak allocation limit in GB (1e9 bytes) that fits_limit checks on CUDA")
	flag.Parse()
	steploop.Main("nvae", func() error { return run(o) })
}

func run(o options) error {
	if o.CUDAGraph {
		return fmt.Errorf("-cuda-graph is not wired for nvae yet; time the eager step")
	}
	c, err := config.Load(o.preset, o.sets)
	if err != nil {
		return err
	}
	if int64(c.Data.Channels) != o.Channels || int64(c.Data.ImageSize) != o.Size {
		return fmt.Errorf("-channels %d and -size %d must match the preset's data.channels %d and data.image_size %d", o.Channels, o.Size, c.Data.Channels, c.Data.ImageSize)
	}
	store, dev, err := o.Open(1)
	if err != nil {
		return err
	}
	defer store.Close()
	net, err := nvae.New(store.Root(), c.Model.NVAE, c.Data)
	if err != nil {
		return err
	}
	if err := net.SetSchedule(c.Run.Iterations, 0); err != nil {
		return err
	}
	oc := nn.OptimConfig{Name: c.Optim.Name, LR: c.Optim.LR, Eps: c.Optim.Eps, WeightDecay: c.Optim.WeightDecay}
	bench := o.Bench(256, 0, oc, lossTail, 20)
	loss := func(x *ts.Tensor) (*ts.Tensor, error) {
		l, err := net.Loss(x)
		return l.Total, err
	}
	out, final, err := o.Train(bench, store, dev, "go", loss, steploop.Model{LossFn: net.Loss})
	if err != nil {
		return err
	}
	out["final_loss"] = final
	out["preset"] = o.preset
	out["batch"] = o.Batch
	out["limit_gb"] = o.limitGB
	if mb, ok := out["peak_alloc_mb"].(float64); ok {
		out["peak_alloc_gb"] = mb * (1 << 20) / 1e9
		out["fits_limit"] = mb*(1<<20) <= o.limitGB*1e9
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}
