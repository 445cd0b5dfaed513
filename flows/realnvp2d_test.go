package flows

import (
	"math"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

func TestMain(m *testing.M) {
	nn.SetThreads(1)
	os.Exit(m.Run())
}

// randomize replaces every parameter with N(0, scale²) so that the flow is
// far from the identity it starts as.
func randomize(t *testing.T, s *nn.Store, scale float64) {
	t.Helper()
	ts.NoGrad(func() {
		for _, p := range s.Parameters() {
			p.Copy_(nn.Randn(p.MustSize(), gotch.CPU).MustMulScalar(ts.FloatScalar(scale), true))
		}
	})
}

func newTestFlow(t *testing.T) (*RealNVP2D, *nn.Store) {
	t.Helper()
	if _, err := nn.Seed(1); err != nil {
		t.Fatal(err)
	}
	s := nn.NewStore(gotch.CPU)
	m, err := NewRealNVP2D(s.Root(), config.RealNVP2D{Couplings: 5, HiddenLayers: 2, HiddenUnits: 16})
	if err != nil {
		t.Fatal(err)
	}
	randomize(t, s, 0.3)
	return m, s
}

func TestRealNVP2DInvertible(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sc := ts.NewScope()
	defer sc.Close()
	m, s := newTestFlow(t)
	defer s.Close()
	x := nn.Randn([]int64{64, 2}, gotch.CPU).MustMulScalar(ts.FloatScalar(2), true)
	z, ldf := m.Forward(x)
	x2, ldi := m.Inverse(z)
	if d, _ := x2.MustSub(x, false).MustAbs(true).MustMax(true).Float64(); d > 1e-4 {
		t.Errorf("Inverse(Forward(x)) differs from x by %g", d)
	}
	if d, _ := ldf.MustAdd(ldi, false).MustAbs(true).MustMax(true).Float64(); d > 1e-4 {
		t.Errorf("forward and inverse log-dets do not cancel: %g", d)
	}
	if d, _ := z.MustSub(x, false).MustAbs(true).MustMax(true).Float64(); d < 1e-2 {
		t.Errorf("randomized flow is still the identity (max |z-x| = %g)", d)
	}
}

// The log-determinant equals log|det J| of the brute-force Jacobian,
// computed by autograd one output coordinate at a time.
func TestRealNVP2DLogDetMatchesJacobian(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sc := ts.NewScope()
	defer sc.Close()
	m, s := newTestFlow(t)
	defer s.Close()
	pts := [][2]float32{{0.3, -1.2}, {2.5, 0.7}, {-1.9, -2.2}, {0, 0}}
	for _, p := range pts {
		x := ts.MustOfSlice([]float32{p[0], p[1]}).MustReshape([]int64{1, 2}, true)
		x.MustRequiresGrad_(true)
		z, logdet := m.Forward(x)
		var J [2][2]float64
		for i := int64(0); i < 2; i++ {
			zi := z.MustSelect(1, i, false).MustSum(gotch.Float, true)
			g, err := ts.RunBackward([]*ts.Tensor{zi}, []*ts.Tensor{x}, true, false)
			if err != nil {
				t.Fatal(err)
			}
			v := g[0].Float64Values()
			J[i][0], J[i][1] = v[0], v[1]
		}
		want := math.Log(math.Abs(J[0][0]*J[1][1] - J[0][1]*J[1][0]))
		got, _ := logdet.Float64()
		if math.Abs(got-want) > 1e-4 {
			t.Errorf("x=%v: logdet %.6f, brute-force log|det J| %.6f", p, got, want)
		}
	}
}

func TestRealNVP2DStartsAsIdentityAndValidates(t *testing.T) {
	sc := ts.NewScope()
	defer sc.Close()
	s := nn.NewStore(gotch.CPU)
	defer s.Close()
	m, err := NewRealNVP2D(s.Root(), config.DefaultRealNVP2D())
	if err != nil {
		t.Fatal(err)
	}
	x := nn.Randn([]int64{8, 2}, gotch.CPU)
	lp := m.LogProb(x)
	want := StdNormalLogProb(x)
	if d, _ := lp.MustSub(want, false).MustAbs(true).MustMax(true).Float64(); d > 1e-6 {
		t.Errorf("an untrained flow should be the identity: log p differs from N(0,I) by %g", d)
	}
	if got := s.NumParams(); got != 5*(1*64+64+64*64+64+64*2+2) {
		t.Errorf("%d parameters", got)
	}
	if _, err := NewRealNVP2D(s.Root().Sub("x"), config.RealNVP2D{Couplings: 0, HiddenLayers: 1, HiddenUnits: 4}); err == nil || !strings.Contains(err.Error(), "model.realnvp2d.couplings must be > 0") {
		t.Errorf("0 layers: error %v", err)
	}
	if _, err := NewRealNVP2D(s.Root().Sub("y"), config.RealNVP2D{Couplings: 2, HiddenLayers: 0, HiddenUnits: 4}); err == nil || !strings.Contains(err.Error(), "model.realnvp2d.hidden_layers must be > 0") {
		t.Errorf("no hidden layers: error %v", err)
	}
}
