package vaes

import (
	"math"
	"os"
	"runtime"
	"testing"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

func TestMain(m *testing.M) {
	nn.SetThreads(2)
	os.Exit(m.Run())
}

// begin pins the test to its OS thread (torch state is per thread) and
// opens a scope; call the returned function at the end.
func begin(t *testing.T) func() {
	t.Helper()
	runtime.LockOSThread()
	sc := ts.NewScope()
	return func() {
		sc.Close()
		runtime.UnlockOSThread()
	}
}

// setup is a model's settings and the images it models.
type setup struct {
	config.VAE
	config.Data
}

// table4 is the paper's network (width 1, latent 256) for size×size
// images of the given channels in [0, 1].
func table4(size, channels int, recon string) setup {
	v := config.DefaultVAE()
	v.Recon = recon
	return setup{v, config.Data{ImageSize: size, Channels: channels, Range: config.RangeUnit}}
}

// tiny is a small 32×32 configuration that runs in milliseconds.
func tiny(recon string) setup {
	c := table4(32, 3, recon)
	c.Latent, c.Width = 4, 1.0/32
	return c
}

func seed(t *testing.T, s uint64) {
	t.Helper()
	if _, err := nn.Seed(s); err != nil {
		t.Fatal(err)
	}
}

// images is a batch of uniform [0,1) images of the shape d describes.
func images(n int64, d config.Data) *ts.Tensor {
	s := int64(d.ImageSize)
	return ts.MustRand([]int64{n, int64(d.Channels), s, s}, gotch.Float, gotch.CPU)
}

func scalar(t *testing.T, x *ts.Tensor) float64 {
	t.Helper()
	v, err := x.Float64()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func values(x *ts.Tensor) []float64 {
	return x.MustTotype(gotch.Double, false).MustContiguous(true).Float64Values(true)
}

func relClose(a, b, rtol float64) bool {
	return math.Abs(a-b) <= rtol*math.Max(math.Abs(b), 1e-6)
}

// maxRelErr is max|a−b| / max(max|b|, floor).
func maxRelErr(a, b []float64, floor float64) float64 {
	var d, m float64
	for i := range a {
		d = math.Max(d, math.Abs(a[i]-b[i]))
		m = math.Max(m, math.Abs(b[i]))
	}
	return d / math.Max(m, floor)
}

// jacobian returns ∂out/∂in by autograd, one output entry at a time; in
// must require grad and out must depend on it. Rows index out, columns in.
func jacobian(t *testing.T, out, in *ts.Tensor) [][]float64 {
	t.Helper()
	flat := out.MustReshape([]int64{-1}, false)
	n := flat.MustSize()[0]
	J := make([][]float64, n)
	for i := range n {
		g, err := ts.RunBackward([]*ts.Tensor{flat.MustSelect(0, i, false)}, []*ts.Tensor{in}, true, false)
		if err != nil {
			t.Fatal(err)
		}
		J[i] = values(g[0])
	}
	return J
}

// logAbsDet is log|det A| by Gaussian elimination with partial pivoting.
func logAbsDet(a [][]float64) float64 {
	n := len(a)
	m := make([][]float64, n)
	for i := range a {
		m[i] = append([]float64(nil), a[i]...)
	}
	var ld float64
	for c := range n {
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
		ld += math.Log(math.Abs(m[c][c]))
		for r := c + 1; r < n; r++ {
			f := m[r][c] / m[c][c]
			for k := c; k < n; k++ {
				m[r][k] -= f * m[c][k]
			}
		}
	}
	return ld
}

// randomize replaces every parameter under s with N(0, scale²).
func randomize(s *nn.Store, scale float64) {
	ts.NoGrad(func() {
		for _, p := range s.Parameters() {
			p.Copy_(nn.Randn(p.MustSize(), gotch.CPU).MustMulScalar(ts.FloatScalar(scale), true))
		}
	})
}

// grads returns the gradients of y with respect to the store's
// parameters, flattened and concatenated.
func grads(t *testing.T, y *ts.Tensor, s *nn.Store) []float64 {
	t.Helper()
	g, err := ts.RunBackward([]*ts.Tensor{y}, s.Parameters(), true, false)
	if err != nil {
		t.Fatal(err)
	}
	var out []float64
	for _, x := range g {
		out = append(out, values(x)...)
	}
	return out
}
