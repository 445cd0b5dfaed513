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

// smallRealNVP loads the shipped CIFAR-10 config, shrunk to 3×8×8 with
// one residual block of 4 channels.
func smallRealNVP(t *testing.T, sets ...string) *config.Config {
	t.Helper()
	c, err := config.Load("realnvp_cifar10", append([]string{"data.image_size=8", "model.realnvp.res_blocks=1", "model.realnvp.channels=4"}, sets...))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func buildModel(t *testing.T, c *config.Config, seed uint64) (train.Model, *nn.Store) {
	t.Helper()
	if _, err := nn.Seed(seed); err != nil {
		t.Fatal(err)
	}
	s := nn.NewStore(gotch.CPU)
	m, err := Build(c, s.Root())
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	return m, s
}

// dequantized returns n uniformly dequantized 8-bit images (k+u)/256 in
// [0,1).
func dequantized(n int64, shape []int64) *ts.Tensor {
	full := append([]int64{n}, shape...)
	k := ts.MustRandint(256, full, gotch.Float, gotch.CPU)
	u := ts.MustRand(full, gotch.Float, gotch.CPU)
	return k.MustAdd(u, true).MustDivScalar(ts.FloatScalar(256), true)
}

func scalarOf(t *testing.T, x *ts.Tensor) float64 {
	t.Helper()
	v, err := x.Float64()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A fresh RealNVP is the logit alone (every coupling network outputs 0), so
// its log-likelihood has a closed form: log N(logit(p); 0, 1) + the logit's
// log-det, p = α + (1−2α)u. The training loss is the model-space part
// (Preprocess, then Loss); LogProb and bits/dim add the logit's log-det.
// Bits/dim on uniformly dequantized [0,1] data are nll/(D·ln 2) + 8.
func TestRealNVPBitsPerDimConvention(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sc := ts.NewScope()
	defer sc.Close()
	c := smallRealNVP(t)
	m, s := buildModel(t, c, 1)
	defer s.Close()
	r := m.(*RealNVP)
	x := dequantized(4, []int64{3, 8, 8})
	y, logDet, err := r.Preprocess(x)
	if err != nil {
		t.Fatal(err)
	}
	loss, err := r.Loss(y)
	if err != nil {
		t.Fatal(err)
	}
	const alpha = 0.05
	var want, wantModel, wantLogDet float64
	for _, u := range x.Float64Values() {
		p := alpha + (1-2*alpha)*u
		z := math.Log(p / (1 - p))
		ld := math.Log(1-2*alpha) - math.Log(p) - math.Log(1-p)
		want += -0.5*z*z - 0.5*math.Log(2*math.Pi) + ld
		wantModel += -0.5*z*z - 0.5*math.Log(2*math.Pi)
		wantLogDet += ld
	}
	want, wantModel, wantLogDet = -want/4, -wantModel/4, wantLogDet/4
	if got := scalarOf(t, loss.Total); math.Abs(got-wantModel) > 1e-4*math.Abs(wantModel) {
		t.Errorf("model-space NLL %.5f nats, closed form %.5f", got, wantModel)
	}
	if got := scalarOf(t, logDet.MustMean(gotch.Float, false)); math.Abs(got-wantLogDet) > 1e-4*math.Abs(wantLogDet) {
		t.Errorf("preprocessing log-det %.5f, closed form %.5f", got, wantLogDet)
	}
	lp, err := r.LogProb(x)
	if err != nil {
		t.Fatal(err)
	}
	nll := -scalarOf(t, lp.MustMean(gotch.Float, false))
	if math.Abs(nll-want) > 1e-4*math.Abs(want) {
		t.Errorf("NLL %.5f nats, closed form %.5f", nll, want)
	}
	wantBPD := want/(192*math.Ln2) + 8
	if bpd := r.BitsPerDim(nll); math.Abs(bpd-wantBPD) > 1e-5 {
		t.Errorf("bits/dim %.6f, want %.6f", bpd, wantBPD)
	}
	if math.IsNaN(wantBPD) || wantBPD < 0 || wantBPD > 16 {
		t.Errorf("bits/dim %g is not a plausible number", wantBPD)
	}
	var _ Density = r
	var _ Sampler = r
	var _ train.Preprocessor = r
}

// The same weights on signed data: log p(2u−1) = log p(u) − D·ln 2, and
// bits/dim are the same number (offset 7 instead of 8).
func TestRealNVPSignedRangeMatchesUnit(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sc := ts.NewScope()
	defer sc.Close()
	mu, su := buildModel(t, smallRealNVP(t), 5)
	defer su.Close()
	ms, ss := buildModel(t, smallRealNVP(t, "data.range=signed"), 5)
	defer ss.Close()
	// Move every parameter the same way in both models.
	ts.NoGrad(func() {
		pu, ps := su.Parameters(), ss.Parameters()
		for i := range pu {
			noise := nn.Randn(pu[i].MustSize(), gotch.CPU).MustMulScalar(ts.FloatScalar(0.05), true)
			pu[i].Copy_(pu[i].MustAdd(noise, false))
			ps[i].Copy_(pu[i])
		}
	})
	u := dequantized(3, []int64{3, 8, 8})
	x := u.MustMulScalar(ts.FloatScalar(2), false).MustSubScalar(ts.FloatScalar(1), true)
	lu, err := mu.(*RealNVP).LogProb(u)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := ms.(*RealNVP).LogProb(x)
	if err != nil {
		t.Fatal(err)
	}
	lv, sv := lu.Float64Values(), ls.Float64Values()
	for i := range lv {
		if math.Abs(sv[i]-(lv[i]-192*math.Ln2)) > 1e-3 {
			t.Errorf("example %d: log p signed %.4f, unit %.4f − D ln 2 = %.4f", i, sv[i], lv[i], lv[i]-192*math.Ln2)
		}
		bu, bs := mu.(*RealNVP).BitsPerDim(-lv[i]), ms.(*RealNVP).BitsPerDim(-sv[i])
		if math.Abs(bu-bs) > 1e-5 {
			t.Errorf("example %d: bits/dim %.6f (unit) vs %.6f (signed)", i, bu, bs)
		}
	}
	smp, err := ms.(Sampler).Sample(4, 0.7)
	if err != nil {
		t.Fatal(err)
	}
	if got := smp.MustSize(); got[0] != 4 || got[1] != 3 || got[2] != 8 {
		t.Errorf("samples of shape %v", got)
	}
}

// Mollification happens in logit space (issue 11, defect 3): the loss of
// a heavily mollified model-space batch is finite, with no clamping; the
// old loss clamped data-space values to [0,1] and trained on point masses
// at the logit's ends.
func TestRealNVPLossOnModelSpaceMollifiedBatch(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sc := ts.NewScope()
	defer sc.Close()
	m, s := buildModel(t, smallRealNVP(t), 2)
	defer s.Close()
	r := m.(*RealNVP)
	y, _, err := r.Preprocess(dequantized(4, []int64{3, 8, 8}))
	if err != nil {
		t.Fatal(err)
	}
	const sigma2 = 0.9
	ym := y.MustMulScalar(ts.FloatScalar(math.Sqrt(1-sigma2)), false).MustAdd(nn.Randn(y.MustSize(), gotch.CPU).MustMulScalar(ts.FloatScalar(math.Sqrt(sigma2)), true), true)
	loss, err := r.Loss(ym)
	if err != nil {
		t.Fatal(err)
	}
	if v := scalarOf(t, loss.Total); math.IsNaN(v) || math.IsInf(v, 0) {
		t.Errorf("loss %g on a mollified batch", v)
	}
	if _, ok := loss.Terms["clamped"]; ok {
		t.Error("the loss still clamps")
	}
	// A fresh model is N(0, I) in logit space: the loss is the closed form.
	var want float64
	for _, v := range ym.Float64Values() {
		want += 0.5*v*v + 0.5*math.Log(2*math.Pi)
	}
	if got := scalarOf(t, loss.Total); math.Abs(got-want/4) > 1e-4*want/4 {
		t.Errorf("loss %.4f, want log N in model space %.4f", got, want/4)
	}
}

// A few Adam steps on one batch lower the loss: gradients reach every
// part of the model through the library's optimizer.
func TestRealNVPTrainsOnABatch(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sc := ts.NewScope()
	defer sc.Close()
	m, s := buildModel(t, smallRealNVP(t), 3)
	defer s.Close()
	checkTrains(t, m, s, dequantized(16, []int64{3, 8, 8}), 1e-3)
}

func checkTrains(t *testing.T, m train.Model, s *nn.Store, x *ts.Tensor, lr float64) {
	t.Helper()
	opt, err := nn.NewOptimizer(s, nn.OptimConfig{Name: "adam", LR: lr})
	if err != nil {
		t.Fatal(err)
	}
	defer opt.Close()
	var first, last float64
	for i := 0; i < 15; i++ {
		step := ts.NewScope()
		in := x
		if p, ok := m.(train.Preprocessor); ok {
			var err error
			if in, _, err = p.Preprocess(x); err != nil {
				t.Fatal(err)
			}
		}
		loss, err := m.Loss(in)
		if err != nil {
			step.Close()
			t.Fatal(err)
		}
		v := scalarOf(t, loss.Total)
		if i == 0 {
			first = v
		}
		last = v
		loss.Total.MustBackward()
		if err := opt.Step(); err != nil {
			t.Fatal(err)
		}
		if err := opt.ZeroGrad(); err != nil {
			t.Fatal(err)
		}
		step.Close()
	}
	if !(last < first-0.5) {
		t.Errorf("loss went from %.3f to %.3f in 15 steps on one batch", first, last)
	}
}

func TestImageFlowConfigErrors(t *testing.T) {
	sc := ts.NewScope()
	defer sc.Close()
	s := nn.NewStore(gotch.CPU)
	defer s.Close()
	twoD := config.Default()
	twoD.Model.Name = config.ModelGlow
	badScale := smallGlow(t)
	badScale.Model.Glow.Scale = "softplus"
	badRange := smallRealNVP(t)
	badRange.Data.Range = "byte"
	cases := []struct {
		name string
		c    *config.Config
		want string
	}{
		{"glow on 2-D data", &twoD, "image flows need image data"},
		{"glow scale", badScale, `model.glow.scale: unknown value "softplus" (want "sigmoid" or "exp")`},
		{"realnvp range", badRange, "data.range \"byte\""},
	}
	for i, c := range cases {
		_, err := Build(c.c, s.Root().Subf("m%d", i))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
	// Wrong image size at run time is an error, not a panic.
	m, s2 := buildModel(t, smallRealNVP(t), 1)
	defer s2.Close()
	if _, err := m.Loss(nn.Zeros([]int64{2, 3, 16, 16}, gotch.CPU)); err == nil || !strings.Contains(err.Error(), "built for (N,3,8,8)") {
		t.Errorf("loss on 16×16 images: %v", err)
	}
}

func TestRealNVPCUDA(t *testing.T) {
	sc := ts.NewScope()
	defer sc.Close()
	checkCUDA(t, smallRealNVP(t), dequantized(8, []int64{3, 8, 8}))
}
