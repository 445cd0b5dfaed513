package nvae

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/internal/testenv"
	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

func objScalar(v float64, dt gotch.DType) *ts.Tensor {
	return ts.MustOfSlice([]float64{v}).MustTotype(dt, true).MustSqueeze(true)
}

// TestKLWarmupTable: Coeff and CoeffTensor (from int64 and float32 step
// tensors) against values worked out by hand from
// max(min((step − c·T)/(a·T), 1), min).
func TestKLWarmupTable(t *testing.T) {
	defer objBegin(t, 10)()
	cases := []struct {
		anneal, constP, minC float64
		total, step          int
		want                 float64
	}{
		{0.3, 1e-4, 1e-4, 1000, 0, 1e-4},                 // (0−0.1)/300 < 0
		{0.3, 1e-4, 1e-4, 1000, 1, 0.9 / 300},            // 0.003
		{0.3, 1e-4, 1e-4, 1000, 150, 149.9 / 300},        // 0.49967
		{0.3, 1e-4, 1e-4, 1000, 300, 299.9 / 300},        // just below 1
		{0.3, 1e-4, 1e-4, 1000, 301, 1},                  // 300.9/300 capped
		{0.3, 1e-4, 1e-4, 1000, 5000, 1},                 // past the run
		{0.3, 0.1, 1e-4, 1000, 50, 1e-4},                 // constant phase
		{0.3, 0.1, 1e-4, 1000, 100, 1e-4},                // ramp starts at 0
		{0.3, 0.1, 1e-4, 1000, 250, 0.5},                 // 150/300
		{0.3, 0.1, 1e-4, 1000, 400, 1},                   // 300/300
		{0.5, 0, 0.05, 1000, 10, 0.05},                   // 0.02 below the floor
		{0.5, 0, 0.05, 1000, 100, 0.2},                   // 100/500
		{0.3, 1e-4, 1e-4, 75000, 22507, 22499.5 / 22500}, // c·T = 7.5, a·T = 22500
		{0, 0.1, 1e-4, 1000, 100, 1e-4},                  // no ramp: floor up to c·T
		{0, 0.1, 1e-4, 1000, 101, 1},                     // then 1
		{0.3, 0, 2, 1000, 900, 2},                        // a floor above 1 wins
	}
	for _, c := range cases {
		name := fmt.Sprintf("a%g_c%g_m%g_T%d_step%d", c.anneal, c.constP, c.minC, c.total, c.step)
		cfg := config.DefaultNVAE()
		cfg.KLAnnealPortion, cfg.KLConstPortion, cfg.KLConstCoeff = c.anneal, c.constP, c.minC
		w, err := NewKLWarmup(cfg, c.total)
		if err != nil {
			t.Fatal(name, err)
		}
		if got := w.Coeff(c.step); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%s: Coeff = %.12g, want %.12g", name, got, c.want)
		}
		for _, dt := range []gotch.DType{gotch.Int64, gotch.Float} {
			ct := w.CoeffTensor(objScalar(float64(c.step), dt))
			if ct.DType() != gotch.Float || len(ct.MustSize()) != 0 {
				t.Errorf("%s: CoeffTensor is %v %v, want 0-d float32", name, ct.DType(), ct.MustSize())
			}
			if got := ct.MustFloat64Value([]int64{}); math.Abs(got-c.want) > 2e-7*math.Max(1, c.want) {
				t.Errorf("%s: CoeffTensor(%v step) = %.9g, want %.9g", name, dt, got, c.want)
			}
		}
	}
}

// TestKLWarmupGolden: Coeff equals gen_golden_objective.py's kl_coeff.
func TestKLWarmupGolden(t *testing.T) {
	defer objBegin(t, 11)()
	g, _ := objGolden(t)
	in, out := objVals(objTensor(t, g, "klcoeff.in")), objVals(objTensor(t, g, "klcoeff.out"))
	if len(in) != 5*len(out) || len(out) == 0 {
		t.Fatalf("klcoeff.in has %d values for %d cases", len(in), len(out))
	}
	for i, want := range out {
		r := in[5*i : 5*i+5]
		cfg := config.DefaultNVAE()
		cfg.KLAnnealPortion, cfg.KLConstPortion, cfg.KLConstCoeff = r[2], r[3], r[4]
		w, err := NewKLWarmup(cfg, int(r[1]))
		if err != nil {
			t.Fatal(err)
		}
		if got := w.Coeff(int(r[0])); math.Abs(got-want) > 1e-15 {
			t.Errorf("case %v: Coeff = %.17g, PyTorch script %.17g", r, got, want)
		}
	}
}

func TestNewKLWarmupErrors(t *testing.T) {
	cfg := config.DefaultNVAE()
	for _, n := range []int{0, -3} {
		_, err := NewKLWarmup(cfg, n)
		testenv.AssertError(t, err, []string{"positive number of training steps", strconv.Itoa(n)}, nil)
	}
	cfg.KLAnnealPortion = 1.5
	_, err := NewKLWarmup(cfg, 100)
	testenv.AssertError(t, err, []string{"KL warm-up", "model.nvae.kl_anneal_portion"}, nil)
}

// TestKLBalanceAlphas: hand values of (2^i)²/g_i over the min, and the
// golden file's.
func TestKLBalanceAlphas(t *testing.T) {
	rep := func(v float64, n int) []float64 {
		out := make([]float64, n)
		for i := range out {
			out[i] = v
		}
		return out
	}
	cat := func(xs ...[]float64) (out []float64) {
		for _, x := range xs {
			out = append(out, x...)
		}
		return out
	}
	cases := []struct {
		groups []int
		want   []float64
	}{
		{[]int{30}, rep(1, 30)},
		// top scale (2 groups): 1/2; next (3): 4/3; finest (5): 16/5; over 1/2.
		{[]int{5, 3, 2}, cat(rep(1, 2), rep(8.0/3, 3), rep(6.4, 5))},
		// 1/1, 4/2, 16/4, 64/8: the adaptive-groups layout.
		{[]int{8, 4, 2, 1}, cat(rep(1, 1), rep(2, 2), rep(4, 4), rep(8, 8))},
		{[]int{1, 1}, []float64{1, 4}},
	}
	g, _ := objGolden(t)
	for _, c := range cases {
		got, err := KLBalanceAlphas(c.groups)
		if err != nil {
			t.Fatal(err)
		}
		objClose(t, fmt.Sprint(c.groups), got, c.want, 0, 1e-15)
		key := strings.Trim(strings.ReplaceAll(fmt.Sprint(c.groups), " ", "_"), "[]")
		objClose(t, fmt.Sprint(c.groups, " golden"), got, objVals(objTensor(t, g, "alpha."+key)), 0, 1e-15)
	}
	_, err := KLBalanceAlphas(nil)
	testenv.AssertError(t, err, []string{"at least one latent scale"}, nil)
	_, err = KLBalanceAlphas([]int{3, 0})
	testenv.AssertError(t, err, []string{"scale 1 has 0 groups"}, nil)
}

// objBalanceRef is NVAE's kl_balancer worked out in float64 loops.
func objBalanceRef(kl [][]float64, alpha []float64, coeff float64) (out, w []float64) {
	B, G := len(kl), len(alpha)
	w = make([]float64, G)
	if coeff < 1 {
		var total, mean float64
		for g := 0; g < G; g++ {
			for b := 0; b < B; b++ {
				w[g] += math.Abs(kl[b][g]) / float64(B)
			}
			w[g] += 0.01
			total += w[g]
		}
		for g := range w {
			w[g] = w[g] / alpha[g] * total
			mean += w[g] / float64(G)
		}
		for g := range w {
			w[g] /= mean
		}
	} else {
		for g := range w {
			w[g] = 1
		}
	}
	out = make([]float64, B)
	for b := 0; b < B; b++ {
		for g := 0; g < G; g++ {
			out[b] += kl[b][g] * w[g]
		}
		out[b] *= coeff
	}
	return out, w
}

// TestBalanceKL: BalanceKL against objBalanceRef on each side of
// coeff = 1, weights of mean 1 while balancing, and the gradient
// coeff·w (no gradient through w).
func TestBalanceKL(t *testing.T) {
	defer objBegin(t, 12)()
	const B, G = 5, 7
	alpha, _ := KLBalanceAlphas([]int{4, 2, 1})
	x := nn.Randn([]int64{B, G}, gotch.CPU).MustMulScalar(ts.FloatScalar(3), true)
	x = x.MustMul(objFrom([]float64{0.1, 1, 10, 1, 0.5, 30, 2}, 1, G), true) // groups of very different size
	xv := objVals(x)
	kl := make([][]float64, B)
	for b := range kl {
		kl[b] = xv[b*G : (b+1)*G]
	}
	at := objFrom(alpha, G)
	for _, coeff := range []float64{1e-4, 0.25, 0.999, 1, 1.5} {
		name := fmt.Sprint("coeff ", coeff)
		xg := x.MustDetachCopy(false)
		xg.MustRequiresGrad_(true)
		got, w := BalanceKL(xg, at, objScalar(coeff, gotch.Float))
		wantKL, wantW := objBalanceRef(kl, alpha, coeff)
		objClose(t, name+" kl", objVals(got), wantKL, 1e-4, 1e-5)
		objClose(t, name+" w", objVals(w), wantW, 0, 1e-5)
		if coeff < 1 {
			var m float64
			for _, v := range objVals(w) {
				m += v / G
			}
			if math.Abs(m-1) > 1e-6 {
				t.Errorf("%s: mean weight %g, want 1", name, m)
			}
		}
		got.MustSum(gotch.Float, false).MustBackward()
		wantGrad := make([]float64, 0, B*G)
		for b := 0; b < B; b++ {
			for g := 0; g < G; g++ {
				wantGrad = append(wantGrad, coeff*wantW[g])
			}
		}
		objClose(t, name+" grad", objVals(xg.MustGrad(false)), wantGrad, 1e-7, 1e-5)
	}
}

// TestBalanceKLGolden: BalanceKL equals the PyTorch transcription.
func TestBalanceKLGolden(t *testing.T) {
	defer objBegin(t, 13)()
	g, meta := objGolden(t)
	var coeffs []string
	if err := json.Unmarshal([]byte(meta["coeffs"]), &coeffs); err != nil || len(coeffs) == 0 {
		t.Fatalf("golden metadata coeffs %q: %v", meta["coeffs"], err)
	}
	for _, c := range coeffs {
		v, _ := strconv.ParseFloat(c, 64)
		x := objTensor(t, g, "bal.kl_all").MustDetachCopy(false)
		x.MustRequiresGrad_(true)
		kl, w := BalanceKL(x, objTensor(t, g, "bal.alpha"), objScalar(v, gotch.Float))
		kl.MustSum(gotch.Float, false).MustBackward()
		objClose(t, c+" kl", objVals(kl), objVals(objTensor(t, g, "bal."+c+".kl")), 1e-5, 1e-5)
		objClose(t, c+" w", objVals(w), objVals(objTensor(t, g, "bal."+c+".w")), 1e-6, 1e-5)
		objClose(t, c+" grad", objVals(x.MustGrad(false)), objVals(objTensor(t, g, "bal."+c+".grad")), 1e-6, 1e-5)
	}
}

// TestKLBalancer: α is a buffer (saved, not trained) and Balance is
// BalanceKL with it.
func TestKLBalancer(t *testing.T) {
	defer objBegin(t, 14)()
	s := nn.NewStore(gotch.CPU)
	defer s.Close()
	b, err := NewKLBalancer(s.Root().Sub("kl"), []int{3, 1})
	if err != nil {
		t.Fatal(err)
	}
	if names := s.Names(); len(names) != 1 || names[0] != "kl.alpha" {
		t.Fatalf("store holds %v, want [kl.alpha]", names)
	}
	if len(s.Parameters()) != 0 {
		t.Error("α is trainable")
	}
	objClose(t, "α", objVals(s.Named()["kl.alpha"]), []float64{1, 4.0 / 3, 4.0 / 3, 4.0 / 3}, 0, 1e-7)
	x := nn.Randn([]int64{2, 4}, gotch.CPU)
	c := objScalar(0.5, gotch.Float)
	k1, w1 := b.Balance(x, c)
	k2, w2 := BalanceKL(x, b.Alpha, c)
	objClose(t, "kl", objVals(k1), objVals(k2), 0, 0)
	objClose(t, "w", objVals(w1), objVals(w2), 0, 0)
	_, err = NewKLBalancer(s.Root().Sub("kl2"), []int{2, -1})
	testenv.AssertError(t, err, []string{"scale 1 has -1 groups"}, nil)
}
