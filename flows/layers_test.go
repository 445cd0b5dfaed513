package flows

import (
	"math"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// perturb adds N(0, scale²) to every parameter, so that zero-initialised
// layers (coupling outputs, priors, log-scales) are not the identity and
// the tests cannot pass trivially.
func perturb(t *testing.T, s *nn.Store, scale float64) {
	t.Helper()
	ts.NoGrad(func() {
		for _, p := range s.Parameters() {
			p.Copy_(p.MustAdd(nn.Randn(p.MustSize(), gotch.CPU).MustMulScalar(ts.FloatScalar(scale), true), false))
		}
	})
}

func maxAbsDiff(a, b *ts.Tensor) float64 {
	d, _ := a.MustSub(b, false).MustAbs(true).MustMax(true).Float64()
	return d
}

// flatLatent concatenates latents to (N, D).
func flatLatent(zs ...*ts.Tensor) *ts.Tensor {
	flat := make([]*ts.Tensor, len(zs))
	for i, z := range zs {
		flat[i] = z.MustFlatten(1, -1, false)
	}
	return ts.MustCat(flat, 1)
}

// bruteLogDet returns log|det ∂z/∂x| for a single example x (1,...): the
// Jacobian is built row by row with autograd and its determinant taken
// in float64.
func bruteLogDet(t *testing.T, x *ts.Tensor, f func(x *ts.Tensor) *ts.Tensor) float64 {
	t.Helper()
	x = x.MustDetachCopy(false)
	x.MustRequiresGrad_(true)
	z := f(x).MustFlatten(0, -1, false)
	d := z.MustSize()[0]
	if nx := x.Numel(); int64(nx) != d {
		t.Fatalf("Jacobian is %d×%d, not square", d, nx)
	}
	J := make([][]float64, d)
	for i := int64(0); i < d; i++ {
		g, err := ts.RunBackward([]*ts.Tensor{z.MustSelect(0, i, false)}, []*ts.Tensor{x}, true, false)
		if err != nil {
			t.Fatal(err)
		}
		J[i] = g[0].MustTotype(gotch.Double, false).Float64Values()
	}
	return logAbsDet(J)
}

// logAbsDet is log|det A| by Gaussian elimination with partial pivoting.
func logAbsDet(a [][]float64) float64 {
	n := len(a)
	m := make([][]float64, n)
	for i := range a {
		m[i] = append([]float64(nil), a[i]...)
	}
	s := 0.0
	for c := 0; c < n; c++ {
		p := c
		for r := c + 1; r < n; r++ {
			if math.Abs(m[r][c]) > math.Abs(m[p][c]) {
				p = r
			}
		}
		m[c], m[p] = m[p], m[c]
		if m[c][c] == 0 {
			return math.Inf(-1)
		}
		s += math.Log(math.Abs(m[c][c]))
		for r := c + 1; r < n; r++ {
			f := m[r][c] / m[c][c]
			for k := c; k < n; k++ {
				m[r][k] -= f * m[c][k]
			}
		}
	}
	return s
}

type layerCase struct {
	name  string
	shape []int64 // (C,H,W)
	unit  bool    // inputs in (0,1)
	build func(p nn.Path) (Layer, error)
}

// glowNet is Glow's coupling network with the default kernels.
func glowNet(hidden int64) NetBuilder {
	return GlowNetBuilder(hidden, config.DefaultGlow().CouplingKernels())
}

func couplingCase(name string, c int64, part Partition, parity int, scale Scale, net NetBuilder) layerCase {
	return layerCase{name: name, shape: []int64{c, 4, 4}, build: func(p nn.Path) (Layer, error) {
		return NewAffineCoupling(p, c, part, parity, scale, net)
	}}
}

func evalMode(l Layer, err error) (Layer, error) {
	if a, ok := l.(*AffineCoupling); ok {
		a.SetTraining(false)
	}
	return l, err
}

var layerCases = []layerCase{
	{name: "squeeze", shape: []int64{4, 4, 4}, build: func(nn.Path) (Layer, error) { return SqueezeLayer{}, nil }},
	{name: "actnorm", shape: []int64{4, 4, 4}, build: func(p nn.Path) (Layer, error) { return NewActNorm(p, 4) }},
	{name: "invconv1x1", shape: []int64{4, 4, 4}, build: func(p nn.Path) (Layer, error) { return NewInvConv1x1(p, 4) }},
	{name: "logit", shape: []int64{4, 4, 4}, unit: true, build: func(nn.Path) (Layer, error) { return NewLogit(0.05) }},
	couplingCase("coupling/channel/sigmoid/glownet", 4, PartitionChannel, 0, ScaleSigmoid, glowNet(8)),
	couplingCase("coupling/channel/exp/parity1", 4, PartitionChannel, 1, ScaleTanhExp, glowNet(8)),
	couplingCase("coupling/channel/odd-channels", 3, PartitionChannel, 0, ScaleSigmoid, glowNet(8)),
	couplingCase("coupling/channel/odd-channels/parity1", 3, PartitionChannel, 1, ScaleTanhExp, glowNet(8)),
	couplingCase("coupling/checkerboard/sigmoid/parity1", 4, PartitionCheckerboard, 1, ScaleSigmoid, glowNet(8)),
	couplingCase("coupling/checkerboard/exp/resnet", 4, PartitionCheckerboard, 0, ScaleTanhExp, ResNetBuilder(8, 2)),
	couplingCase("coupling/channel/exp/resnet", 4, PartitionChannel, 1, ScaleTanhExp, ResNetBuilder(8, 1)),
	{name: "coupling/resnet/eval", shape: []int64{4, 4, 4}, build: func(p nn.Path) (Layer, error) {
		return evalMode(NewAffineCoupling(p, 4, PartitionCheckerboard, 1, ScaleTanhExp, ResNetBuilder(8, 1)))
	}},
	{name: "glowstep", shape: []int64{4, 4, 4}, build: func(p nn.Path) (Layer, error) {
		return NewGlowStep(p, 4, glowNet(8), PartitionChannel, 0, ScaleSigmoid)
	}},
}

func layerInput(shape []int64, n int64, unit bool) *ts.Tensor {
	full := append([]int64{n}, shape...)
	if unit {
		return ts.MustRand(full, gotch.Float, gotch.CPU).MustMulScalar(ts.FloatScalar(0.98), true).MustAddScalar(ts.FloatScalar(0.01), true)
	}
	return nn.Randn(full, gotch.CPU).MustMulScalar(ts.FloatScalar(1.5), true).MustAddScalar(ts.FloatScalar(0.3), true)
}

func newLayer(t *testing.T, c layerCase) (Layer, *nn.Store) {
	t.Helper()
	if _, err := nn.Seed(7); err != nil {
		t.Fatal(err)
	}
	s := nn.NewStore(gotch.CPU)
	l, err := c.build(s.Root())
	if err != nil {
		t.Fatal(err)
	}
	l.Forward(layerInput(c.shape, 8, c.unit)) // data-dependent init, where there is one
	perturb(t, s, 0.2)
	return l, s
}

// Every layer is invertible, its forward and inverse log-dets cancel, and
// the log-det equals the brute-force log|det J| of autograd's Jacobian.
func TestLayersInvertibleAndLogDet(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, c := range layerCases {
		t.Run(c.name, func(t *testing.T) {
			sc := ts.NewScope()
			defer sc.Close()
			l, s := newLayer(t, c)
			defer s.Close()
			x := layerInput(c.shape, 3, c.unit)
			z, ldf := l.Forward(x)
			x2, ldi := l.Inverse(z)
			if d := maxAbsDiff(x2, x); d > 1e-4 {
				t.Errorf("Inverse(Forward(x)) differs from x by %g", d)
			}
			if d := maxAbsDiff(ldf.MustAdd(ldi, false), ts.MustZeros([]int64{3}, gotch.Float, gotch.CPU)); d > 1e-4 {
				t.Errorf("forward and inverse log-dets do not cancel: %g", d)
			}
			if got := ldf.MustSize(); len(got) != 1 || got[0] != 3 {
				t.Errorf("logdet shape %v, want [3]", got)
			}
			if c.name != "squeeze" {
				if d := maxAbsDiff(z, x); d < 1e-2 {
					t.Errorf("perturbed layer is still the identity (max |z-x| = %g)", d)
				}
			}
			for i := 0; i < 2; i++ {
				x1 := layerInput(c.shape, 1, c.unit)
				want := bruteLogDet(t, x1, func(x *ts.Tensor) *ts.Tensor { z, _ := l.Forward(x); return z })
				_, ld := l.Forward(x1)
				got, _ := ld.Float64()
				if math.Abs(got-want) > 1e-4*math.Max(1, math.Abs(want)) {
					t.Errorf("logdet %.6f, brute-force log|det J| %.6f", got, want)
				}
			}
		})
	}
}

func TestSqueezeOrder(t *testing.T) {
	sc := ts.NewScope()
	defer sc.Close()
	x := ts.MustArange(ts.FloatScalar(2*4*6), gotch.Float, gotch.CPU).MustReshape([]int64{1, 2, 4, 6}, true)
	z, err := Squeeze(x)
	if err != nil {
		t.Fatal(err)
	}
	if got := z.MustSize(); got[1] != 8 || got[2] != 2 || got[3] != 3 {
		t.Fatalf("squeezed shape %v, want [1 8 2 3]", got)
	}
	xv, zv := x.Float64Values(), z.Float64Values()
	for c := 0; c < 2; c++ {
		for i := 0; i < 2; i++ {
			for j := 0; j < 2; j++ {
				for h := 0; h < 2; h++ {
					for w := 0; w < 3; w++ {
						got := zv[((4*c+2*i+j)*2+h)*3+w]
						want := xv[(c*4+2*h+i)*6+2*w+j]
						if got != want {
							t.Fatalf("z[%d,%d,%d] = %g, want x[%d,%d,%d] = %g", 4*c+2*i+j, h, w, got, c, 2*h+i, 2*w+j, want)
						}
					}
				}
			}
		}
	}
	back, err := Unsqueeze(z)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(back, x); d != 0 {
		t.Errorf("Unsqueeze(Squeeze(x)) differs by %g", d)
	}
}

func TestMasks(t *testing.T) {
	sc := ts.NewScope()
	defer sc.Close()
	cases := []struct {
		name string
		got  *ts.Tensor
		want []float64
	}{
		{"checkerboard 2x3 parity 0", CheckerboardMask(2, 3, 0, gotch.CPU), []float64{1, 0, 1, 0, 1, 0}},
		{"checkerboard 2x3 parity 1", CheckerboardMask(2, 3, 1, gotch.CPU), []float64{0, 1, 0, 1, 0, 1}},
		{"channel 5 parity 0", ChannelMask(5, 0, gotch.CPU), []float64{1, 1, 1, 0, 0}},
		{"channel 5 parity 1", ChannelMask(5, 1, gotch.CPU), []float64{0, 0, 0, 1, 1}},
		{"channel 4 parity 1", ChannelMask(4, 1, gotch.CPU), []float64{0, 0, 1, 1}},
	}
	for _, c := range cases {
		got := c.got.Float64Values()
		if len(got) != len(c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s: %v, want %v", c.name, got, c.want)
				break
			}
		}
	}
}

// ActNorm's data-dependent init whitens the init batch per channel, matches
// the PyTorch reference, and its flag survives a save/load, so a loaded
// model is not re-initialised on the next batch.
func TestActNormInitAndReload(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sc := ts.NewScope()
	defer sc.Close()
	golden, _, err := nn.LoadTensors(filepath.Join("testdata", "actnorm.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	s := nn.NewStore(gotch.CPU)
	defer s.Close()
	a, err := NewActNorm(s.Root().Sub("an"), 4)
	if err != nil {
		t.Fatal(err)
	}
	if a.IsInitialised() {
		t.Fatal("a new ActNorm reports initialised")
	}
	x := golden["x"]
	z, _ := a.Forward(x)
	mean := z.MustMeanDim([]int64{0, 2, 3}, false, gotch.Float, false).Float64Values()
	std := z.MustStdDim([]int64{0, 2, 3}, true, false, false).Float64Values()
	for c := range mean {
		if math.Abs(mean[c]) > 1e-5 || math.Abs(std[c]-1) > 1e-5 {
			t.Errorf("channel %d after init: mean %g, std %g; want 0 and 1", c, mean[c], std[c])
		}
	}
	for _, n := range []string{"bias", "logs", "z"} {
		got := map[string]*ts.Tensor{"bias": a.Bias, "logs": a.Logs, "z": z}[n]
		if d := maxAbsDiff(got, golden[n]); d > 1e-5 {
			t.Errorf("%s differs from PyTorch by %g", n, d)
		}
	}
	if v, _ := a.Initialised.Float64(); v != 1 {
		t.Errorf("initialised flag is %g after init", v)
	}

	path := filepath.Join(t.TempDir(), "an.safetensors")
	if err := nn.SaveTensors(path, s.Named(), nil); err != nil {
		t.Fatal(err)
	}
	s2 := nn.NewStore(gotch.CPU)
	defer s2.Close()
	b, err := NewActNorm(s2.Root().Sub("an"), 4)
	if err != nil {
		t.Fatal(err)
	}
	loaded, _, err := nn.LoadTensors(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Load(loaded); err != nil {
		t.Fatal(err)
	}
	if !b.IsInitialised() {
		t.Fatal("the loaded ActNorm is not initialised: the flag was not saved with the weights")
	}
	other := nn.Randn([]int64{5, 4, 3, 3}, gotch.CPU).MustMulScalar(ts.FloatScalar(10), true)
	z2, _ := b.Forward(other)
	if d := maxAbsDiff(b.Bias, a.Bias) + maxAbsDiff(b.Logs, a.Logs); d != 0 {
		t.Errorf("the loaded ActNorm re-initialised on a new batch (parameters moved by %g)", d)
	}
	want, _ := a.Forward(other)
	if d := maxAbsDiff(z2, want); d > 1e-6 {
		t.Errorf("loaded ActNorm output differs by %g", d)
	}
}

// The LU 1×1 conv: log|det| = H·W·log|det W| (slogdet), and its inverse,
// computed in float64, is W⁻¹ to float64 precision.
func TestInvConv1x1SlogdetAndFloat64Inverse(t *testing.T) {
	sc := ts.NewScope()
	defer sc.Close()
	if _, err := nn.Seed(3); err != nil {
		t.Fatal(err)
	}
	s := nn.NewStore(gotch.CPU)
	defer s.Close()
	l, err := NewInvConv1x1(s.Root(), 6)
	if err != nil {
		t.Fatal(err)
	}
	// A fresh layer is a rotation: |det W| = 1.
	_, ld0 := l.Forward(nn.Randn([]int64{1, 6, 2, 2}, gotch.CPU))
	if v, _ := ld0.Float64(); math.Abs(v) > 1e-5 {
		t.Errorf("initial log|det| %g, want 0 (a rotation)", v)
	}
	perturb(t, s, 0.3)
	w64 := l.Weight().MustTotype(gotch.Double, true)
	_, logabs := ts.MustLinalgSlogdet(w64)
	want, _ := logabs.Float64()
	_, ld := l.Forward(nn.Randn([]int64{2, 6, 3, 5}, gotch.CPU))
	got := ld.Float64Values()
	for _, g := range got {
		if math.Abs(g-15*want) > 1e-4 {
			t.Errorf("logdet %g, want H·W·slogdet(W) = %g", g, 15*want)
		}
	}
	inv := l.InverseWeight()
	if inv.DType() != gotch.Double {
		t.Fatalf("InverseWeight dtype %v, want float64", inv.DType())
	}
	eye := ts.MustEye(6, gotch.Double, gotch.CPU)
	if d := maxAbsDiff(l.weight(gotch.Double).MustMatmul(inv, false), eye); d > 1e-12 {
		t.Errorf("W·W⁻¹ differs from I by %g in float64", d)
	}
}

func TestLogitMatchesDefinition(t *testing.T) {
	sc := ts.NewScope()
	defer sc.Close()
	l, err := NewLogit(0.05)
	if err != nil {
		t.Fatal(err)
	}
	x := ts.MustOfSlice([]float32{0, 0.25, 0.5, 1}).MustReshape([]int64{1, 1, 2, 2}, true)
	z, ld := l.Forward(x)
	var wantLD float64
	for i, v := range []float64{0, 0.25, 0.5, 1} {
		p := 0.05 + 0.9*v
		if got := z.Float64Values()[i]; math.Abs(got-math.Log(p/(1-p))) > 1e-5 {
			t.Errorf("logit(%g) = %g, want %g", v, got, math.Log(p/(1-p)))
		}
		wantLD += math.Log(0.9) - math.Log(p) - math.Log(1-p)
	}
	if got, _ := ld.Float64(); math.Abs(got-wantLD) > 1e-4 {
		t.Errorf("logdet %g, want %g", got, wantLD)
	}
}

func TestSigmoidScaleFloor(t *testing.T) {
	sc := ts.NewScope()
	defer sc.Close()
	s := nn.NewStore(gotch.CPU)
	defer s.Close()
	a, err := NewAffineCoupling(s.Root(), 2, PartitionChannel, 0, ScaleSigmoid, glowNet(4))
	if err != nil {
		t.Fatal(err)
	}
	// A huge negative raw scale: without the floor s = sigmoid(-1000+2) = 0.
	ts.NoGrad(func() { a.Net.(*GlowNet).Conv3.B.Copy_(ts.MustOfSlice([]float32{0, -1000})) })
	z := nn.Randn([]int64{1, 2, 2, 2}, gotch.CPU)
	x, ld := a.Inverse(z)
	if bad, _ := x.MustIsfinite(false).MustAll(true).Float64(); bad != 1 {
		t.Errorf("inverse with a vanishing scale is not finite: %v", x.Float64Values())
	}
	if got, _ := ld.Float64(); math.Abs(got-(-4*math.Log(SigmoidScaleFloor))) > 1e-3 {
		t.Errorf("inverse logdet %g, want %g (4 elements at the floor)", got, -4*math.Log(SigmoidScaleFloor))
	}
	z2, _ := a.Forward(x)
	if d := maxAbsDiff(z2, z); d > 1e-3 {
		t.Errorf("the floored coupling is not invertible: %g", d)
	}
}

func TestLayerErrors(t *testing.T) {
	sc := ts.NewScope()
	defer sc.Close()
	s := nn.NewStore(gotch.CPU)
	defer s.Close()
	an, err := NewActNorm(s.Root().Sub("an"), 4)
	if err != nil {
		t.Fatal(err)
	}
	recovered := func(f func()) (err error) {
		defer nn.Recover(&err)
		f()
		return nil
	}
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"squeeze odd height", func() error { _, err := Squeeze(nn.Zeros([]int64{1, 3, 5, 4}, gotch.CPU)); return err }(), "height and width must be even"},
		{"squeeze odd width", func() error { _, err := Squeeze(nn.Zeros([]int64{1, 3, 4, 7}, gotch.CPU)); return err }(), "height and width must be even"},
		{"squeeze 3-D", func() error { _, err := Squeeze(nn.Zeros([]int64{3, 4, 4}, gotch.CPU)); return err }(), "expects an NCHW tensor"},
		{"unsqueeze 6 channels", func() error { _, err := Unsqueeze(nn.Zeros([]int64{1, 6, 2, 2}, gotch.CPU)); return err }(), "divisible by 4"},
		{"actnorm wrong channels", recovered(func() { an.Forward(nn.Zeros([]int64{2, 3, 2, 2}, gotch.CPU)) }), "built for 4 channels"},
		{"channel coupling on 1 channel", func() error {
			_, err := NewAffineCoupling(s.Root().Sub("c1"), 1, PartitionChannel, 0, ScaleSigmoid, glowNet(4))
			return err
		}(), "at least 2 channels"},
		{"logit alpha", func() error { _, err := NewLogit(0.5); return err }(), "[0, 0.5)"},
		{"split 1 channel", func() error { _, err := NewSplit(s.Root().Sub("sp"), 1, true); return err }(), "need at least 2"},
		{"even coupling kernel", func() error {
			_, err := NewAffineCoupling(s.Root().Sub("c2"), 2, PartitionChannel, 0, ScaleSigmoid, GlowNetBuilder(4, [3]int64{3, 1, 2}))
			return err
		}(), "kernels must be odd and positive"},
		{"scale name", func() error { _, err := ParseScale("softplus"); return err }(), "want sigmoid or exp"},
		{"partition name", func() error { _, err := ParsePartition("random"); return err }(), "want channel or checkerboard"},
	}
	for _, c := range cases {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, c.err, c.want)
		}
	}
}
