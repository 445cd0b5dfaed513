// Command sample writes samples of a trained model as PNG files (images)
// or a CSV file (2-D data), from a run folder's newest checkpoint:
//
//	go run ./cmd/sample -run runs/glow_cifar10-20261127-101500 -n 64 -out samples/
//	go run ./cmd/sample -run runs/x -checkpoint runs/x/checkpoints/ckpt-000005000.safetensors -temperature 0.7
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/data"
	"github.com/mollify/mollify/models"
	"github.com/mollify/mollify/nn"
	"github.com/mollify/mollify/plots"
	"github.com/mollify/mollify/train"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "sample:", err)
		os.Exit(1)
	}
}

func run(args []string) (err error) {
	runtime.LockOSThread()
	fs := flag.NewFlagSet("sample", flag.ContinueOnError)
	runDir := fs.String("run", "", "run folder (holds config.yaml and checkpoints/)")
	ckpt := fs.String("checkpoint", "", "checkpoint file (default: the run's newest)")
	n := fs.Int("n", 64, "number of samples")
	temp := fs.Float64("temperature", 1, "sampling temperature (latent std scale)")
	out := fs.String("out", "", "output folder (default: RUN/samples-out)")
	device := fs.String("device", "", "device (default: the run's)")
	seed := fs.Uint64("seed", 0, "seed of the latent noise")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *runDir == "" {
		return errors.New("-run RUN_DIR is required")
	}
	if *n <= 0 || !(*temp > 0) {
		return fmt.Errorf("-n must be positive and -temperature > 0, got %d and %v", *n, *temp)
	}
	cfg, err := config.Load(filepath.Join(*runDir, config.ResolvedName), nil)
	if err != nil {
		return err
	}
	if *ckpt == "" {
		all, err := train.Checkpoints(*runDir)
		if err != nil {
			return err
		}
		if len(all) == 0 {
			return fmt.Errorf("%s has no checkpoint yet (train first, or pass -checkpoint)", *runDir)
		}
		*ckpt = all[len(all)-1]
	}
	if *device == "" {
		*device = cfg.Run.Device
	}
	if *out == "" {
		*out = filepath.Join(*runDir, "samples-out")
	}
	setup, err := nn.NewSetup(*device, cfg.Run.Threads, *seed)
	if err != nil {
		return err
	}
	defer setup.Close()
	store := setup.Store
	model, err := models.Build(cfg, store.Root())
	if err != nil {
		return err
	}
	if err := train.LoadModelWeights(*ckpt, store); err != nil {
		return err
	}
	s, ok := model.(models.Sampler)
	if !ok {
		return fmt.Errorf("model %s cannot sample", cfg.Model.Name)
	}
	defer nn.Recover(&err)
	sc := ts.NewScope()
	defer sc.Close()
	var x *ts.Tensor
	ts.NoGrad(func() { x, err = s.Sample(int64(*n), *temp) })
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	if cfg.Data.Is2D() {
		v := x.MustTo(gotch.CPU, false).Float64Values()
		f, err := os.Create(filepath.Join(*out, "samples.csv"))
		if err != nil {
			return err
		}
		fmt.Fprintln(f, "x,y")
		for i := 0; i+1 < len(v); i += 2 {
			fmt.Fprintf(f, "%g,%g\n", v[i], v[i+1])
		}
		fmt.Printf("wrote %d samples to %s\n", *n, f.Name())
		return f.Close()
	}
	tr, err := data.ParseTransform(cfg.Data.Dequantization, cfg.Data.Range)
	if err != nil {
		return err
	}
	u8, err := tr.Quantize(x)
	if err != nil {
		return err
	}
	pix, err := u8.MustTo(gotch.CPU, false).Bytes()
	if err != nil {
		return err
	}
	c, h, w := cfg.Data.Channels, cfg.Data.ImageSize, cfg.Data.ImageSize
	for i := 0; i < *n; i++ {
		img, err := plots.ImageGrid(pix[i*c*h*w:(i+1)*c*h*w], 1, c, h, w, 1, 0)
		if err != nil {
			return err
		}
		if err := plots.SavePNG(filepath.Join(*out, fmt.Sprintf("%06d.png", i)), img); err != nil {
			return err
		}
	}
	fmt.Printf("wrote %d samples of %s (%s) to %s\n", *n, cfg.Model.Name, filepath.Base(*ckpt), *out)
	return nil
}
