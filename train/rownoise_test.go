package train

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/mollification"
	"github.com/mollify/mollify/nn"
	"github.com/mollify/mollify/train/dist"
	"github.com/mollify/mollify/vaes"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// The runs of TestTwoRanksTrainVAEsAsOneProcess on 1×32×32 images: a
// tiny VAE and HVAE (eager) and IWAE (captured, RerunGrapher).
var rowNoiseWorkers = map[string]func(*dist.Group) (*Trainer, func(), error){
	"vae-eager":     func(g *dist.Group) (*Trainer, func(), error) { return vaeTrainer(g, config.ModelVAE, false) },
	"hvae-eager":    func(g *dist.Group) (*Trainer, func(), error) { return vaeTrainer(g, config.ModelHVAE, false) },
	"iwae-captured": func(g *dist.Group) (*Trainer, func(), error) { return vaeTrainer(g, config.ModelIWAE, true) },
}

// rowNoiseModel is a VAE checked from inside: its Loss fails unless the
// trainer has keyed the noise per global row for this rank (rank, world;
// world 1 off), and it declares itself capturable.
type rowNoiseModel struct {
	Model
	rank, world int
}

func (m rowNoiseModel) Loss(x *ts.Tensor) (nn.Loss, error) {
	if r, w := nn.RowShard(); r != m.rank || w != m.world {
		return nn.Loss{}, fmt.Errorf("the model's noise is keyed as rank %d of %d during the step, want %d of %d", r, w, m.rank, m.world)
	}
	return m.Model.Loss(x)
}

func (rowNoiseModel) CaptureReady() error { return nil }

// imageRows serves step i's global batch, rows [(i·B) mod (N−B), +B) of
// a fixed image set, or this rank's contiguous slice of it.
type imageRows struct {
	images             *ts.Tensor
	batch, rank, world int64
}

func (s imageRows) Batch(step int) (*ts.Tensor, error) {
	n := s.images.MustSize()[0]
	g := s.images.MustNarrow(0, (int64(step)*s.batch)%(n-s.batch), s.batch, false)
	per := s.batch / s.world
	return g.MustNarrow(0, s.rank*per, per, false), nil
}

// vaeTrainer is one rank's trainer of a tiny VAE variant (g nil: one
// process on the global batch of 8): Gaussian mollification sharded as
// cmd/train does, clipping, a capturable Adam. The batch norms use their
// running statistics (SetTraining(false)) so that each example's loss
// depends on its own row only and half batches average to the whole
// batch's gradient; the noise is then all that can tell the runs apart.
// The networks are the smallest Table 4 allows (width 1/128) and the
// batch small: at width 1/32, batch 16, some run lengths ended up to
// 7e-5 apart with the noise keyed right and the first gradients equal to
// float rounding (likely a ReLU input within rounding of zero among the
// ~10⁵ of a step); this size stayed under 1.2e-7 for 6 to 16 steps.
// A hook on every rank fails if the noise is still keyed when hooks run.
func vaeTrainer(g *dist.Group, model string, captured bool) (*Trainer, func(), error) {
	c := testConfig(12)
	c.Optim.GradClip = 5
	c.Data.BatchSize = 8
	rng, err := nn.Seed(c.Run.Seed)
	if err != nil {
		return nil, func() {}, err
	}
	store := nn.NewStore(gotch.CPU)
	closers := []func(){store.Close}
	done := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	vc := config.DefaultVAE()
	vc.Latent, vc.Width, vc.ImportanceSamples = 4, 1.0/128, 2
	dc := config.Data{ImageSize: 32, Channels: 1, Range: config.RangeUnit}
	var m interface {
		Model
		SetTraining(bool)
	}
	switch model {
	case config.ModelVAE:
		m, err = vaes.NewVAE(store.Root(), vc, dc)
	case config.ModelIWAE:
		m, err = vaes.NewIWAE(store.Root(), vc, dc)
	case config.ModelHVAE:
		m, err = vaes.NewHVAE(store.Root(), vc, dc)
	default:
		err = fmt.Errorf("no test VAE %q", model)
	}
	if err != nil {
		return nil, done, err
	}
	m.SetTraining(false)
	opt, err := nn.NewOptimizer(store, nn.OptimConfig{Name: "adam", LR: c.Optim.LR, Capturable: true})
	if err != nil {
		return nil, done, err
	}
	closers = append(closers, opt.Close)
	moll, err := mollification.FromConfig(c, gotch.CPU)
	if err != nil {
		return nil, done, err
	}
	o, err := NewOptions(c)
	if err != nil {
		return nil, done, err
	}
	o.TensorBoard = false
	sc := ts.NewScope()
	images := ts.MustRand([]int64{64, 1, 32, 32}, gotch.Float, gotch.CPU)
	sc.Detach(images)
	sc.Close()
	closers = append(closers, func() { images.MustDrop() })
	rows := imageRows{images: images, batch: int64(c.Data.BatchSize), world: 1}
	wrapped := rowNoiseModel{Model: m, world: 1}
	tr := &Trainer{Options: o, Dir: os.TempDir(), Device: gotch.CPU, Store: store, Model: wrapped,
		Optim: opt, Mollifier: moll, RNG: rng, Log: io.Discard}
	closers = append(closers, tr.Close)
	if g != nil {
		tr.Dist = g
		rows.rank, rows.world = int64(g.Rank()), int64(g.Size())
		if g.Size() > 1 {
			wrapped.rank, wrapped.world = g.Rank(), g.Size()
		}
		if tr.Mollifier, err = mollification.Shard(moll, g.Rank(), g.Size()); err != nil {
			return nil, done, err
		}
	}
	tr.Data, tr.Model = rows, wrapped
	if captured {
		tr.Options.CUDAGraph = config.CUDAGraphOn
		tr.Graphs = &RerunGrapher{}
	} else {
		tr.Options.CUDAGraph = config.CUDAGraphOff
	}
	tr.Hooks = append(tr.Hooks, Hook{Name: "row-noise-off", Every: 1, AllRanks: true, Fn: func(*Trainer, *StepStats) error {
		if r, w := nn.RowShard(); w != 1 {
			return fmt.Errorf("hooks run with the model's noise keyed as rank %d of %d, want it off", r, w)
		}
		return nil
	}})
	return tr, done, nil
}

// Two Gloo ranks training a VAE and an HVAE (eager; HVAE draws ε and the
// momentum) and an IWAE (captured steps, K=2 samples per example) on halves of each batch end with the parameters
// of one process on the whole batch, to the RealNVP parity test's
// tolerance. It needs each rank's ε to be its rows of the global batch's
// draw: with every rank drawing ε for its own rows (the same ε at the
// same slice position on every rank) the runs differ by far more.
func TestTwoRanksTrainVAEsAsOneProcess(t *testing.T) {
	for _, name := range []string{"vae-eager", "iwae-captured", "hvae-eager"} {
		ref, done, err := rowNoiseWorkers[name](nil)
		if err == nil {
			err = ref.Run()
		}
		if err != nil {
			done()
			t.Fatalf("%s, one process: %v", name, err)
		}
		out := filepath.Join(t.TempDir(), name+".safetensors")
		spawnRanks(t, name, 2, out)
		sc := ts.NewScope()
		got, _, err := nn.LoadTensors(out)
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for n, w := range ref.Store.Named() {
			if got[n] == nil {
				t.Fatalf("%s: the 2-rank run saved no %s", name, n)
			}
			wv, gv := w.Float64Values(), got[n].Float64Values()
			for i := range wv {
				worst = math.Max(worst, math.Abs(wv[i]-gv[i])/math.Max(1, math.Abs(wv[i])))
			}

		}
		sc.Close()
		done()
		if worst > 1e-6 {
			t.Errorf("%s: a parameter of the 2-rank run is %.3g (relative) away from the one-process run's", name, worst)
		}
		t.Logf("%s: largest relative difference %.3g", name, worst)
	}
}
