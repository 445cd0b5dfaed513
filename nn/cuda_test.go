package nn

import (
	"runtime"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// The CUDA path: run with a libtch.so built against a CUDA libtorch
// (LIBTORCH=... make setup). Skipped where no GPU is visible.
func TestCUDASmoke(t *testing.T) {
	if !gotch.CUDA.IsAvailable() {
		t.Skip("CUDA not available")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	dev, err := ParseDevice("cuda:0")
	if err != nil {
		t.Fatal(err)
	}
	if auto, _ := ParseDevice("auto"); auto != dev {
		t.Errorf("auto picked %v, want %v", auto, dev)
	}
	sc := ts.NewScope()
	defer sc.Close()
	// Same seed and layer on CPU and CUDA: the same weights (init draws on
	// the CPU generator for CPU stores, CUDA's for CUDA stores, so compare
	// forward results of copied weights instead).
	cpu := NewStore(gotch.CPU)
	defer cpu.Close()
	gpu := NewStore(dev)
	defer gpu.Close()
	lc, err := NewLinear(cpu.Root().Sub("l"), 16, 8)
	if err != nil {
		t.Fatal(err)
	}
	lg, err := NewLinear(gpu.Root().Sub("l"), 16, 8)
	if err != nil {
		t.Fatal(err)
	}
	if err := gpu.Load(cpu.Named()); err != nil {
		t.Fatal(err)
	}
	if d := lg.W.MustDevice(); d != dev {
		t.Fatalf("weight on %v, want %v", d, dev)
	}
	x := Randn([]int64{32, 16}, gotch.CPU)
	yc := lc.Forward(x)
	yg := lg.Forward(x.MustTo(dev, false))
	if d, _ := yg.MustTo(gotch.CPU, false).MustSub(yc, false).MustAbs(true).MustMax(true).Float64(); d > 1e-4 {
		t.Errorf("CUDA and CPU Linear differ by %g", d)
	}
	// Backward and both optimizers on the GPU match the CPU.
	for _, name := range []string{"adam", "adamax"} {
		oc, err := NewOptimizer(cpu, OptimConfig{Name: name, LR: 1e-2, WeightDecay: 1e-3})
		if err != nil {
			t.Fatal(err)
		}
		og, err := NewOptimizer(gpu, OptimConfig{Name: name, LR: 1e-2, WeightDecay: 1e-3})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			lc.Forward(x).MustSquare(true).MustMean(gotch.Float, true).MustBackward()
			lg.Forward(x.MustTo(dev, false)).MustSquare(true).MustMean(gotch.Float, true).MustBackward()
			if err := oc.Step(); err != nil {
				t.Fatal(err)
			}
			if err := og.Step(); err != nil {
				t.Fatal(err)
			}
			oc.ZeroGrad()
			og.ZeroGrad()
		}
		if d, _ := lg.W.MustTo(gotch.CPU, false).MustSub(lc.W, false).MustAbs(true).MustMax(true).Float64(); d > 1e-5 {
			t.Errorf("%s on CUDA and CPU differ by %g after 3 steps", name, d)
		}
		oc.Close()
		og.Close()
	}
	// The CUDA generator's state round-trips.
	r, err := Seed(3)
	if err != nil {
		t.Fatal(err)
	}
	state, goState, err := r.State(dev)
	if err != nil {
		t.Fatal(err)
	}
	a := Randn([]int64{4}, dev).Float64Values()
	if err := r.Restore(dev, state, goState); err != nil {
		t.Fatal(err)
	}
	b := Randn([]int64{4}, dev).Float64Values()
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("CUDA RNG not restored: %v vs %v", a, b)
		}
	}
}
