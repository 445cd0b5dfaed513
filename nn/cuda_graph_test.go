package nn

import (
	"math"
	"runtime"
	"strings"
	"testing"

	"github.com/mollify/mollify/internal/testenv"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Without a CUDA device every CUDA graph, stream and allocator entry point
// of patch 0008 fails with an error that says why, and nothing is left
// half done. Against a libtorch without CUDA (Debian's) the stand-in says
// it needs a CUDA build of libtorch; against a CUDA libtorch on a machine
// with no GPU (a login node with a pip CUDA torch) the real code says the
// device does not exist.
func TestCUDAGraphsNeedCUDABuild(t *testing.T) {
	if gotch.CUDA.IsAvailable() {
		t.Skip("CUDA is available: TestCUDAGraphCaptureAndReplay covers it")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if ts.CUDAGraphsAvailable() {
		t.Fatal("CUDAGraphsAvailable is true without a CUDA device")
	}
	graph, err := ts.NewCUDAGraph(0)
	// want is what `op` says about `what` (CUDA graphs, streams or memory
	// statistics): the real code, on a CUDA libtorch, that the device does
	// not exist; the stand-in that libtorch lacks CUDA.
	realCode := err != nil && strings.Contains(err.Error(), "does not exist")
	want := func(op, what string) []string {
		if realCode {
			return []string{op + ": CUDA device 0 does not exist (0 visible)"}
		}
		return []string{op + ": " + what + " need a CUDA build of libtorch (this libtch was built against ", ", CPU only)"}
	}
	testenv.AssertError(t, err, want("NewCUDAGraph", "CUDA graphs"), nil)
	if graph != nil {
		t.Errorf("NewCUDAGraph returned a graph with its error")
	}
	side, err := ts.BeginCUDASideStream(0)
	testenv.AssertError(t, err, want("BeginCUDASideStream", "CUDA streams"), nil)
	if side != nil {
		t.Errorf("BeginCUDASideStream returned a stream with its error")
	}
	testenv.AssertError(t, ts.CUDASynchronize(0), want("CUDASynchronize", "CUDA streams"), nil)
	stats, err := ts.CUDAMemory(0)
	testenv.AssertError(t, err, want("CUDAMemory", "CUDA memory statistics"), nil)
	if stats != (ts.CUDAMemoryStats{}) {
		t.Errorf("CUDAMemory returned %+v with its error", stats)
	}
	testenv.AssertError(t, ts.ResetCUDAPeakStats(0), want("ResetCUDAPeakStats", "CUDA memory statistics"), nil)
	// The error slot is per thread and was read each time: nothing is left
	// for the next call.
	if err := ts.TorchErr(); err != nil {
		t.Errorf("an error was left behind: %v", err)
	}

	// The methods of a graph that was never made say so, and Close is safe.
	var none *ts.CUDAGraph
	for name, call := range map[string]func() error{
		"CaptureBegin": func() error { return none.CaptureBegin(nil) },
		"CaptureEnd":   none.CaptureEnd,
		"Replay":       none.Replay,
		"Reset":        none.Reset,
	} {
		testenv.AssertError(t, call(), []string{"CUDAGraph." + name, "nil or closed"}, nil)
	}
	none.Close()
	var noStream *ts.CUDASideStream
	testenv.AssertError(t, noStream.End(), []string{"CUDASideStream.End", "has ended"}, nil)
}

// y = 2x + 1 captured once into a static output, replayed after the static
// input changes in place; a second graph (z = y²) shares the first one's
// memory pool and is replayed after it; the allocator reports the memory.
func TestCUDAGraphCaptureAndReplay(t *testing.T) {
	if !gotch.CUDA.IsAvailable() {
		t.Skip("CUDA not available")
	}
	if !ts.CUDAGraphsAvailable() {
		t.Fatal("a GPU is visible but libtch has no CUDA graphs: see tchsetup's output (CUDA graphs: ...) and stubs.txt")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const device = 0
	dev, err := ParseDevice("cuda:0")
	if err != nil {
		t.Fatal(err)
	}
	sc := ts.NewScope()
	defer sc.Close()
	onDevice := func(v ...float32) *ts.Tensor { return ts.MustOfSlice(v).MustTo(dev, false) }
	values := func(x *ts.Tensor) []float64 { return x.MustTo(gotch.CPU, false).Float64Values() }
	check := func(what string, got []float64, want ...float64) {
		t.Helper()
		for i := range want {
			if len(got) != len(want) || math.Abs(got[i]-want[i]) > 1e-5 {
				t.Fatalf("%s = %v, want %v", what, got, want)
			}
		}
	}
	x := onDevice(1, 2, 3, 4)
	two, one := ts.FloatScalar(2), ts.FloatScalar(1)
	step := func() *ts.Tensor { return x.MustMulScalar(two, false).MustAddScalar(one, false) }

	// Warm-up on a side stream, as PyTorch's documentation does it.
	side, err := ts.BeginCUDASideStream(device)
	if err != nil {
		t.Fatal(err)
	}
	check("warm-up step", values(step()), 3, 5, 7, 9)
	if err := side.End(); err != nil {
		t.Fatal(err)
	}
	testenv.AssertError(t, side.End(), []string{"has ended"}, nil)

	g, err := ts.NewCUDAGraph(device)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	testenv.AssertError(t, g.Replay(), []string{"CUDAGraph.Replay", "holds no capture"}, nil)
	testenv.AssertError(t, g.CaptureEnd(), []string{"CUDAGraph.CaptureEnd", "no capture is open"}, nil)
	testenv.AssertError(t, g.CaptureBegin(g), []string{"CUDAGraph.CaptureBegin", "holds no capture"}, nil)
	if err := g.CaptureBegin(nil); err != nil {
		t.Fatal(err)
	}
	y := step()
	if err := g.CaptureEnd(); err != nil {
		t.Fatal(err)
	}
	testenv.AssertError(t, g.CaptureBegin(nil), []string{"holds a capture; Reset it first"}, nil)

	x.Copy_(onDevice(10, 20, 30, 40))
	if err := g.Replay(); err != nil {
		t.Fatal(err)
	}
	check("y after replay", values(y), 21, 41, 61, 81)

	g2, err := ts.NewCUDAGraph(device)
	if err != nil {
		t.Fatal(err)
	}
	defer g2.Close()
	if err := g2.CaptureBegin(g); err != nil {
		t.Fatal(err)
	}
	z := y.MustMul(y, false)
	if err := g2.CaptureEnd(); err != nil {
		t.Fatal(err)
	}
	x.Copy_(onDevice(0.5, -1, 0, 2))
	for _, gr := range []*ts.CUDAGraph{g, g2} {
		if err := gr.Replay(); err != nil {
			t.Fatal(err)
		}
	}
	check("y, second input", values(y), 2, -1, 1, 5)
	check("z = y² from the graph sharing the pool", values(z), 4, 1, 1, 25)

	// Reset drops a capture; the graph then captures again.
	if err := g2.Reset(); err != nil {
		t.Fatal(err)
	}
	testenv.AssertError(t, g2.Replay(), []string{"holds no capture"}, nil)
	if err := g2.CaptureBegin(nil); err != nil {
		t.Fatal(err)
	}
	w := x.MustSub(y, false)
	if err := g2.CaptureEnd(); err != nil {
		t.Fatal(err)
	}
	if err := g2.Replay(); err != nil {
		t.Fatal(err)
	}
	check("w = x - y after a reset and a new capture", values(w), -1.5, 0, -1, -3)

	if err := ts.CUDASynchronize(device); err != nil {
		t.Fatal(err)
	}
	m, err := ts.CUDAMemory(device)
	if err != nil {
		t.Fatal(err)
	}
	if m.Allocated <= 0 || m.PeakAllocated < m.Allocated || m.Reserved < m.Allocated || m.PeakReserved < m.Reserved {
		t.Errorf("allocator statistics %+v: want 0 < allocated <= peak, allocated <= reserved <= peak reserved", m)
	}
	if err := ts.ResetCUDAPeakStats(device); err != nil {
		t.Fatal(err)
	}
	r, err := ts.CUDAMemory(device)
	if err != nil {
		t.Fatal(err)
	}
	if r.PeakAllocated > m.PeakAllocated || r.PeakAllocated < r.Allocated {
		t.Errorf("after ResetCUDAPeakStats %+v (before %+v): want allocated <= peak <= the old peak", r, m)
	}

	for _, bad := range []func() error{
		func() error { _, err := ts.NewCUDAGraph(1 << 20); return err },
		func() error { _, err := ts.CUDAMemory(-1); return err },
		func() error { return ts.CUDASynchronize(1 << 20) },
	} {
		testenv.AssertError(t, bad(), []string{"CUDA device", "does not exist"}, nil)
	}
	g.Close()
	g.Close()
	testenv.AssertError(t, g.Replay(), []string{"nil or closed"}, nil)
}

// Random draws inside a capture come from the CUDA generator's graph-safe
// Philox state: each replay draws new numbers (the trainer's Gaussian
// noise relies on it).
func TestCUDAGraphRandomDrawsDiffer(t *testing.T) {
	if !gotch.CUDA.IsAvailable() {
		t.Skip("CUDA not available")
	}
	if !ts.CUDAGraphsAvailable() {
		t.Fatal("a GPU is visible but libtch has no CUDA graphs: see tchsetup's output (CUDA graphs: ...) and stubs.txt")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	dev, err := ParseDevice("cuda:0")
	if err != nil {
		t.Fatal(err)
	}
	sc := ts.NewScope()
	defer sc.Close()
	g, err := ts.NewCUDAGraph(0)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	Randn([]int64{4096}, dev) // warm-up
	if err := g.CaptureBegin(nil); err != nil {
		t.Fatal(err)
	}
	noise := Randn([]int64{4096}, dev)
	if err := g.CaptureEnd(); err != nil {
		t.Fatal(err)
	}
	var draws [2][]float64
	for i := range draws {
		if err := g.Replay(); err != nil {
			t.Fatal(err)
		}
		draws[i] = noise.MustTo(gotch.CPU, false).Float64Values()
		var sum, sq float64
		for _, v := range draws[i] {
			sum += v
			sq += v * v
		}
		n := float64(len(draws[i]))
		mean, sd := sum/n, math.Sqrt(sq/n-sum*sum/n/n)
		if math.Abs(mean) > 0.1 || math.Abs(sd-1) > 0.1 {
			t.Errorf("replay %d: mean %.3f, sd %.3f of 4096 standard normal draws", i, mean, sd)
		}
	}
	same := 0
	for i := range draws[0] {
		if draws[0][i] == draws[1][i] {
			same++
		}
	}
	if same > 0 {
		t.Errorf("%d of %d draws repeat between replays: the capture does not advance the CUDA generator", same, len(draws[0]))
	}
}
