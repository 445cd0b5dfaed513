package nvae

import (
	"fmt"
	"math"
	"runtime"
	"strings"
	"testing"

	"github.com/mollify/mollify/internal/golden"
	"github.com/mollify/mollify/internal/testenv"
	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// cellBegin pins the test to its OS thread (torch state is per thread)
// and opens a scope; call the returned function at the end.
func cellBegin(t *testing.T) func() {
	t.Helper()
	runtime.LockOSThread()
	nn.SetThreads(2)
	sc := ts.NewScope()
	return func() {
		sc.Close()
		runtime.UnlockOSThread()
	}
}

func cellValues(x *ts.Tensor) []float64 {
	return x.MustTotype(gotch.Double, false).MustContiguous(true).Float64Values(true)
}

func cellMaxAbs(xs []float64) float64 {
	var m float64
	for _, x := range xs {
		m = max(m, math.Abs(x))
	}
	return m
}

func cellSeed(t *testing.T, s uint64) {
	t.Helper()
	if _, err := nn.Seed(s); err != nil {
		t.Fatal(err)
	}
}

func cellRandn(shape ...int64) *ts.Tensor {
	return ts.MustRandn(shape, gotch.Float, gotch.CPU)
}

// assertCellClose fails unless |got−want| ≤ tol·(1+|want|) everywhere.
func assertCellClose(t *testing.T, what string, got, want *ts.Tensor, tol float64) {
	t.Helper()
	if g, w := got.MustSize(), want.MustSize(); fmt.Sprint(g) != fmt.Sprint(w) {
		t.Errorf("%s has shape %v, want %v", what, g, w)
		return
	}
	g, w := cellValues(got), cellValues(want)
	for i := range w {
		if d := math.Abs(g[i] - w[i]); !(d <= tol*(1+math.Abs(w[i]))) {
			t.Errorf("%s[%d] = %.8g, want %.8g (|Δ| %.2g > %.0g·(1+|want|))", what, i, g[i], w[i], d, tol)
			return
		}
	}
}

func newCellStore(t *testing.T) *nn.Store {
	t.Helper()
	s := nn.NewStore(gotch.CPU)
	t.Cleanup(s.Close)
	return s
}

// cellCase is one cell type with the names of its branch's last layer
// (zeroing them zeroes f) and of the parameters that a training-mode
// batch norm right after them makes (almost) irrelevant: vanishing ones
// shift a channel by a constant, which the batch norm removes (the first
// conv's bias before the second op's batch norm; the first batch norm's
// bias before the 1×1 expansion and its batch norm), so their gradient is
// zero in exact arithmetic; epsOnly ones scale a channel, which the batch
// norm undoes but for its ε (the first conv's log g), so their gradient is
// small and mostly cancellation.
type cellCase struct {
	typ       CellType
	last      []string
	vanishing []string
	epsOnly   []string
	convs     int // Convs() length for 4 input channels
	norms     int
}

func cellCaseOf(t CellType) (cellCase, bool) {
	for _, c := range cellCases {
		if c.typ == t {
			return c, true
		}
	}
	return cellCase{}, false
}

var cellCases = func() []cellCase {
	var out []cellCase
	for _, t := range CellTypes {
		c := cellCase{typ: t}
		skipConvs := map[int64]int{1: 0, 2: 4, -1: 1}[t.stride()]
		if strings.HasSuffix(string(t), "_pre") || strings.HasSuffix(string(t), "_enc") {
			c.last = []string{"_ops.1.conv_0.weight", "_ops.1.conv_0.bias"}
			c.vanishing = []string{"_ops.0.conv_0.bias"}
			c.epsOnly = []string{"_ops.0.conv_0.log_weight_norm"}
			c.convs, c.norms = skipConvs+2, 2
		} else {
			i := 0
			if t.stride() == -1 {
				i = 1 // the upsampling is conv.0
			}
			c.last = []string{fmt.Sprintf("_ops.0.conv.%d.bn.weight", i+4), fmt.Sprintf("_ops.0.conv.%d.bn.bias", i+4)}
			c.vanishing = []string{fmt.Sprintf("_ops.0.conv.%d.bn.bias", i)}
			c.convs, c.norms = skipConvs+3, 4
		}
		out = append(out, c)
	}
	return out
}()

// Normal cells keep (C, H, W); down cells halve H and W and double C; up
// cells double H and W and halve C, as NVAE's. Every conv and batch norm
// is listed for the regulariser, in module order.
func TestCellShapes(t *testing.T) {
	defer cellBegin(t)()
	for _, cc := range cellCases {
		t.Run(string(cc.typ), func(t *testing.T) {
			defer cellBegin(t)()
			s := newCellStore(t)
			c, err := NewCell(s.Root(), cc.typ, 4, true)
			if err != nil {
				t.Fatal(err)
			}
			want := map[CellType][]int64{
				NormalPre: {2, 4, 6, 6}, NormalEnc: {2, 4, 6, 6}, NormalDec: {2, 4, 6, 6}, NormalPost: {2, 4, 6, 6},
				DownPre: {2, 8, 3, 3}, DownEnc: {2, 8, 3, 3},
				UpDec: {2, 2, 12, 12}, UpPost: {2, 2, 12, 12},
			}[cc.typ]
			if c.Out != want[1] || cc.typ.OutChannels(4) != want[1] {
				t.Errorf("Out = %d, OutChannels(4) = %d, want %d", c.Out, cc.typ.OutChannels(4), want[1])
			}
			for _, train := range []bool{true, false} {
				c.SetTraining(train)
				if got := c.Forward(cellRandn(2, 4, 6, 6)).MustSize(); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("training=%v: output shape %v, want %v", train, got, want)
				}
			}
			if len(c.Convs()) != cc.convs || len(c.BatchNorms()) != cc.norms {
				t.Errorf("%d convs and %d batch norms, want %d and %d", len(c.Convs()), len(c.BatchNorms()), cc.convs, cc.norms)
			}
			if w := ConvWeights(c.Convs()); len(w) != cc.convs {
				t.Errorf("ConvWeights gave %d tensors for %d convs", len(w), cc.convs)
			}
			for i, g := range BNWeights(c.BatchNorms()) {
				if g != c.BatchNorms()[i].W {
					t.Errorf("BNWeights[%d] is not the batch norm's weight", i)
				}
			}
		})
	}
}

// Forward is Skip + 0.1·Residual; with the branch's last layer zeroed it
// is the skip alone (x itself for normal cells), bit for bit.
func TestCellResidualScale(t *testing.T) {
	defer cellBegin(t)()
	cellSeed(t, 3)
	for _, cc := range cellCases {
		t.Run(string(cc.typ), func(t *testing.T) {
			defer cellBegin(t)()
			s := newCellStore(t)
			c, err := NewCell(s.Root(), cc.typ, 4, true)
			if err != nil {
				t.Fatal(err)
			}
			c.SetTraining(false)
			x := cellRandn(2, 4, 6, 6)
			f, skip := c.Residual(x), c.Skip(x)
			if cellMaxAbs(cellValues(f)) < 1e-3 {
				t.Fatalf("branch is already zero (max |f| %.2g)", cellMaxAbs(cellValues(f)))
			}
			assertCellClose(t, "Forward − (Skip + 0.1·Residual)", c.Forward(x), skip.MustAdd(f.MustMulScalar(ts.FloatScalar(0.1), false), false), 1e-6)
			ts.NoGrad(func() {
				for _, n := range cc.last {
					p, ok := s.Named()[n]
					if !ok {
						t.Fatalf("no parameter %q in %v", n, s.Names())
					}
					p.Zero_()
				}
			})
			if m := cellMaxAbs(cellValues(c.Residual(x))); m != 0 {
				t.Errorf("with %v zeroed the branch is still %.2g", cc.last, m)
			}
			want := x
			if cc.typ.stride() != 1 {
				want = skip
			}
			got, w := cellValues(c.Forward(x)), cellValues(want)
			for i := range w {
				if got[i] != w[i] {
					t.Fatalf("output[%d] = %.9g, skip %.9g", i, got[i], w[i])
				}
			}
		})
	}
}

// Weight norm: w_o = g_o·v_o/(‖v_o‖+1e-5), so ‖w_o‖ = g_o up to that
// 1e-5, w_o points along v_o, and rescaling v changes nothing; log g
// starts at log(‖v_o‖ + 1e-2). Without weight norm the weight is v.
func TestConvWeightNorm(t *testing.T) {
	defer cellBegin(t)()
	cellSeed(t, 5)
	s := newCellStore(t)
	c, err := NewConv(s.Root().Sub("wn"), 3, 5, 3, ConvOptions{Padding: 1, Bias: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Names(); fmt.Sprint(got) != "[wn.bias wn.log_weight_norm wn.weight]" {
		t.Errorf("names %v", got)
	}
	norms := func(w *ts.Tensor) []float64 { return cellValues(channelNorms(w).MustView([]int64{-1}, true)) }
	v0 := norms(c.W)
	for o, lg := range cellValues(c.LogNorm) {
		if want := math.Log(v0[o] + 1e-2); math.Abs(lg-want) > 1e-6 {
			t.Errorf("initial log g[%d] = %.7g, want log(‖v‖+0.01) = %.7g", o, lg, want)
		}
	}
	// Move g and the scale of v off their init, over a wide range of ‖v_o‖.
	scale := ts.MustOfSlice([]float32{0.05, 0.5, 1, 10, 300}).MustView([]int64{5, 1, 1, 1}, true)
	ts.NoGrad(func() {
		c.LogNorm.Copy_(ts.MustOfSlice([]float32{-2, -0.5, 0, 0.7, 2}).MustView([]int64{5, 1, 1, 1}, true))
		c.W.Copy_(c.W.MustMul(scale, false))
	})
	w := c.Weight()
	wn, vn := norms(w), norms(c.W)
	for o, lg := range cellValues(c.LogNorm) {
		g := math.Exp(lg)
		if want := g * vn[o] / (vn[o] + 1e-5); math.Abs(wn[o]-want) > 1e-6*want {
			t.Errorf("‖w_%d‖ = %.7g, want g·‖v‖/(‖v‖+1e-5) = %.7g", o, wn[o], want)
		}
		if math.Abs(wn[o]-g) > g*(1e-5/vn[o]+1e-6) {
			t.Errorf("‖w_%d‖ = %.7g, g = %.7g (‖v‖ = %.3g)", o, wn[o], g, vn[o])
		}
	}
	dir := func(a *ts.Tensor) *ts.Tensor { return a.MustDiv(channelNorms(a), false) }
	assertCellClose(t, "w/‖w‖ against v/‖v‖", dir(w), dir(c.W), 1e-6)
	x := cellRandn(2, 3, 4, 4)
	assertCellClose(t, "Forward", c.Forward(x), ts.MustConv2d(x, w, c.B, []int64{1, 1}, []int64{1, 1}, []int64{1, 1}, 1), 1e-5)
	ts.NoGrad(func() { c.W.Copy_(c.W.MustMulScalar(ts.FloatScalar(7), false)) })
	assertCellClose(t, "weight after v ← 7v", c.Weight(), w, 1e-5)

	plain, err := NewConv(s.Root().Sub("plain"), 4, 4, 5, ConvOptions{Padding: 2, Groups: 4, NoWeightNorm: true})
	if err != nil {
		t.Fatal(err)
	}
	if plain.LogNorm != nil || plain.B != nil || s.Named()["plain.log_weight_norm"] != nil || s.Named()["plain.bias"] != nil {
		t.Error("a conv without weight norm and bias registered log_weight_norm or bias")
	}
	if sz := plain.W.MustSize(); fmt.Sprint(sz) != "[4 1 5 5]" {
		t.Errorf("depthwise weight shape %v, want [4 1 5 5]", sz)
	}
	assertCellClose(t, "weight without weight norm", plain.Weight(), plain.W, 0)
}

// SE multiplies each channel by a gate in (0, 1) from max(C/16, 4)
// hidden units, so it never grows a value.
func TestSEGate(t *testing.T) {
	defer cellBegin(t)()
	cellSeed(t, 7)
	s := newCellStore(t)
	for c, hidden := range map[int64]int64{3: 4, 8: 4, 100: 6, 128: 8} {
		se, err := NewSE(s.Root().Subf("se%d", c), c)
		if err != nil {
			t.Fatal(err)
		}
		if sz := se.FC1.W.MustSize(); sz[0] != hidden || sz[1] != c || se.FC2.Out != c {
			t.Errorf("C=%d: first linear %v, second to %d channels; want %d hidden", c, sz, se.FC2.Out, hidden)
		}
		x := cellRandn(3, c, 5, 5).MustMulScalar(ts.FloatScalar(3), true)
		g := se.Gate(x)
		if sz := g.MustSize(); fmt.Sprint(sz) != fmt.Sprint([]int64{3, c, 1, 1}) {
			t.Errorf("C=%d: gate shape %v", c, sz)
		}
		for i, v := range cellValues(g) {
			if !(v > 0 && v < 1) {
				t.Fatalf("C=%d: gate[%d] = %g, outside (0, 1)", c, i, v)
			}
		}
		y := se.Forward(x)
		assertCellClose(t, "SE(x) against x·gate", y, x.MustMul(g, false), 1e-6)
		xv, yv := cellValues(x), cellValues(y)
		for i := range xv {
			if math.Abs(yv[i]) > math.Abs(xv[i]) {
				t.Fatalf("C=%d: |SE(x)[%d]| = %g > |x| = %g", c, i, yv[i], xv[i])
			}
		}
	}
	if _, ok := s.Named()["se8.se.0.weight"]; !ok {
		t.Errorf("names %v, want NVAE's se.0/se.2", s.Names())
	}
}

// While training the running statistics move by 0.05 (NVAE's momentum,
// not PyTorch's 0.1) towards the batch mean and unbiased variance, and
// the output uses the biased batch variance; in evaluation the running
// statistics normalise and stay put.
func TestBatchNormMomentum(t *testing.T) {
	defer cellBegin(t)()
	s := newCellStore(t)
	bn, err := NewBatchNorm(s.Root().Sub("bn"), 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Names(); fmt.Sprint(got) != "[bn.bias bn.running_mean bn.running_var bn.weight]" {
		t.Errorf("names %v", got)
	}
	gamma, beta := []float64{1.5, 0.5}, []float64{0.2, -1}
	rm0, rv0 := []float64{0.3, -2}, []float64{2, 0.5}
	f32 := func(v []float64) *ts.Tensor {
		return ts.MustOfSlice([]float32{float32(v[0]), float32(v[1])})
	}
	ts.NoGrad(func() {
		bn.W.Copy_(f32(gamma))
		bn.B.Copy_(f32(beta))
		bn.RunningMean.Copy_(f32(rm0))
		bn.RunningVar.Copy_(f32(rv0))
	})
	// x is (N=2, C=2, 1, 3): channel 0 holds 1, 2, 4, 0, 3, 8; channel 1 holds 5, 5, 6, -1, 2, 1.
	ch := [2][]float64{{1, 2, 4, 0, 3, 8}, {5, 5, 6, -1, 2, 1}}
	var vals []float32
	for n := range 2 {
		for c := range 2 {
			for j := range 3 {
				vals = append(vals, float32(ch[c][3*n+j]))
			}
		}
	}
	x := ts.MustOfSlice(vals).MustView([]int64{2, 2, 1, 3}, true)
	var mean, biased [2]float64
	for c := range ch {
		for _, v := range ch[c] {
			mean[c] += v / 6
		}
		for _, v := range ch[c] {
			biased[c] += (v - mean[c]) * (v - mean[c]) / 6
		}
	}
	expect := func(m, v []float64) []float64 {
		var out []float64
		for n := range 2 {
			for c := range 2 {
				for j := range 3 {
					out = append(out, (ch[c][3*n+j]-m[c])/math.Sqrt(v[c]+1e-5)*gamma[c]+beta[c])
				}
			}
		}
		return out
	}
	check := func(what string, got *ts.Tensor, want []float64) {
		t.Helper()
		g := cellValues(got)
		for i := range want {
			if math.Abs(g[i]-want[i]) > 1e-5*(1+math.Abs(want[i])) {
				t.Errorf("%s[%d] = %.7g, want %.7g", what, i, g[i], want[i])
			}
		}
	}
	check("training output", bn.Forward(x), expect(mean[:], biased[:]))
	rm, rv := make([]float64, 2), make([]float64, 2)
	for c := range 2 {
		rm[c] = 0.95*rm0[c] + 0.05*mean[c]
		rv[c] = 0.95*rv0[c] + 0.05*biased[c]*6/5
	}
	check("running_mean", bn.RunningMean, rm)
	check("running_var", bn.RunningVar, rv)
	bn.SetTraining(false)
	check("evaluation output", bn.Forward(x), expect(rm, rv))
	check("running_mean after evaluation", bn.RunningMean, rm)
	check("running_var after evaluation", bn.RunningVar, rv)
}

// Every parameter gets a gradient: a non-zero one with running
// statistics, and while training too, except the few whose effect the
// next training-mode batch norm removes (cellCase.vanishing: rounding
// noise; cellCase.epsOnly: below 1e-3 of the largest). The SE's hidden
// biases start at 1 so that no ReLU is dead on this batch: a dead SE
// would say nothing about the wiring.
func TestCellGradientsReachEveryParameter(t *testing.T) {
	defer cellBegin(t)()
	cellSeed(t, 11)
	for _, cc := range cellCases {
		for _, train := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/training=%v", cc.typ, train), func(t *testing.T) {
				defer cellBegin(t)()
				s := newCellStore(t)
				c, err := NewCell(s.Root(), cc.typ, 4, true)
				if err != nil {
					t.Fatal(err)
				}
				c.SetTraining(train)
				ts.NoGrad(func() { c.SE.FC1.B.MustFill_(ts.FloatScalar(1)) })
				x := cellRandn(3, 4, 6, 6).MustSetRequiresGrad(true, true)
				y := c.Forward(x)
				y.MustMul(cellRandn(y.MustSize()...), false).MustSum(gotch.Float, true).MustBackward()
				bound := map[string]float64{} // largest gradient allowed, relative to the largest of all
				if train {
					for _, n := range cc.vanishing {
						bound[n] = 1e-6
					}
					for _, n := range cc.epsOnly {
						bound[n] = 1e-3
					}
				}
				grads := map[string]float64{}
				var top float64
				named := s.Named()
				for _, n := range s.Names() {
					p := named[n]
					if !p.MustRequiresGrad() {
						continue
					}
					g := p.MustGrad(false)
					if !g.MustDefined() {
						t.Errorf("%s has no gradient", n)
						continue
					}
					v := cellValues(g)
					for _, e := range v {
						if math.IsNaN(e) || math.IsInf(e, 0) {
							t.Fatalf("%s has a non-finite gradient", n)
						}
					}
					grads[n] = cellMaxAbs(v)
					top = max(top, grads[n])
				}
				if len(grads) != len(s.Parameters()) {
					t.Errorf("%d gradients for %d parameters", len(grads), len(s.Parameters()))
				}
				for n, m := range grads {
					b, small := bound[n]
					switch {
					case small && m > b*top:
						t.Errorf("%s: gradient %.2g should be below %.0g of the largest (%.2g)", n, m, b, top)
					case !small && m <= 1e-6*top:
						t.Errorf("%s: gradient %.2g does not reach it (largest %.2g)", n, m, top)
					}
				}
				for n := range bound {
					if _, ok := grads[n]; !ok {
						t.Errorf("no parameter %q", n)
					}
				}
			})
		}
	}
}

func TestCellErrors(t *testing.T) {
	defer cellBegin(t)()
	s := newCellStore(t)
	p := s.Root()
	if _, err := NewCell(p.Sub("taken"), NormalEnc, 4, true); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		err  func() error
		want []string
	}{
		{"unknown type", func() error { _, err := NewCell(p.Sub("a"), "sideways", 4, true); return err }, []string{`unknown cell type "sideways"`, "normal_enc"}},
		{"no channels", func() error { _, err := NewCell(p.Sub("b"), NormalDec, 0, true); return err }, []string{"normal_dec", "positive channel count", "0"}},
		{"odd up", func() error { _, err := NewCell(p.Sub("c"), UpDec, 5, true); return err }, []string{"up_dec", "even", "5"}},
		{"tiny down", func() error { _, err := NewCell(p.Sub("d"), DownEnc, 1, true); return err }, []string{"down_enc", "at least 2 input channels"}},
		{"same path twice", func() error { _, err := NewCell(p.Sub("taken"), NormalEnc, 4, true); return err }, []string{"normal_enc cell", `"taken.`, "registered twice"}},
		{"negative stride", func() error { _, err := NewConv(p.Sub("e"), 3, 4, 3, ConvOptions{Stride: -1}); return err }, []string{"must not be negative", "-1"}},
		{"groups", func() error { _, err := NewConv(p.Sub("f"), 3, 4, 3, ConvOptions{Groups: 2}); return err }, []string{"not divisible by groups 2"}},
		{"no kernel", func() error { _, err := NewConv(p.Sub("g"), 3, 4, 0, ConvOptions{}); return err }, []string{"must be positive"}},
		{"batch norm", func() error { _, err := NewBatchNorm(p.Sub("h"), 0); return err }, []string{"positive channel count"}},
		{"SE", func() error { _, err := NewSE(p.Sub("i"), -3); return err }, []string{"SE", "positive channel count", "-3"}},
		{"reduce", func() error { _, err := NewFactorizedReduce(p.Sub("j"), 4, 6+1); return err }, []string{"even output channel count of at least 4", "7"}},
		{"enc combiner", func() error { _, err := NewEncCombiner(p.Sub("k"), 0, 4); return err }, []string{"encoder combiner", "positive"}},
		{"dec combiner", func() error { _, err := NewDecCombiner(p.Sub("l"), 8, 0); return err }, []string{"decoder combiner", "latent", "0"}},
	} {
		t.Run(tc.name, func(t *testing.T) { testenv.AssertError(t, tc.err(), tc.want, nil) })
	}
}

// goldenUnit is a golden case's module as the parity test drives it.
type goldenUnit struct {
	inputs      []string // golden input names; the first is differentiated
	forward     func(in []*ts.Tensor) *ts.Tensor
	branch      func(in []*ts.Tensor) *ts.Tensor // nil for combiners
	setTraining func(bool)
}

type goldenCellCase struct {
	Kind     string `json:"kind"`
	Type     string `json:"type"`
	Channels int64  `json:"channels"`
	UseSE    bool   `json:"use_se"`
	Enc      int64  `json:"enc"`
	Dec      int64  `json:"dec"`
	Latents  int64  `json:"latents"`
	Seed     uint64 `json:"seed"`
}

func buildGoldenUnit(p nn.Path, gc goldenCellCase) (goldenUnit, error) {
	switch gc.Kind {
	case "cell":
		c, err := NewCell(p, CellType(gc.Type), gc.Channels, gc.UseSE)
		if err != nil {
			return goldenUnit{}, err
		}
		return goldenUnit{
			inputs:      []string{"x"},
			forward:     func(in []*ts.Tensor) *ts.Tensor { return c.Forward(in[0]) },
			branch:      func(in []*ts.Tensor) *ts.Tensor { return c.Residual(in[0]) },
			setTraining: c.SetTraining,
		}, nil
	case "enc_combiner":
		e, err := NewEncCombiner(p, gc.Enc, gc.Dec)
		if err != nil {
			return goldenUnit{}, err
		}
		return goldenUnit{inputs: []string{"x1", "x2"}, forward: func(in []*ts.Tensor) *ts.Tensor { return e.Forward(in[0], in[1]) }, setTraining: func(bool) {}}, nil
	case "dec_combiner":
		d, err := NewDecCombiner(p, gc.Channels, gc.Latents)
		if err != nil {
			return goldenUnit{}, err
		}
		return goldenUnit{inputs: []string{"s", "z"}, forward: func(in []*ts.Tensor) *ts.Tensor { return d.Forward(in[0], in[1]) }, setTraining: func(bool) {}}, nil
	}
	return goldenUnit{}, fmt.Errorf("unknown golden kind %q", gc.Kind)
}

// Every cell type and both combiners against an independent PyTorch
// transcription with NVAE's module names (testdata/gen_golden_cells.py):
// the same seed gives the same initial weights; with fixed weights the
// output, the branch f(x), the gradients of every parameter and of the
// input, and the running statistics after a training pass match, and so
// do the outputs with running statistics.
func TestCellsMatchPyTorch(t *testing.T) {
	defer cellBegin(t)()
	g := golden.Load(t, "testdata/golden_cells.safetensors", 11)
	for _, name := range g.Cases {
		t.Run(name, func(t *testing.T) {
			defer cellBegin(t)()
			var gc goldenCellCase
			g.Settings(t, name, &gc)
			pick := func(prefix string) map[string]*ts.Tensor { return g.Pick(name, prefix) }

			cellSeed(t, gc.Seed)
			s := newCellStore(t)
			u, err := buildGoldenUnit(s.Root(), gc)
			if err != nil {
				t.Fatal(err)
			}
			named := s.Named()
			init := pick("init.")
			if len(init) != len(named) {
				t.Errorf("PyTorch has %d tensors, the store %d: %v", len(init), len(named), s.Names())
			}
			for k, want := range init {
				got, ok := named[k]
				if !ok {
					t.Errorf("no tensor %q (have %v)", k, s.Names())
					continue
				}
				assertCellClose(t, "initial "+k, got, want, 1e-6)
			}

			load := func() {
				t.Helper()
				if err := s.Load(pick("w.")); err != nil {
					t.Fatal(err)
				}
			}
			load()
			var in []*ts.Tensor
			for i, n := range u.inputs {
				x := g.Tensors[name+"."+n]
				if i == 0 {
					x = x.MustDetachCopy(false).MustSetRequiresGrad(true, true)
				}
				in = append(in, x)
			}
			const tol = 1e-5
			u.setTraining(true)
			y := u.forward(in)
			assertCellClose(t, "training output", y, g.Tensors[name+".train.out"], tol)
			y.MustMul(g.Tensors[name+".r"], false).MustSum(gotch.Float, true).MustBackward()
			assertCellClose(t, "input gradient", in[0].MustGrad(false), g.Tensors[name+".grad_x"], tol)
			grads := pick("grad.")
			if len(grads) != len(s.Parameters()) {
				t.Errorf("PyTorch has %d gradients, the store %d parameters", len(grads), len(s.Parameters()))
			}
			// Entries are compared relative to the largest of each
			// gradient; those that the next batch norm makes (almost)
			// irrelevant (cellCase.vanishing, epsOnly) are cancellation,
			// small on both sides and compared relative to the largest
			// gradient of all.
			var top float64
			for _, w := range grads {
				top = max(top, cellMaxAbs(cellValues(w)))
			}
			small := map[string]bool{}
			if cc, ok := cellCaseOf(CellType(gc.Type)); ok && gc.Kind == "cell" {
				for _, n := range append(cc.vanishing, cc.epsOnly...) {
					small[n] = true
				}
			}
			for k, w := range grads {
				p, ok := named[k]
				if !ok {
					t.Errorf("no parameter %q", k)
					continue
				}
				got, want := cellValues(p.MustGrad(false)), cellValues(w)
				var d float64
				for i := range want {
					d = max(d, math.Abs(got[i]-want[i]))
				}
				m := cellMaxAbs(want)
				if small[k] {
					if m > 1e-3*top || d > tol*top {
						t.Errorf("gradient of %s: largest %.2g of the largest of all in PyTorch, differs by %.2g of it", k, m/top, d/top)
					}
					continue
				}
				if d > tol*m {
					t.Errorf("gradient of %s differs from PyTorch's by %.2g of its largest entry", k, d/m)
				}
			}
			for k, w := range pick("buf.") {
				assertCellClose(t, "running statistic "+k, named[k], w, tol)
			}
			if u.branch != nil {
				load() // the branch alone, from the same weights and statistics
				assertCellClose(t, "training branch", u.branch(in), g.Tensors[name+".train.branch"], tol)
			}

			u.setTraining(false)
			assertCellClose(t, "evaluation output", u.forward(in), g.Tensors[name+".eval.out"], tol)
			if u.branch != nil {
				assertCellClose(t, "evaluation branch", u.branch(in), g.Tensors[name+".eval.branch"], tol)
			}
		})
	}
}
