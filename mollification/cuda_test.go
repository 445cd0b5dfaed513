package mollification

import (
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// The CUDA path: run with a libtch.so built against a CUDA libtorch.
// Skipped where no GPU is visible.

func cudaOrSkip(t testing.TB) gotch.Device {
	t.Helper()
	if !gotch.CUDA.IsAvailable() {
		t.Skip("CUDA not available")
	}
	return gotch.CudaBuilder(0)
}

// On CUDA the blur keeps everything on the device and agrees with the CPU.
func TestBlurOnCUDAMatchesCPU(t *testing.T) {
	dev := cudaOrSkip(t)
	gpu, err := NewBlur(BlurOptions{Height: 32, Width: 32, Steps: 100, Device: dev})
	if err != nil {
		t.Fatal(err)
	}
	defer gpu.Close()
	cpu, err := NewBlur(BlurOptions{Height: 32, Width: 32, Steps: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer cpu.Close()
	scoped(t, func() {
		x := ts.MustRand([]int64{8, 3, 32, 32}, gotch.Float, gotch.CPU)
		xg := x.MustTo(dev, false)
		for _, step := range []int{0, 50, 99, 100} {
			yg, info, err := gpu.Mollify(xg, step)
			if err != nil {
				t.Fatal(err)
			}
			if !sameDevice(yg.MustDevice(), dev) {
				t.Fatalf("step %d: output on %v", step, yg.MustDevice())
			}
			yc, _, err := cpu.Mollify(x, step)
			if err != nil {
				t.Fatal(err)
			}
			if e := maxAbsDiff(t, yg, yc.Float64Values()); e > 1e-4 {
				t.Errorf("step %d (%v): CUDA and CPU differ by %g", step, info, e)
			}
		}
		if _, _, err := gpu.Mollify(x, 0); err == nil {
			t.Error("a CPU batch was accepted by a CUDA blur")
		}
	})
}

func BenchmarkGaussian2DCUDA(b *testing.B) { benchmarkGaussian(b, []int64{256, 2}, cudaOrSkip(b)) }
func BenchmarkGaussianCIFARCUDA(b *testing.B) {
	benchmarkGaussian(b, []int64{64, 3, 32, 32}, cudaOrSkip(b))
}

func BenchmarkBlurCIFARCUDA(b *testing.B) {
	dev := cudaOrSkip(b)
	outer := ts.NewScope()
	defer outer.Close()
	x := ts.MustRand([]int64{64, 3, 32, 32}, gotch.Float, dev)
	bl, err := NewBlur(BlurOptions{Height: 32, Width: 32, Steps: 1 << 30, Device: dev})
	if err != nil {
		b.Fatal(err)
	}
	defer bl.Close()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		s := ts.NewScope()
		if _, _, err := bl.Mollify(x, i); err != nil {
			b.Fatal(err)
		}
		if err := ts.CudaSynchronize(0); err != nil { // time the kernels, not just their launch
			b.Fatal(err)
		}
		s.Close()
	}
}
