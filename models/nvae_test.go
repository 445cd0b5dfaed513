package models

import (
	"math"
	"runtime"
	"strings"
	"testing"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/nn"
	"github.com/mollify/mollify/train"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// The shipped nvae_mnist config builds through the registry with every
// capability its run asks for, and its loss has the named terms.
func TestNVAEBuildsFromShippedConfig(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sc := ts.NewScope()
	defer sc.Close()
	c, err := config.Load("nvae_mnist", []string{"data.batch_size=4"})
	if err != nil {
		t.Fatal(err)
	}
	s := nn.NewStore(gotch.CPU)
	defer s.Close()
	m, k, err := BuildFor(c, s.Root())
	if err != nil {
		t.Fatal(err)
	}
	if k.Density == nil || k.Sampler == nil || k.Evaluator == nil || k.BitsPerDim == nil {
		t.Fatalf("capabilities %+v: want density, sampler, evaluator and bits/dim", k)
	}
	n := m.(*NVAE)
	if n.BitsPerDimOffset() != 0 {
		t.Errorf("bits/dim offset %g, want 0 (the discretized likelihood is a probability of the 8-bit value)", n.BitsPerDimOffset())
	}
	if got, want := n.BitsPerDim(1024*math.Ln2), 1.0; math.Abs(got-want) > 1e-12 {
		t.Errorf("BitsPerDim(1024 ln 2) = %g, want %g", got, want)
	}
	if n.Net.Warmup.AnnealSteps != 0.3*300 || n.Net.MollifiedSteps != 150 {
		t.Errorf("warm-up over %g steps and %d mollified steps, want 90 and 150", n.Net.Warmup.AnnealSteps, n.Net.MollifiedSteps)
	}
	x := ts.MustRandint(256, []int64{4, 1, 32, 32}, gotch.Float, gotch.CPU).MustDivScalar(ts.FloatScalar(255), true)
	l, err := m.Loss(x)
	if err != nil {
		t.Fatal(err)
	}
	for _, term := range []string{"recon", "kl", "spectral", "kl_coeff"} {
		if l.Terms[term] == nil {
			t.Errorf("loss term %q missing", term)
		}
	}
	ev, err := n.Evaluate(x)
	if err != nil {
		t.Fatal(err)
	}
	elbo, bpd := ev["elbo"].Float64Values(false)[0], ev["bpd"].Float64Values(false)[0]
	if want := -elbo / (1024 * math.Ln2); math.Abs(bpd-want) > 1e-4*math.Abs(want) {
		t.Errorf("bpd %g, want −elbo/(D ln 2) = %g", bpd, want)
	}
	smp, err := n.Sample(3, 0.8)
	if err != nil {
		t.Fatal(err)
	}
	if sh := smp.MustSize(); len(sh) != 4 || sh[0] != 3 || sh[1] != 1 || sh[2] != 32 || sh[3] != 32 {
		t.Errorf("samples %v, want [3 1 32 32]", sh)
	}
	if err := n.CaptureReady(); err != nil {
		t.Errorf("CaptureReady: %v", err)
	}
}

// Settings the model cannot honour fail at build time with the YAML key.
func TestNVAEBuildErrors(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, tc := range []struct {
		sets []string
		want string
	}{
		{[]string{"model.nvae.postprocess_blocks=2"}, "postprocess_blocks"},
		{[]string{"data.dequantization=uniform"}, "data.dequantization"},
	} {
		c, err := config.Load("nvae_mnist", tc.sets)
		if err != nil {
			t.Fatal(err)
		}
		s := nn.NewStore(gotch.CPU)
		_, err = Build(c, s.Root())
		s.Close()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one naming %s", tc.sets, err, tc.want)
		}
	}
}

// NVAE's captured path on the CPU through RerunGrapher, with the
// continuous likelihood while mollifying (the phase picked on the device
// from the step buffer) and the KL warm-up read from the same buffer: the
// replays give the eager run's parameters and buffers (the step count
// included) bit for bit.
func TestNVAECapturedPathMatchesEager(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cfg := captureConfig(t, "nvae_mnist", 8, []string{"data.batch_size=4", "run.device=cpu", "model.nvae.mollified_likelihood=continuous"})
	eager, _ := trainCaptured(t, cfg, gotch.CPU, config.CUDAGraphOff, nil)
	g := &train.RerunGrapher{}
	captured, log := trainCaptured(t, cfg, gotch.CPU, config.CUDAGraphOn, g)
	if !strings.Contains(log, "captured as CUDA graphs") || g.Captures != 3 {
		t.Fatalf("%d captures (want 3: mollified loss, update, clean loss); log:\n%s", g.Captures, log)
	}
	if s := eager["step"]; len(s) != 1 || s[0] != 8 {
		t.Errorf("step buffer %v after 8 eager steps, want [8]", s)
	}
	compareParams(t, eager, captured, 0)
}

// The CIFAR-10 preset has exactly the parameters of NVAE's reference
// model with the same options (model.py AutoEncoder with res_mbconv,
// res_dist, 128 channels, 1 scale, 30 groups of 20 latents, 2 cells per
// group, 2 pre- and post-process cells, 1 flow, SE, 10 mixtures),
// instantiated under Debian's python3-torch 1.13.1 and counted with
// sum(p.numel() for p in model.parameters()): 130,852,480; its
// spectral regulariser covers NVAE's 610 convolutions and 364 batch norms.
func TestNVAECIFAR10ParameterCount(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c, err := config.Load("nvae_cifar10", nil)
	if err != nil {
		t.Fatal(err)
	}
	s := nn.NewStore(gotch.CPU)
	defer s.Close()
	m, err := Build(c, s.Root())
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, p := range s.Parameters() {
		k := int64(1)
		for _, d := range p.MustSize() {
			k *= d
		}
		n += k
	}
	if n != 130852480 {
		t.Errorf("%d parameters, want NVAE's 130852480", n)
	}
	net := m.(*NVAE).Net
	convs := len(net.Convs()) + 6*len(net.Flows)
	if convs != 610 || len(net.BatchNorms()) != 364 {
		t.Errorf("%d convolutions and %d batch norms, want NVAE's 610 and 364", convs, len(net.BatchNorms()))
	}
}

// model.nvae.iw_samples and readjust_bn* reach the model: Evaluate's
// bits/dim come from the K-sample bound (reported as log_likelihood, at
// least the ELBO of the same draws), and Sample readjusts the batch-norm
// statistics first, leaving the trained ones in place.
func TestNVAEEvaluationSettings(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sc := ts.NewScope()
	defer sc.Close()
	c, err := config.Load("nvae_mnist", []string{"data.batch_size=4", "model.nvae.iw_samples=3",
		"model.nvae.readjust_bn=true", "model.nvae.readjust_bn_iters=2", "model.nvae.readjust_bn_batch=4"})
	if err != nil {
		t.Fatal(err)
	}
	s := nn.NewStore(gotch.CPU)
	defer s.Close()
	b, err := Build(c, s.Root())
	if err != nil {
		t.Fatal(err)
	}
	m := b.(*NVAE)
	if m.EvalSamples != 3 || m.Readjust == nil || m.Readjust.Batch != 4 || m.Readjust.Iters != 2 {
		t.Fatalf("EvalSamples %d, Readjust %+v; want 3 and {4 2}", m.EvalSamples, m.Readjust)
	}
	x := ts.MustRandint(256, []int64{4, 1, 32, 32}, gotch.Float, gotch.CPU).MustDivScalar(ts.FloatScalar(255), true)
	ev, err := m.Evaluate(x)
	if err != nil {
		t.Fatal(err)
	}
	if ev["log_likelihood"] == nil {
		t.Fatalf("Evaluate with iw_samples 3 has no log_likelihood: %v", ev)
	}
	elbo, ll, bpd := ev["elbo"].Float64Values(false)[0], ev["log_likelihood"].Float64Values(false)[0], ev["bpd"].Float64Values(false)[0]
	if !(ll >= elbo) {
		t.Errorf("3-sample bound %g below the ELBO %g of the same draws", ll, elbo)
	}
	if want := -ll / (1024 * math.Ln2); math.Abs(bpd-want) > 1e-4*math.Abs(want) {
		t.Errorf("bpd %g, want −log_likelihood/(D ln 2) = %g", bpd, want)
	}
	bn := m.Net.Post[0].BatchNorms()[0].RunningMean
	before := bn.MustDetachCopy(false)
	ts.ManualSeed(3)
	got, err := m.Sample(3, 0.7)
	if err != nil {
		t.Fatal(err)
	}
	ts.ManualSeed(3)
	if plain, _ := m.Net.Sample(3, 0.7); got.MustEqual(plain, false) {
		t.Error("Sample with readjust_bn drew the samples of plain sampling: nothing was readjusted")
	}
	if !bn.MustEqual(before, false) {
		t.Error("Sample with readjust_bn left readjusted statistics in the model")
	}

	c, err = config.Load("nvae_mnist", []string{"data.batch_size=4"})
	if err != nil {
		t.Fatal(err)
	}
	s2 := nn.NewStore(gotch.CPU)
	defer s2.Close()
	if b, err = Build(c, s2.Root()); err != nil {
		t.Fatal(err)
	}
	if m := b.(*NVAE); m.EvalSamples != 1 || m.Readjust != nil {
		t.Errorf("shipped nvae_mnist: EvalSamples %d, Readjust %+v; want 1 and none", m.EvalSamples, m.Readjust)
	}
}

// nanImages is fixedImages with NaN batches at the given steps, which the
// trainer skips (non-finite loss).
type nanImages struct {
	fixedImages
	nan map[int]bool
}

func (f nanImages) Batch(step int) (*ts.Tensor, error) {
	x, err := f.fixedImages.Batch(step)
	if err != nil || !f.nan[step] {
		return x, err
	}
	return x.MustMulScalar(ts.FloatScalar(math.NaN()), true), nil
}

// The KL warm-up follows the trainer's step count, skipped steps
// included, eager and captured (RerunGrapher): steps 4 and 5 have NaN
// batches and are skipped, and every step's kl_coeff is still the
// schedule's value at that step (the step buffer, which the skip restores
// with the batch-norm statistics, used to lag by the skipped steps).
func TestNVAEWarmupFollowsTrainerThroughSkippedSteps(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const steps = 9
	cfg := captureConfig(t, "nvae_mnist", steps, []string{"data.batch_size=4", "run.device=cpu",
		"model.nvae.kl_anneal_portion=1", "run.max_nonfinite=3"})
	for _, mode := range []string{config.CUDAGraphOff, config.CUDAGraphOn} {
		t.Run(mode, func(t *testing.T) {
			var graphs train.Grapher
			if mode == config.CUDAGraphOn {
				graphs = &train.RerunGrapher{}
			}
			coeffs := map[int]float64{}
			skipped := map[int]bool{}
			record := train.Hook{Name: "record", Every: 1, Fn: func(_ *train.Trainer, st *train.StepStats) error {
				coeffs[st.Step], skipped[st.Step] = st.Terms["kl_coeff"], st.Skipped
				return nil
			}}
			s := cfg.Data.Shape()
			data := nanImages{fixedImages{[]int64{4, s[0], s[1], s[2]}, gotch.CPU}, map[int]bool{4: true, 5: true}}
			log := runTrainer(t, cfg, gotch.CPU, mode, graphs, data, []train.Hook{record}, func(tr *train.Trainer, m train.Model, _ *nn.Store) {
				if tr.Skipped() != 2 || !skipped[4] || !skipped[5] {
					t.Errorf("skipped %d steps (%v), want steps 4 and 5", tr.Skipped(), skipped)
				}
				net := m.(*NVAE).Net
				for step := 0; step < steps; step++ {
					if want := net.Warmup.Coeff(step); math.Abs(coeffs[step]-want) > 1e-6 {
						t.Errorf("step %d: kl_coeff %.6g, want the schedule's %.6g", step, coeffs[step], want)
					}
				}
				if got := net.Step.Float64Values(false)[0]; got != steps {
					t.Errorf("step buffer %g after %d trainer steps, want %d", got, steps, steps)
				}
			})
			if g, ok := graphs.(*train.RerunGrapher); ok && g.Captures < 2 {
				t.Errorf("%d captures, want the step captured; log:\n%s", g.Captures, log)
			}
		})
	}
}
