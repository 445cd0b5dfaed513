package flows

import (
	"math"
	"runtime"
	"strings"
	"testing"

	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

type baseCase struct {
	name       string
	shape      []int64 // (C,H,W) of the latent
	perChannel bool
}

var baseCases = []baseCase{
	{"glowbase/per_channel/3x2x4", []int64{3, 2, 4}, true},
	{"glowbase/per_channel/1x1x1", []int64{1, 1, 1}, true},
	{"gaussianbase/per_element/3x2x4", []int64{3, 2, 4}, false},
}

func newBase(t *testing.T, s *nn.Store, c baseCase) *GaussianBase {
	t.Helper()
	build := NewGaussianBase
	if c.perChannel {
		build = NewGlowBase
	}
	g, err := build(s.Root().Sub("base"), c.shape)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// bruteGaussianLogProb is Σ_{c,h,w} log N(z; μ, σ²) with μ = loc·e^{3·loc_logs}
// and log σ = log_scale·e^{3·log_scale_logs} read element by element in
// float64 from the parameters (per channel: index c only).
func bruteGaussianLogProb(g *GaussianBase, z *ts.Tensor) []float64 {
	C, H, W := g.Shape[0], g.Shape[1], g.Shape[2]
	loc, locLogs := g.Loc.Float64Values(), g.LocLogs.Float64Values()
	ls, lsLogs := g.LogScale.Float64Values(), g.LogScaleLogs.Float64Values()
	zv := z.Float64Values()
	n := int64(len(zv)) / (C * H * W)
	out := make([]float64, n)
	for i := int64(0); i < n; i++ {
		for c := int64(0); c < C; c++ {
			for h := int64(0); h < H; h++ {
				for w := int64(0); w < W; w++ {
					p := (c*H+h)*W + w
					if g.PerChannel() {
						p = c
					}
					mu := loc[p] * math.Exp(3*locLogs[p])
					logs := ls[p] * math.Exp(3*lsLogs[p])
					d := (zv[((i*C+c)*H+h)*W+w] - mu) / math.Exp(logs)
					out[i] += -0.5*d*d - logs - 0.5*math.Log(2*math.Pi)
				}
			}
		}
	}
	return out
}

// A learned base: parameters of shape (1,C,1,1) per channel (normflows'
// GlowBase) or (1,C,H,W) per element; zero-initialised, so it starts as
// N(0, I); once perturbed, log p(z) is the brute-force diagonal-Gaussian
// formula with GlowBase's parametrisation.
func TestGaussianBaseLogProbMatchesFormula(t *testing.T) {
	for _, c := range baseCases {
		t.Run(c.name, func(t *testing.T) {
			sc := ts.NewScope()
			defer sc.Close()
			if _, err := nn.Seed(5); err != nil {
				t.Fatal(err)
			}
			s := nn.NewStore(gotch.CPU)
			defer s.Close()
			g := newBase(t, s, c)
			want := []int64{1, c.shape[0], c.shape[1], c.shape[2]}
			if c.perChannel {
				want = []int64{1, c.shape[0], 1, 1}
			}
			for name, p := range map[string]*ts.Tensor{"loc": g.Loc, "loc_logs": g.LocLogs, "log_scale": g.LogScale, "log_scale_logs": g.LogScaleLogs} {
				if got := p.MustSize(); !equalInts(got, want) {
					t.Errorf("%s has shape %v, want %v", name, got, want)
				}
			}
			if got, wantN := s.NumParams(), 4*numelOf(want); got != wantN {
				t.Errorf("%d parameters, want %d", got, wantN)
			}
			if g.PerChannel() != c.perChannel {
				t.Errorf("PerChannel() = %v", g.PerChannel())
			}
			z := layerInput(c.shape, 5, false)
			if d := maxAbsDiff(g.LogProb(z), StdNormalLogProb(z)); d > 1e-4 {
				t.Errorf("a fresh base differs from N(0, I) by %g", d)
			}
			perturb(t, s, 0.3)
			got := g.LogProb(z).Float64Values()
			brute := bruteGaussianLogProb(g, z)
			for i := range brute {
				if math.Abs(got[i]-brute[i]) > 1e-4*math.Max(1, math.Abs(brute[i])) {
					t.Errorf("example %d: log p %.6f, brute-force formula %.6f", i, got[i], brute[i])
				}
			}
			if d := maxAbsDiff(g.LogProb(z), StdNormalLogProb(z)); d < 1e-2 {
				t.Errorf("the perturbed base is still N(0, I) (difference %g)", d)
			}
		})
	}
}

// Sampling: shape (n,C,H,W); with the same noise, temperature T scales the
// deviation from the mean by T (log σ + log T), and samples at T = 1 have
// the base's per-channel mean and standard deviation.
func TestGaussianBaseSampleTemperature(t *testing.T) {
	for _, c := range baseCases {
		t.Run(c.name, func(t *testing.T) {
			sc := ts.NewScope()
			defer sc.Close()
			s := nn.NewStore(gotch.CPU)
			defer s.Close()
			g := newBase(t, s, c)
			if _, err := nn.Seed(9); err != nil {
				t.Fatal(err)
			}
			perturb(t, s, 0.3)
			mean, logs := g.MeanLogScale()
			draw := func(T float64) *ts.Tensor {
				if _, err := nn.Seed(21); err != nil {
					t.Fatal(err)
				}
				return g.Sample(4000, T)
			}
			x1, xT := draw(1), draw(0.4)
			if got := xT.MustSize(); !equalInts(got, []int64{4000, c.shape[0], c.shape[1], c.shape[2]}) {
				t.Fatalf("samples have shape %v", got)
			}
			if d := maxAbsDiff(xT.MustSub(mean, false), x1.MustSub(mean, false).MustMulScalar(ts.FloatScalar(0.4), true)); d > 1e-5 {
				t.Errorf("x_T − μ differs from T·(x_1 − μ) by %g", d)
			}
			// Per-channel statistics of x_1 over samples and positions: where
			// the base is per element, compare (x−μ)/σ with N(0,1) instead.
			std := x1.MustSub(mean, false).MustDiv(logs.MustExp(false), true)
			m := std.MustMeanDim([]int64{0, 2, 3}, false, gotch.Float, false).Float64Values()
			v := std.MustStdDim([]int64{0, 2, 3}, true, false, false).Float64Values()
			per := float64(4000 * c.shape[1] * c.shape[2])
			for ch := range m {
				if math.Abs(m[ch]) > 5/math.Sqrt(per) || math.Abs(v[ch]-1) > 5/math.Sqrt(2*per) {
					t.Errorf("channel %d: standardised samples have mean %.4f, std %.4f; want 0 and 1", ch, m[ch], v[ch])
				}
			}
			if c.perChannel {
				mv, lv := mean.Float64Values(), logs.Float64Values()
				raw := x1.MustMeanDim([]int64{0, 2, 3}, false, gotch.Float, false).Float64Values()
				rawStd := x1.MustStdDim([]int64{0, 2, 3}, true, false, false).Float64Values()
				for ch := range raw {
					sd := math.Exp(lv[ch])
					if math.Abs(raw[ch]-mv[ch]) > 5*sd/math.Sqrt(per) || math.Abs(rawStd[ch]/sd-1) > 5/math.Sqrt(2*per) {
						t.Errorf("channel %d: mean %.4f std %.4f, want %.4f and %.4f", ch, raw[ch], rawStd[ch], mv[ch], sd)
					}
				}
			}
		})
	}
}

// Every parameter of a learned base gets a gradient from log p: the
// prior is trained. At zero init only loc and log_scale can (their
// log-factors multiply zero), so the check is after a perturbation.
func TestGaussianBaseParametersGetGradients(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, c := range baseCases {
		t.Run(c.name, func(t *testing.T) {
			sc := ts.NewScope()
			defer sc.Close()
			s := nn.NewStore(gotch.CPU)
			defer s.Close()
			g := newBase(t, s, c)
			perturb(t, s, 0.3)
			params := []*ts.Tensor{g.Loc, g.LocLogs, g.LogScale, g.LogScaleLogs}
			grads, err := ts.RunBackward([]*ts.Tensor{g.LogProb(layerInput(c.shape, 4, false)).MustSum(gotch.Float, true)}, params, false, false)
			if err != nil {
				t.Fatal(err)
			}
			for i, name := range []string{"loc", "loc_logs", "log_scale", "log_scale_logs"} {
				v := grads[i].Float64Values()
				for j, x := range v {
					if x == 0 || math.IsNaN(x) {
						t.Errorf("%s[%d] has gradient %g", name, j, x)
					}
				}
			}
		})
	}
}

// A split with its own GlowBase (the authors' Glow): log p(z2) is the
// base's, independent of the kept half; the split inverts; it samples
// (n, ⌊C/2⌋, H, W) at any temperature; it has no conditional conv.
func TestSplitWithBase(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sc := ts.NewScope()
	defer sc.Close()
	s := nn.NewStore(gotch.CPU)
	defer s.Close()
	sp, err := NewSplitWithBase(s.Root().Sub("split"), 5, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	if sp.Prior != nil {
		t.Error("the per-channel split has a conditional prior conv")
	}
	base, ok := sp.Base.(*GaussianBase)
	if !ok || !base.PerChannel() || !equalInts(base.Shape, []int64{2, 2, 3}) {
		t.Fatalf("split base %#v, want a per-channel GlowBase over (2,2,3)", sp.Base)
	}
	names := strings.Join(s.Names(), " ")
	if want := "split.base.loc split.base.loc_logs split.base.log_scale split.base.log_scale_logs"; names != want {
		t.Errorf("parameters %q, want %q", names, want)
	}
	perturb(t, s, 0.3)
	z := layerInput([]int64{5, 2, 3}, 4, false)
	z1, z2, lp := sp.Forward(z)
	if !equalInts(z1.MustSize(), []int64{4, 3, 2, 3}) || !equalInts(z2.MustSize(), []int64{4, 2, 2, 3}) {
		t.Fatalf("split into %v and %v", z1.MustSize(), z2.MustSize())
	}
	if d := maxAbsDiff(lp, base.LogProb(z2)); d > 1e-5 {
		t.Errorf("split log p differs from the base's by %g", d)
	}
	if d := maxAbsDiff(sp.LogProb(z2, z1.MustMulScalar(ts.FloatScalar(-3), false)), lp); d > 1e-5 {
		t.Errorf("log p(z2) depends on the kept half (by %g); the authors' prior is unconditional", d)
	}
	if d := maxAbsDiff(sp.Inverse(z1, z2), z); d != 0 {
		t.Errorf("Inverse(Forward(z)) differs by %g", d)
	}
	if got := sp.Sample(z1, 0.5).MustSize(); !equalInts(got, []int64{4, 2, 2, 3}) {
		t.Errorf("Sample has shape %v", got)
	}
	if _, err := NewSplitWithBase(s.Root().Sub("one"), 1, 2, 2); err == nil || !strings.Contains(err.Error(), "need at least 2") {
		t.Errorf("1-channel split: error %v", err)
	}
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func numelOf(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}
