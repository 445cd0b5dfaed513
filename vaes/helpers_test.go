package vaes

import (
	"math"
	"os"
	"runtime"
	"testing"

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

// tiny is a small 32×32 configuration that runs in milliseconds.
func tiny(recon string) Config {
	return Config{ImageSize: 32, Channels: 3, Latent: 4, Width: 1.0 / 32, Recon: recon, Range: RangeUnit}
}

func seed(t *testing.T, s uint64) {
	t.Helper()
	if _, err := nn.Seed(s); err != nil {
		t.Fatal(err)
	}
}

// images is a batch of uniform [0,1) images.
func images(n int64, c Config) *ts.Tensor {
	x := ts.MustRand([]int64{n, c.Channels, c.ImageSize, c.ImageSize}, gotch.Float, gotch.CPU)
	return x
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
