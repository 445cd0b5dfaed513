package models

import (
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/nn"
	"github.com/mollify/mollify/vaes"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

var vaeVariants = []string{config.ModelVAE, config.ModelBetaVAE, config.ModelIWAE, config.ModelVAEIAF, config.ModelHVAE}

// cifarConfig names the shipped CIFAR-10 config of a VAE variant; β-VAE's
// files are betavae_*.yaml.
func cifarConfig(model string) string {
	return strings.ReplaceAll(model, "beta_vae", "betavae") + "_cifar10"
}

// smallVAE builds a variant as Build would, from the shipped CIFAR-10
// config, with Table 4 nets at width 1/32, latent 4 and (vae_iaf) MADEs of
// 16 units, so that it runs in milliseconds.
func smallVAE(t *testing.T, name string, sets ...string) (*VAE, *nn.Store) {
	t.Helper()
	small := []string{"model.vae.latent=4", "model.vae.width=0.03125", "model.vae.iaf.hidden_units=16"}
	c, err := config.Load(cifarConfig(name), append(small, sets...))
	if err != nil {
		t.Fatal(err)
	}
	s := nn.NewStore(gotch.CPU)
	m, err := newVAE(c, s.Root())
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	return m.(*VAE), s
}

// Every shipped VAE config builds the Table 4 model through the registry,
// with the paper's hyper-parameters, and its loss has the named terms.
func TestVAEFamilyBuildsFromShippedConfigs(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	terms := map[string][]string{
		config.ModelVAE:     {"kl", "recon"},
		config.ModelBetaVAE: {"kl", "neg_elbo", "recon"},
		config.ModelIWAE:    {"bound", "kl", "recon"},
		config.ModelVAEIAF:  {"kl", "log_det", "recon"},
		config.ModelHVAE:    {"kl", "momentum", "recon"},
	}
	for _, name := range vaeVariants {
		t.Run(name, func(t *testing.T) {
			sc := ts.NewScope()
			defer sc.Close()
			c, err := config.Load(cifarConfig(name), nil)
			if err != nil {
				t.Fatal(err)
			}
			m, s := buildModel(t, c, 1)
			defer s.Close()
			v, ok := m.(*VAE)
			if !ok {
				t.Fatalf("%s builds a %T", name, m)
			}
			if v.Dims() != 3072 {
				t.Errorf("D = %d", v.Dims())
			}
			switch n := v.Net.(type) {
			case *vaes.BetaVAE:
				if n.Beta() != 0.1 {
					t.Errorf("β = %g, want the paper's 0.1", n.Beta())
				}
			case *vaes.IWAE:
				if n.K != 5 || v.EvalSamples != 5 {
					t.Errorf("K = %d, EvalSamples %d, want 5", n.K, v.EvalSamples)
				}
			case *vaes.VAEIAF:
				if len(n.Flow.Blocks) != 2 || len(n.Flow.Blocks[0].Hidden) != 3 || n.Flow.Blocks[0].Hidden[0].Out != 128 {
					t.Errorf("IAF is not 2 MADE blocks of 3 × 128")
				}
			case *vaes.HVAE:
				if h := n.Config.HVAE; h.LeapfrogSteps != 1 || h.BetaZero != 0.3 || !h.LearnStepSize {
					t.Errorf("HVAE config %+v", h)
				}
				if ss, _ := n.StepSize(); math.Abs(ss-1e-3) > 1e-9 {
					t.Errorf("initial step size %g, want 0.001", ss)
				}
			}
			// Table 4 at full width: ~40M parameters, mostly the decoder's FC.
			if np := s.NumParams(); np < 35e6 || np > 50e6 {
				t.Errorf("%d parameters", np)
			}
			l, err := m.Loss(ts.MustRand([]int64{2, 3, 32, 32}, gotch.Float, gotch.CPU))
			if err != nil {
				t.Fatal(err)
			}
			if got := keys(l.Terms); strings.Join(got, ",") != strings.Join(terms[name], ",") {
				t.Errorf("terms %v, want %v", got, terms[name])
			}
			if v := scalarOf(t, l.Total); math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 {
				t.Errorf("loss %g", v)
			}
		})
	}
}

func keys(m map[string]*ts.Tensor) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestVAEConfigErrors(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sc := ts.NewScope()
	defer sc.Close()
	s := nn.NewStore(gotch.CPU)
	defer s.Close()
	twoD := config.Default()
	twoD.Model.Name = config.ModelVAE
	load := func(name string, edit func(*config.Config)) *config.Config {
		c, err := config.Load(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		edit(c)
		return c
	}
	for i, tc := range []struct {
		name string
		c    *config.Config
		want string
	}{
		{"2-D data", &twoD, "vae needs image data"},
		{"bce on signed data", load("vae_cifar10", func(c *config.Config) { c.Data.Range = config.RangeSigned; c.Model.VAE.Recon = config.ReconBCE }), "needs targets in [0, 1]"},
		{"unknown recon", load("iwae_cifar10", func(c *config.Config) { c.Model.VAE.Recon = "l2" }), `model.vae.recon: unknown value "l2"`},
		{"image size", load("hvae_cifar10", func(c *config.Config) { c.Data.ImageSize = 28 }), "which exist for data.image_size 32 or 64, got 28"},
		{"beta", load("betavae_cifar10", func(c *config.Config) { c.Model.VAE.Beta = 0 }), "model.vae.beta must be a finite number > 0"},
	} {
		_, err := Build(tc.c, s.Root().Subf("m%d", i))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
	m, s2 := smallVAE(t, config.ModelVAE)
	defer s2.Close()
	if _, err := m.Loss(nn.Zeros([]int64{2, 3, 64, 64}, gotch.CPU)); err == nil || !strings.Contains(err.Error(), "want [N, 3, 32, 32]") {
		t.Errorf("loss on 64×64 images: %v", err)
	}
}

// Loss uses batch statistics and updates the running ones; evaluation and
// sampling use the running ones and leave them alone; Evaluate reports the
// ELBO (and the IWAE bound, above it) in nats, and bits/dim of LogProb.
func TestVAEAdapterModesAndEvaluate(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, name := range vaeVariants {
		t.Run(name, func(t *testing.T) {
			sc := ts.NewScope()
			defer sc.Close()
			m, s := smallVAE(t, name)
			defer s.Close()
			rm := s.Named()["encoder.bn0.running_mean"]
			snap := func() []float64 { return rm.MustTotype(gotch.Double, false).Float64Values(true) }
			x := dequantized(8, []int64{3, 32, 32})
			before := snap()
			ev, err := m.Evaluate(x)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := m.Sample(3, 0.7); err != nil {
				t.Fatal(err)
			}
			if after := snap(); !equal(before, after) {
				t.Error("evaluation or sampling changed the running statistics")
			}
			if _, err := m.Loss(x); err != nil {
				t.Fatal(err)
			}
			if after := snap(); equal(before, after) {
				t.Error("Loss did not update the running statistics")
			}
			want := []string{"bpd", "elbo"}
			if name == config.ModelIWAE {
				want = []string{"bpd", "elbo", "iwae_bound"}
			}
			if got := keys(ev); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("Evaluate keys %v, want %v", got, want)
			}
			elbo := scalarOf(t, ev["elbo"])
			best := elbo
			if name == config.ModelIWAE {
				best = scalarOf(t, ev["iwae_bound"])
				if best < elbo {
					t.Errorf("IWAE bound %.3f below the ELBO %.3f", best, elbo)
				}
			}
			if bpd := scalarOf(t, ev["bpd"]); math.Abs(bpd-m.BitsPerDim(-best)) > 1e-3 {
				t.Errorf("bpd %.5f, BitsPerDim(−bound) %.5f", bpd, m.BitsPerDim(-best))
			}
			// normalised: for mse the ELBO carries −D/2·log 2π
			if !(elbo < -0.5*3072*math.Log(2*math.Pi)) {
				t.Errorf("ELBO %.1f is above −D/2·log 2π: the Gaussian constant is missing", elbo)
			}
		})
	}
}

func equal(a, b []float64) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}

// Every variant lowers its loss on one batch in a few Adam steps, without
// NaN or Inf.
func TestVAEsTrainOnABatch(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, name := range vaeVariants {
		t.Run(name, func(t *testing.T) {
			sc := ts.NewScope()
			defer sc.Close()
			if _, err := nn.Seed(5); err != nil {
				t.Fatal(err)
			}
			m, s := smallVAE(t, name)
			defer s.Close()
			checkTrains(t, m, s, dequantized(16, []int64{3, 32, 32}), 3e-3)
		})
	}
}

// BenchmarkVAECIFAR10Step times one training step of a shipped VAE config
// (Table 4 at full width) on CIFAR-sized random data:
//
//	MOLLIFY_BENCH_MODEL=vae MOLLIFY_BENCH_BATCH=128 MOLLIFY_THREADS=2 \
//	  go test ./models -run '^$' -bench VAECIFAR10Step -benchtime 3x
func BenchmarkVAECIFAR10Step(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	nn.SetThreads(nn.DefaultThreads())
	batch := int64(32)
	if v, err := strconv.Atoi(os.Getenv("MOLLIFY_BENCH_BATCH")); err == nil && v > 0 {
		batch = int64(v)
	}
	name := config.ModelVAE
	if v := os.Getenv("MOLLIFY_BENCH_MODEL"); v != "" {
		name = v
	}
	c, err := config.Load(cifarConfig(name), nil)
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
	x := dequantized(batch, []int64{3, 32, 32}).MustTo(dev, true)
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
		v, _ := loss.Total.Float64()
		return v
	}
	step() // allocator warm-up
	b.ResetTimer()
	start := time.Now()
	var loss float64
	for i := 0; i < b.N; i++ {
		loss = step()
	}
	sec := time.Since(start).Seconds() / float64(b.N)
	b.ReportMetric(sec, "s/step")
	b.ReportMetric(float64(batch)/sec, "img/s")
	b.Logf("%s on %v, batch %d, threads %d, %d params: %.3f s/step, loss %.2f nats", name, dev, batch, nn.Threads(), s.NumParams(), sec, loss)
}
