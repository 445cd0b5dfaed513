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
// log-det, p = α + (1−2α)u. Bits/dim on uniformly dequantized [0,1] data
// are nll/(D·ln 2) + 8.
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
	loss, err := r.Loss(x)
	if err != nil {
		t.Fatal(err)
	}
	const alpha = 0.05
	var want float64
	for _, u := range x.Float64Values() {
		p := alpha + (1-2*alpha)*u
		z := math.Log(p / (1 - p))
		want += -0.5*z*z - 0.5*math.Log(2*math.Pi) + math.Log(1-2*alpha) - math.Log(p) - math.Log(1-p)
	}
	want = -want / 4
	nll := scalarOf(t, loss.Total)
	if math.Abs(nll-want) > 1e-4*math.Abs(want) {
		t.Errorf("NLL %.5f nats, closed form %.5f", nll, want)
	}
	bpd := scalarOf(t, loss.Terms["bpd"])
	wantBPD := want/(192*math.Ln2) + 8
	if math.Abs(bpd-wantBPD) > 1e-5 || math.Abs(r.BitsPerDim(want)-wantBPD) > 1e-12 {
		t.Errorf("bits/dim %.6f (term) and %.6f (BitsPerDim), want %.6f", bpd, r.BitsPerDim(want), wantBPD)
	}
	if math.IsNaN(bpd) || bpd < 0 || bpd > 16 {
		t.Errorf("bits/dim %g is not a plausible number", bpd)
	}
	if v := scalarOf(t, loss.Terms["clamped"]); v != 0 {
		t.Errorf("clamped %g on data in [0,1)", v)
	}
	var _ Density = r
	var _ Sampler = r
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

// Gaussian mollification leaves [0,1]; the loss clamps for the logit and
// says how much it clamped, instead of returning NaN.
func TestRealNVPLossClampsMollifiedData(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sc := ts.NewScope()
	defer sc.Close()
	m, s := buildModel(t, smallRealNVP(t), 2)
	defer s.Close()
	x := nn.Randn([]int64{4, 3, 8, 8}, gotch.CPU).MustMulScalar(ts.FloatScalar(0.7), true).MustAddScalar(ts.FloatScalar(0.5), true)
	var outside float64
	for _, v := range x.Float64Values() {
		if v < 0 || v > 1 {
			outside++
		}
	}
	loss, err := m.Loss(x)
	if err != nil {
		t.Fatal(err)
	}
	if v := scalarOf(t, loss.Total); math.IsNaN(v) || math.IsInf(v, 0) {
		t.Errorf("loss %g on mollified data", v)
	}
	if got, want := scalarOf(t, loss.Terms["clamped"]), outside/(4*192); math.Abs(got-want) > 1e-6 || want == 0 {
		t.Errorf("clamped fraction %g, want %g", got, want)
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
		loss, err := m.Loss(x)
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
		{"glow scale", badScale, "want sigmoid or exp"},
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
