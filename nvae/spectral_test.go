package nvae

import (
	"fmt"
	"math"
	"math/rand"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/mollify/mollify/internal/testenv"
	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"gonum.org/v1/gonum/mat"
)

// objTopSVD is the largest singular value of w viewed as (out, rest) and
// its singular vectors, by gonum's float64 SVD of w's float32 values.
func objTopSVD(t *testing.T, w *ts.Tensor) (sigma float64, u, v []float64) {
	t.Helper()
	s := w.MustSize()
	rows := int(s[0])
	vals := objVals(w.MustDetach(false))
	cols := len(vals) / rows
	var svd mat.SVD
	if !svd.Factorize(mat.NewDense(rows, cols, vals), mat.SVDThin) {
		t.Fatal("gonum SVD did not converge")
	}
	var U, V mat.Dense
	svd.UTo(&U)
	svd.VTo(&V)
	return svd.Values(nil)[0], mat.Col(nil, 0, &U), mat.Col(nil, 0, &V)
}

// objSpectrum is U·diag(s)·Vᵀ (rows×cols) with random orthonormal U, V:
// a matrix whose singular values are s.
func objSpectrum(rng *rand.Rand, rows, cols int, s []float64) *ts.Tensor {
	orth := func(n, k int) *mat.Dense {
		a := mat.NewDense(n, k, nil)
		for i := 0; i < n; i++ {
			for j := 0; j < k; j++ {
				a.Set(i, j, rng.NormFloat64())
			}
		}
		var qr mat.QR
		qr.Factorize(a)
		var q mat.Dense
		qr.QTo(&q)
		return mat.DenseCopyOf(q.Slice(0, n, 0, k))
	}
	k := len(s)
	U, V := orth(rows, k), orth(cols, k)
	var us, w mat.Dense
	us.Mul(U, mat.NewDiagDense(k, s))
	w.Mul(&us, V.T())
	return objFrom(w.RawMatrix().Data, int64(rows), int64(cols))
}

func objScaled(shape []int64, scale float64) *ts.Tensor {
	return nn.Randn(shape, gotch.CPU).MustMulScalar(ts.FloatScalar(scale), true)
}

// TestSpectralConvergesToSVD: uᵀWv is within 1% of the largest singular
// value (gonum SVD in float64) and never above it, for random conv
// weights and matrices of known spectrum (a 5% top gap, rank one, a flat
// spectrum). Matrices with a top gap of 5% or more get there in the 40
// start-up iterations; a wide random Gaussian matrix, whose top singular
// values crowd together, needs more (1.5% off after 40 here), so every
// case is checked after ten further steps of 4 (80 in all), and no
// estimate may fall meanwhile.
func TestSpectralConvergesToSVD(t *testing.T) {
	defer objBegin(t, 20)()
	rng := rand.New(rand.NewSource(20))
	cases := []struct {
		name   string
		w      *ts.Tensor
		gapped bool // top gap ≥ 5%: converged after the start-up iterations
	}{
		{"random 16×3×3×3", objScaled([]int64{16, 3, 3, 3}, 0.2), false},
		{"random 16×3×3×3 again", objScaled([]int64{16, 3, 3, 3}, 3), false},
		{"random 64×32×3×3", objScaled([]int64{64, 32, 3, 3}, 0.05), false},
		{"depthwise 32×1×5×5", objScaled([]int64{32, 1, 5, 5}, 1), false},
		{"1×1 conv 8×6", objScaled([]int64{8, 6, 1, 1}, 1), false},
		{"wide 4×300", objScaled([]int64{4, 300}, 1), false},
		{"spectrum 5,4,1,0.5,0.1", objSpectrum(rng, 12, 20, []float64{5, 4, 1, 0.5, 0.1}), true},
		{"top gap 5%: 2,1.9,1.8,1", objSpectrum(rng, 10, 30, []float64{2, 1.9, 1.8, 1}), true},
		{"rank one, σ=3", objSpectrum(rng, 8, 18, []float64{3}), true},
		{"flat: six σ=1", objSpectrum(rng, 6, 24, []float64{1, 1, 1, 1, 1, 1}), true},
	}
	ws := make([]*ts.Tensor, len(cases))
	for i, c := range cases {
		ws[i] = c.w
	}
	s := nn.NewStore(gotch.CPU)
	defer s.Close()
	r, err := NewSpectralReg(s.Root().Sub("sr"), ws, nil, SpectralOptions{Lambda: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	if r.Iters != 4 {
		t.Errorf("default iterations per step %d, want NVAE's 4", r.Iters)
	}
	check := func(when string, all bool) []float64 {
		got, err := r.Sigmas(ws)
		if err != nil {
			t.Fatal(err)
		}
		g := objVals(got)
		for i, c := range cases {
			want, _, _ := objTopSVD(t, c.w)
			rel := (want - g[i]) / want
			if rel < -1e-5 || (all || c.gapped) && rel > 0.01 {
				t.Errorf("%s, %s: uᵀWv = %.6g, SVD σ_max = %.6g (%.3g%% off)", when, c.name, g[i], want, 100*rel)
			}
		}
		return g
	}
	early := check("after the start-up iterations", false)
	for i := 0; i < 10; i++ {
		if _, err := r.Loss(); err != nil {
			t.Fatal(err)
		}
	}
	late := check("after ten steps", true)
	for i, c := range cases {
		if late[i] < early[i]*(1-1e-6) {
			t.Errorf("%s: the estimate fell from %.6g to %.6g", c.name, early[i], late[i])
		}
	}
	l, _ := r.Loss()
	sg, _ := r.Sigmas(ws)
	if a, b := l.Spectral.MustFloat64Value([]int64{}), sg.MustSum(gotch.Float, false).MustFloat64Value([]int64{}); math.Abs(a-b) > 1e-5*b {
		t.Errorf("Spectral %g is not the sum of the σ estimates %g", a, b)
	}
}

// TestSpectralLambda: Total = λ·(Spectral + BN) for several λ, with BN
// the hand value Σ max|γ|.
func TestSpectralLambda(t *testing.T) {
	defer objBegin(t, 21)()
	w := objSpectrum(rand.New(rand.NewSource(21)), 6, 9, []float64{2.5, 1})
	bns := []*ts.Tensor{objFrom([]float64{0.5, -2, 1}, 3), objFrom([]float64{3}, 1), objFrom([]float64{-0.25, 0.1, 0.2}, 3)}
	for _, lambda := range []float64{0, 1e-2, 0.3, 3} {
		s := nn.NewStore(gotch.CPU)
		r, err := NewSpectralReg(s.Root(), []*ts.Tensor{w}, bns, SpectralOptions{Lambda: lambda, Iters: 2, InitIters: 50})
		if err != nil {
			t.Fatal(err)
		}
		l, err := r.Loss()
		if err != nil {
			t.Fatal(err)
		}
		sp, bn := l.Spectral.MustFloat64Value([]int64{}), l.BN.MustFloat64Value([]int64{})
		if math.Abs(bn-5.25) > 1e-6 {
			t.Errorf("λ %g: BN term %g, want 2+3+0.25", lambda, bn)
		}
		if math.Abs(sp-2.5) > 1e-4 {
			t.Errorf("λ %g: spectral term %g, want 2.5", lambda, sp)
		}
		if tot := l.Total.MustFloat64Value([]int64{}); math.Abs(tot-lambda*(sp+bn)) > 1e-6*(1+tot) {
			t.Errorf("λ %g: total %g, want λ·(%g+%g)", lambda, tot, sp, bn)
		}
		s.Close()
	}
	// BN only: the spectral term is 0.
	s := nn.NewStore(gotch.CPU)
	defer s.Close()
	r, err := NewSpectralReg(s.Root(), nil, bns[:1], SpectralOptions{Lambda: 2})
	if err != nil {
		t.Fatal(err)
	}
	l, _ := r.Loss()
	if a, b := l.Spectral.MustFloat64Value([]int64{}), l.Total.MustFloat64Value([]int64{}); a != 0 || math.Abs(b-4) > 1e-6 {
		t.Errorf("BN only: spectral %g, total %g; want 0 and 2·2", a, b)
	}
}

// TestSpectralGradient: the gradient of uᵀWv reaches W and, once u and v
// have converged, is u₁v₁ᵀ of the SVD (times λ through Total); the BN
// term's is sign(γ) at the largest |γ|, 0 elsewhere; u and v get none.
func TestSpectralGradient(t *testing.T) {
	defer objBegin(t, 22)()
	w0 := objSpectrum(rand.New(rand.NewSource(22)), 10, 30, []float64{3, 1, 0.5, 0.2})
	w := w0.MustReshape([]int64{10, 3, 5, 2}, false).MustDetachCopy(false)
	w.MustRequiresGrad_(true)
	g := objFrom([]float64{0.5, -2, 1}, 3).MustDetachCopy(false)
	g.MustRequiresGrad_(true)
	s := nn.NewStore(gotch.CPU)
	defer s.Close()
	const lambda = 0.3
	r, err := NewSpectralReg(s.Root(), []*ts.Tensor{w}, []*ts.Tensor{g}, SpectralOptions{Lambda: lambda})
	if err != nil {
		t.Fatal(err)
	}
	l, err := r.Loss()
	if err != nil {
		t.Fatal(err)
	}
	l.Total.MustBackward()
	_, u1, v1 := objTopSVD(t, w)
	want := make([]float64, 0, len(u1)*len(v1))
	for _, a := range u1 {
		for _, b := range v1 {
			want = append(want, lambda*a*b)
		}
	}
	objClose(t, "∂Total/∂W", objVals(w.MustGrad(false)), want, 1e-5, 1e-4)
	objClose(t, "∂Total/∂γ", objVals(g.MustGrad(false)), []float64{0, -lambda, 0}, 1e-7, 0)
	for _, b := range s.Named() {
		if b.MustRequiresGrad() {
			t.Error("a power-iteration buffer requires grad")
		}
	}
}

// TestSpectralGolden: one Loss from the golden start vectors matches the
// PyTorch transcription of NVAE's power iteration: u and v after four
// iterations, each σ, both terms and their gradients (a zero weight
// included, and one whose norms fall below F.normalize's eps 1e-3).
func TestSpectralGolden(t *testing.T) {
	defer objBegin(t, 23)()
	g, meta := objGolden(t)
	nw, _ := strconv.Atoi(meta["weights"])
	nb, _ := strconv.Atoi(meta["bns"])
	iters, _ := strconv.Atoi(meta["iters"])
	if nw == 0 || nb == 0 || iters == 0 {
		t.Fatalf("golden metadata %v", meta)
	}
	leaf := func(name string) *ts.Tensor {
		x := objTensor(t, g, name).MustDetachCopy(false)
		x.MustRequiresGrad_(true)
		return x
	}
	ws, bns := make([]*ts.Tensor, nw), make([]*ts.Tensor, nb)
	for i := range ws {
		ws[i] = leaf(fmt.Sprintf("spec.w%d", i))
	}
	for i := range bns {
		bns[i] = leaf(fmt.Sprintf("spec.g%d", i))
	}
	s := nn.NewStore(gotch.CPU)
	defer s.Close()
	const lambda = 0.7
	r, err := NewSpectralReg(s.Root().Sub("sr"), ws, bns, SpectralOptions{Lambda: lambda, Iters: iters})
	if err != nil {
		t.Fatal(err)
	}
	start := map[string]*ts.Tensor{}
	for _, n := range s.Names() {
		start[n] = objTensor(t, g, "spec."+n[len("sr."):]+"0") // sr.6x36.u ← spec.6x36.u0
	}
	if err := s.Load(start); err != nil {
		t.Fatal(err)
	}
	l, err := r.LossWith(ws)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range s.Names() {
		objClose(t, n, objVals(s.Named()[n]), objVals(objTensor(t, g, "spec."+n[len("sr."):])), 1e-6, 1e-5)
	}
	sg, err := r.Sigmas(ws)
	if err != nil {
		t.Fatal(err)
	}
	objClose(t, "σ", objVals(sg), objVals(objTensor(t, g, "spec.sigmas")), 1e-6, 1e-5)
	sp, bn := objVals(objTensor(t, g, "spec.spectral"))[0], objVals(objTensor(t, g, "spec.bn"))[0]
	objClose(t, "spectral", objVals(l.Spectral), []float64{sp}, 1e-6, 1e-5)
	objClose(t, "bn", objVals(l.BN), []float64{bn}, 1e-6, 1e-6)
	objClose(t, "total", objVals(l.Total), []float64{lambda * (sp + bn)}, 1e-6, 1e-5)
	l.Spectral.MustAdd(l.BN, false).MustBackward()
	for i, w := range ws {
		objClose(t, fmt.Sprintf("grad w%d", i), objVals(w.MustGrad(false)), objVals(objTensor(t, g, fmt.Sprintf("spec.grad.w%d", i))), 1e-6, 1e-5)
	}
	for i, b := range bns {
		objClose(t, fmt.Sprintf("grad g%d", i), objVals(b.MustGrad(false)), objVals(objTensor(t, g, fmt.Sprintf("spec.grad.g%d", i))), 1e-7, 0)
	}
}

// TestSpectralBuffersPersist: u and v are non-trainable store buffers
// named by matrix shape, updated in place by each step, and a store
// saved and loaded into a freshly built regulariser (other random start)
// continues bit for bit.
func TestSpectralBuffersPersist(t *testing.T) {
	defer objBegin(t, 24)()
	build := func(seed uint64) (*nn.Store, *SpectralReg, []*ts.Tensor) {
		if _, err := nn.Seed(seed); err != nil {
			t.Fatal(err)
		}
		s := nn.NewStore(gotch.CPU)
		p := s.Root()
		var ws []*ts.Tensor
		for i, shape := range [][]int64{{6, 4, 3, 3}, {6, 4, 3, 3}, {5, 2, 1, 1}} {
			w, err := p.Param(fmt.Sprintf("conv%d", i), objScaled(shape, 0.3))
			if err != nil {
				t.Fatal(err)
			}
			ws = append(ws, w)
		}
		r, err := NewSpectralReg(p.Sub("sr"), ws, nil, SpectralOptions{Lambda: 1, Iters: 1, InitIters: 1})
		if err != nil {
			t.Fatal(err)
		}
		return s, r, ws
	}
	s1, r1, _ := build(1)
	defer s1.Close()
	want := []string{"conv0", "conv1", "conv2", "sr.5x2.u", "sr.5x2.v", "sr.6x36.u", "sr.6x36.v"}
	if got := s1.Names(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("store names %v, want %v", got, want)
	}
	if n := len(s1.Parameters()); n != 3 {
		t.Errorf("%d trainable tensors, want the 3 conv weights", n)
	}
	if sz := s1.Named()["sr.6x36.u"].MustSize(); fmt.Sprint(sz) != "[2 6]" {
		t.Errorf("sr.6x36.u has shape %v, want one row per conv: [2 6]", sz)
	}
	u := s1.Named()["sr.6x36.u"]
	before := objVals(u)
	if _, err := r1.Loss(); err != nil {
		t.Fatal(err)
	}
	if s1.Named()["sr.6x36.u"] != u || r1.convs[0].u != u {
		t.Error("Loss replaced the u buffer instead of writing it in place")
	}
	after := objVals(u)
	changed := false
	for i := range before {
		changed = changed || before[i] != after[i]
	}
	if !changed {
		t.Error("u did not change in a power-iteration step")
	}

	path := filepath.Join(t.TempDir(), "w.safetensors")
	if err := nn.SaveTensors(path, s1.Named(), nil); err != nil {
		t.Fatal(err)
	}
	s2, r2, _ := build(2)
	defer s2.Close()
	if a, b := objVals(s1.Named()["sr.6x36.v"]), objVals(s2.Named()["sr.6x36.v"]); a[0] == b[0] {
		t.Fatal("the second build starts from the same v; the test would prove nothing")
	}
	saved, _, err := nn.LoadTensors(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Load(saved); err != nil {
		t.Fatal(err)
	}
	for step := 0; step < 3; step++ {
		l1, err1 := r1.Loss()
		l2, err2 := r2.Loss()
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if a, b := l1.Spectral.MustFloat64Value([]int64{}), l2.Spectral.MustFloat64Value([]int64{}); a != b {
			t.Errorf("step %d after loading: spectral %v, original %v", step, b, a)
		}
	}
}

func TestSpectralErrors(t *testing.T) {
	defer objBegin(t, 25)()
	s := nn.NewStore(gotch.CPU)
	defer s.Close()
	w := objScaled([]int64{4, 2, 3, 3}, 1)
	g := nn.Ones([]int64{4}, gotch.CPU)
	cases := []struct {
		name string
		ws   []*ts.Tensor
		bns  []*ts.Tensor
		o    SpectralOptions
		want []string
	}{
		{"negative λ", []*ts.Tensor{w}, nil, SpectralOptions{Lambda: -1}, []string{"model.nvae.weight_decay_norm", "≥ 0", "-1"}},
		{"NaN λ", []*ts.Tensor{w}, nil, SpectralOptions{Lambda: math.NaN()}, []string{"model.nvae.weight_decay_norm", "NaN"}},
		{"negative iterations", []*ts.Tensor{w}, nil, SpectralOptions{Iters: -2}, []string{"≥ 0 power iterations", "-2"}},
		{"nothing", nil, nil, SpectralOptions{}, []string{"no conv and no batch-norm weights"}},
		{"nil conv", []*ts.Tensor{w, nil}, nil, SpectralOptions{}, []string{"conv weight 1 is nil"}},
		{"vector conv", []*ts.Tensor{g}, nil, SpectralOptions{}, []string{"conv weight 0 has shape [4]", "(out, in, ...)"}},
		{"matrix BN", nil, []*ts.Tensor{w}, SpectralOptions{}, []string{"batch-norm weight 0 has shape [4 2 3 3]", "want (C)"}},
		{"integer conv", []*ts.Tensor{w.MustTotype(gotch.Int64, false)}, nil, SpectralOptions{}, []string{"conv weight 0 has dtype", "floating-point"}},
	}
	for i, c := range cases {
		_, err := NewSpectralReg(s.Root().Subf("c%d", i), c.ws, c.bns, c.o)
		testenv.AssertError(t, err, c.want, nil)
	}
	r, err := NewSpectralReg(s.Root().Sub("ok"), []*ts.Tensor{w}, []*ts.Tensor{g}, SpectralOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.LossWith(nil)
	testenv.AssertError(t, err, []string{"got 0 conv weights, was built for 1"}, nil)
	_, err = r.LossWith([]*ts.Tensor{w.MustReshape([]int64{8, 9}, false)})
	testenv.AssertError(t, err, []string{"conv weight 0 has shape [8 9], was built for [4 2 3 3]"}, nil)
	_, err = r.Sigmas([]*ts.Tensor{nil})
	testenv.AssertError(t, err, []string{"conv weight 0 is nil"}, nil)
	err = r.Iterate([]*ts.Tensor{w}, -1)
	testenv.AssertError(t, err, []string{"-1 power iterations"}, nil)
}

// TestSpectralPerStepWeights: as a weight-normalised model uses it, the
// weights given at construction are computed tensors freed afterwards;
// LossWith takes each step's recomputed weights, and the gradient reaches
// the parameter they come from.
func TestSpectralPerStepWeights(t *testing.T) {
	defer objBegin(t, 26)()
	s := nn.NewStore(gotch.CPU)
	defer s.Close()
	v, err := s.Root().Param("v", objSpectrum(rand.New(rand.NewSource(26)), 6, 8, []float64{2, 1}).MustReshape([]int64{6, 2, 2, 2}, true))
	if err != nil {
		t.Fatal(err)
	}
	weights := func() []*ts.Tensor { return []*ts.Tensor{v.MustMulScalar(ts.FloatScalar(1.5), false)} }
	var r *SpectralReg
	func() {
		sc := ts.NewScope()
		defer sc.Close()
		if r, err = NewSpectralReg(s.Root().Sub("sr"), weights(), nil, SpectralOptions{Lambda: 1}); err != nil {
			t.Fatal(err)
		}
	}()
	l, err := r.LossWith(weights())
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Total.MustFloat64Value([]int64{}); math.Abs(got-3) > 1e-4 {
		t.Errorf("σ_max(1.5·v) estimate %g, want 3", got)
	}
	l.Total.MustBackward()
	_, u1, v1 := objTopSVD(t, v)
	var want []float64
	for _, a := range u1 {
		for _, b := range v1 {
			want = append(want, 1.5*a*b)
		}
	}
	objClose(t, "∂σ/∂v", objVals(v.MustGrad(false)), want, 1e-5, 1e-4)
}
