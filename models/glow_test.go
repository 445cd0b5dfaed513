package models

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/flows"
	"github.com/mollify/mollify/nn"
	"github.com/mollify/mollify/train"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// smallGlow loads the shipped CIFAR-10 Glow config shrunk to 3×8×8, L=2,
// K=2, width 16 (data in [-1,1], no dequantization, as shipped).
func smallGlow(t *testing.T, sets ...string) *config.Config {
	t.Helper()
	c, err := config.Load("glow_cifar10", append([]string{"data.image_size=8", "model.glow.levels=2", "model.glow.depth=2", "model.glow.hidden=16"}, sets...))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Glow on random signed data: the loss is a finite NLL in nats, and the
// bpd term is nll/(D·ln 2) + log2(255/2) (no dequantization, [-1,1]); with
// uniform dequantization the offset is 7.
func TestGlowLossAndBitsPerDim(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, c := range []struct {
		sets   []string
		offset float64
	}{
		{nil, math.Log2(127.5)},
		{[]string{"data.dequantization=uniform"}, 7},
		{[]string{"data.dequantization=uniform", "data.range=unit"}, 8},
		{[]string{"model.glow.prior=conditional"}, math.Log2(127.5)},
		{[]string{"model.glow.split=checkerboard", "model.glow.scale=exp", "model.glow.learned_base=false"}, math.Log2(127.5)},
	} {
		t.Run(fmt.Sprint(c.sets), func(t *testing.T) {
			sc := ts.NewScope()
			defer sc.Close()
			cfg := smallGlow(t, c.sets...)
			m, s := buildModel(t, cfg, 1)
			defer s.Close()
			g := m.(*Glow)
			if g.BitsPerDimOffset() != c.offset {
				t.Errorf("offset %g, want %g", g.BitsPerDimOffset(), c.offset)
			}
			x := dequantized(8, []int64{3, 8, 8})
			if cfg.Data.Range == "signed" {
				x = x.MustMulScalar(ts.FloatScalar(2), true).MustSubScalar(ts.FloatScalar(1), true)
			}
			loss, err := g.Loss(x)
			if err != nil {
				t.Fatal(err)
			}
			nll, bpd := scalarOf(t, loss.Total), scalarOf(t, loss.Terms["bpd"])
			if math.IsNaN(nll) || math.IsInf(nll, 0) {
				t.Fatalf("NLL %g", nll)
			}
			if want := nll/(192*math.Ln2) + c.offset; math.Abs(bpd-want) > 1e-4 {
				t.Errorf("bpd term %.6f, want %.6f", bpd, want)
			}
			lp, err := g.LogProb(x)
			if err != nil {
				t.Fatal(err)
			}
			mean := scalarOf(t, lp.MustMean(gotch.Float, false))
			if math.Abs(-mean-nll) > 1e-3 {
				t.Errorf("Loss %.4f is not −mean LogProb %.4f", nll, -mean)
			}
			smp, err := g.Sample(3, 0.7)
			if err != nil {
				t.Fatal(err)
			}
			if ok := scalarOf(t, smp.MustIsfinite(false).MustAll(true)); ok != 1 {
				t.Error("samples not finite")
			}
			var _ Density = g
			var _ Sampler = g
		})
	}
}

// The paper's Glow configs use the authors' per-channel prior; the
// conditional one is a key away; an unknown value lists the valid ones.
func TestGlowPriorConfig(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, name := range []string{"glow_cifar10", "glow_celeba", "glow_mnist"} {
		c, err := config.Load(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.Model.Glow.Prior != "per_channel" || !c.Model.Glow.LearnedBase {
			t.Errorf("%s: prior %q, learned_base %v; want per_channel, true", name, c.Model.Glow.Prior, c.Model.Glow.LearnedBase)
		}
	}
	if d := config.Default(); d.Model.Glow.Prior != "per_channel" {
		t.Errorf("default model.glow.prior %q, want per_channel", d.Model.Glow.Prior)
	}
	for _, c := range []struct {
		set   string
		prior flows.GlowPrior
	}{{"model.glow.prior=per_channel", flows.GlowPriorPerChannel}, {"model.glow.prior=conditional", flows.GlowPriorConditional}} {
		sc := ts.NewScope()
		m, s := buildModel(t, smallGlow(t, c.set), 1)
		g := m.(*Glow).Flow
		top, ok := g.Top.(*flows.GaussianBase)
		if g.Prior != c.prior || !ok || top.PerChannel() != (c.prior == flows.GlowPriorPerChannel) {
			t.Errorf("%s: built prior %v with top %#v", c.set, g.Prior, g.Top)
		}
		s.Close()
		sc.Close()
	}
	_, err := config.Load("glow_cifar10", []string{"model.glow.prior=per_element"})
	if want := `model.glow.prior: unknown value "per_element" (want "per_channel" or "conditional")`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("unknown prior: error %v, want one containing %q", err, want)
	}
}

// writeCheckpoint writes the model part of a checkpoint as
// train.SaveCheckpoint lays it out (model.* tensors, format
// mollify-checkpoint-1), after one loss evaluation (ActNorm init) and a
// perturbation of every parameter, so that a round trip is not trivial.
func writeCheckpoint(t *testing.T, m train.Model, s *nn.Store, x *ts.Tensor) string {
	t.Helper()
	if _, err := m.Loss(x); err != nil {
		t.Fatal(err)
	}
	ts.NoGrad(func() {
		for _, p := range s.Parameters() {
			p.Copy_(p.MustAdd(nn.Randn(p.MustSize(), gotch.CPU).MustMulScalar(ts.FloatScalar(0.05), true), false))
		}
	})
	tensors := map[string]*ts.Tensor{}
	for n, v := range s.Named() {
		tensors["model."+n] = v
	}
	path := filepath.Join(t.TempDir(), "ckpt.safetensors")
	if err := nn.SaveTensors(path, tensors, map[string]string{"format": "mollify-checkpoint-1"}); err != nil {
		t.Fatal(err)
	}
	return path
}

// A checkpoint loads into a model of the same prior and gives the same
// log p(x); one written with another Glow prior (or learned_base) fails
// with the missing and unexpected names and the --set that loads it.
func TestGlowCheckpointPriors(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sc := ts.NewScope()
	defer sc.Close()
	x := dequantized(4, []int64{3, 8, 8}).MustMulScalar(ts.FloatScalar(2), true).MustSubScalar(ts.FloatScalar(1), true)
	sets := map[string]string{
		"per_channel": "model.glow.prior=per_channel",
		"conditional": "model.glow.prior=conditional",
		"standard":    "model.glow.learned_base=false",
		// one level, no split: only the top's shape tells the priors apart
		"per_channel_L1": "model.glow.levels=1",
		"conditional_L1": "model.glow.levels=1 model.glow.prior=conditional",
	}
	ckpt, want := map[string]string{}, map[string]*ts.Tensor{}
	for name, set := range sets {
		m, s := buildModel(t, smallGlow(t, strings.Fields(set)...), 2)
		ckpt[name] = writeCheckpoint(t, m, s, x)
		lp, err := m.(*Glow).LogProb(x)
		if err != nil {
			t.Fatal(err)
		}
		want[name] = lp
		s.Close()
	}
	for _, c := range []struct {
		model, ckpt string
		errs        []string // empty: loads
	}{
		{"per_channel", "per_channel", nil},
		{"conditional", "conditional", nil},
		{"standard", "standard", nil},
		{"per_channel", "conditional", []string{"missing levels.0.split.base.loc", "unexpected levels.0.split.prior.bias", "written with a different Glow prior than this model's (model.glow.prior=per_channel)", "--set model.glow.prior=conditional"}},
		{"conditional", "per_channel", []string{"missing levels.0.split.prior.bias", "unexpected levels.0.split.base.loc", "(model.glow.prior=conditional)", "--set model.glow.prior=per_channel"}},
		{"per_channel", "standard", []string{"missing levels.0.split.base.loc", "unexpected none", "--set model.glow.learned_base=false"}},
		{"standard", "conditional", []string{"unexpected levels.0.split.prior.bias", "(model.glow.learned_base=false)", "--set model.glow.learned_base=true --set model.glow.prior=conditional"}},
		{"per_channel_L1", "conditional_L1", []string{`"top.loc" has shape [1 12 1 1] in the model but [1 12 4 4] in the weights (and 3 more of another shape)`, "--set model.glow.prior=conditional"}},
		{"conditional_L1", "per_channel_L1", []string{`"top.loc" has shape [1 12 4 4] in the model but [1 12 1 1]`, "--set model.glow.prior=per_channel"}},
	} {
		t.Run(c.model+"<-"+c.ckpt, func(t *testing.T) {
			sc := ts.NewScope()
			defer sc.Close()
			m, s := buildModel(t, smallGlow(t, strings.Fields(sets[c.model])...), 3)
			defer s.Close()
			err := train.LoadModelWeights(ckpt[c.ckpt], s)
			if len(c.errs) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				lp, err := m.(*Glow).LogProb(x)
				if err != nil {
					t.Fatal(err)
				}
				if d := lp.MustSub(want[c.ckpt], false).MustAbs(true).MustMax(true).Float64Values()[0]; d > 1e-4 {
					t.Errorf("log p after the round trip differs by %g", d)
				}
				return
			}
			if err == nil {
				t.Fatal("loaded a checkpoint of another prior")
			}
			for _, w := range c.errs {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestGlowTrainsOnABatch(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sc := ts.NewScope()
	defer sc.Close()
	m, s := buildModel(t, smallGlow(t), 3)
	defer s.Close()
	x := dequantized(16, []int64{3, 8, 8}).MustMulScalar(ts.FloatScalar(2), true).MustSubScalar(ts.FloatScalar(1), true)
	checkTrains(t, m, s, x, 1e-3)
}

// BenchmarkGlowCIFAR10Step is one training step (forward, backward, Adamax)
// of the shipped glow_cifar10 model (L=3, K=20, width 512, 3×32×32) at
// batch $MOLLIFY_BENCH_BATCH (default 16), threads $MOLLIFY_THREADS:
//
//	MOLLIFY_THREADS=2 go test ./models -run '^$' -bench GlowCIFAR10Step -benchtime 3x
func BenchmarkGlowCIFAR10Step(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	nn.SetThreads(nn.DefaultThreads())
	batch := int64(16)
	if v, err := strconv.Atoi(os.Getenv("MOLLIFY_BENCH_BATCH")); err == nil && v > 0 {
		batch = int64(v)
	}
	c, err := config.Load("glow_cifar10", nil)
	if err != nil {
		b.Fatal(err)
	}
	dev, err := nn.ParseDevice(os.Getenv("MOLLIFY_BENCH_DEVICE"))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := nn.Seed(0); err != nil {
		b.Fatal(err)
	}
	s := nn.NewStore(dev)
	defer s.Close()
	m, err := Build(c, s.Root())
	if err != nil {
		b.Fatal(err)
	}
	opt, err := nn.NewOptimizer(s, nn.OptimConfig{Name: c.Optim.Name, LR: c.Optim.LR})
	if err != nil {
		b.Fatal(err)
	}
	defer opt.Close()
	sc := ts.NewScope()
	x := dequantized(batch, []int64{3, 32, 32}).MustMulScalar(ts.FloatScalar(2), true).MustSubScalar(ts.FloatScalar(1), true).MustTo(dev, true)
	sc.Keep(x)
	sc.Close()
	step := func() float64 {
		sc := ts.NewScope()
		defer sc.Close()
		loss, err := m.Loss(x)
		if err != nil {
			b.Fatal(err)
		}
		loss.Total.MustBackward()
		if err := opt.Step(); err != nil {
			b.Fatal(err)
		}
		if err := opt.ZeroGrad(); err != nil {
			b.Fatal(err)
		}
		v, _ := loss.Terms["bpd"].Float64()
		return v
	}
	step() // ActNorm init and allocator warm-up
	b.ResetTimer()
	start := time.Now()
	var bpd float64
	for i := 0; i < b.N; i++ {
		bpd = step()
	}
	sec := time.Since(start).Seconds() / float64(b.N)
	b.ReportMetric(sec, "s/step")
	b.ReportMetric(float64(batch)/sec, "img/s")
	b.Logf("device %v, batch %d, threads %d, %d params: %.3f s/step, bpd %.3f", dev, batch, nn.Threads(), s.NumParams(), sec, bpd)
}

// checkCUDA builds the model on the CPU and on CUDA with the same weights:
// LogProb agrees, the CUDA loss trains a step, samples are finite and on
// the GPU. Skipped where no GPU is visible.
func checkCUDA(t *testing.T, cfg *config.Config, x *ts.Tensor) {
	t.Helper()
	if !gotch.CUDA.IsAvailable() {
		t.Skip("CUDA not available")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	dev, err := nn.ParseDevice("cuda:0")
	if err != nil {
		t.Fatal(err)
	}
	cm, cs := buildModel(t, cfg, 4)
	defer cs.Close()
	if _, err := cm.Loss(x); err != nil { // ActNorm init on the CPU model
		t.Fatal(err)
	}
	gs := nn.NewStore(dev)
	defer gs.Close()
	gm, err := Build(cfg, gs.Root())
	if err != nil {
		t.Fatal(err)
	}
	if err := gs.Load(cs.Named()); err != nil {
		t.Fatal(err)
	}
	xg := x.MustTo(dev, false)
	lc, err := cm.(Density).LogProb(x)
	if err != nil {
		t.Fatal(err)
	}
	lg, err := gm.(Density).LogProb(xg)
	if err != nil {
		t.Fatal(err)
	}
	c, g := lc.Float64Values(), lg.MustTo(gotch.CPU, false).Float64Values()
	for i := range c {
		if math.Abs(c[i]-g[i]) > 1e-4*math.Abs(c[i]) {
			t.Errorf("example %d: log p %.5f on CPU, %.5f on CUDA", i, c[i], g[i])
		}
	}
	opt, err := nn.NewOptimizer(gs, nn.OptimConfig{Name: "adamax", LR: 1e-3})
	if err != nil {
		t.Fatal(err)
	}
	defer opt.Close()
	loss, err := gm.Loss(xg)
	if err != nil {
		t.Fatal(err)
	}
	loss.Total.MustBackward()
	if err := opt.Step(); err != nil {
		t.Fatal(err)
	}
	smp, err := gm.(Sampler).Sample(4, 0.7)
	if err != nil {
		t.Fatal(err)
	}
	if !smp.MustDevice().IsCuda() {
		t.Errorf("samples on %v", smp.MustDevice())
	}
	if ok := scalarOf(t, smp.MustIsfinite(false).MustAll(true)); ok != 1 {
		t.Error("CUDA samples not finite")
	}
}

func TestGlowCUDA(t *testing.T) {
	sc := ts.NewScope()
	defer sc.Close()
	checkCUDA(t, smallGlow(t), dequantized(8, []int64{3, 8, 8}).MustMulScalar(ts.FloatScalar(2), true).MustSubScalar(ts.FloatScalar(1), true))
}

// model.glow.coupling_kernel reaches the coupling networks: 5 gives 5×5
// first and last convolutions (the middle one stays 1×1) on images of the
// same size, and the model trains; an even kernel is a config error.
func TestGlowCouplingKernelFromConfig(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sc := ts.NewScope()
	defer sc.Close()
	m, s := buildModel(t, smallGlow(t, "model.glow.coupling_kernel=5"), 1)
	defer s.Close()
	for _, name := range []string{"levels.0.layers.1.coupling.net.0.weight", "levels.1.layers.2.coupling.net.4.weight", "levels.0.layers.1.coupling.net.2.weight"} {
		w, ok := s.Named()[name]
		if !ok {
			t.Fatalf("no parameter %s", name)
		}
		k := int64(5)
		if strings.Contains(name, "net.2") {
			k = 1
		}
		if got := w.MustSize(); got[2] != k || got[3] != k {
			t.Errorf("%s has shape %v, want a %d×%d kernel", name, got, k, k)
		}
	}
	l, err := m.Loss(ts.MustRand([]int64{4, 3, 8, 8}, gotch.Float, gotch.CPU))
	if err != nil {
		t.Fatal(err)
	}
	if v := scalarOf(t, l.Total); math.IsNaN(v) || math.IsInf(v, 0) {
		t.Errorf("loss %g", v)
	}
	_, err = config.Load("glow_cifar10", []string{"model.glow.coupling_kernel=4"})
	if want := "model.glow.coupling_kernel must be odd and > 0"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("even kernel: error %v, want one containing %q", err, want)
	}
}
