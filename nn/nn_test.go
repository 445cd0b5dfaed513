package nn

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

func TestMain(m *testing.M) {
	runtime.LockOSThread()
	SetThreads(1)
	os.Exit(m.Run())
}

func golden(t *testing.T) map[string]*ts.Tensor {
	t.Helper()
	g, meta, err := LoadTensors("testdata/golden.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	if meta["torch"] == "" {
		t.Fatal("golden file lost its metadata")
	}
	return g
}

func assertClose(t *testing.T, name string, got, want *ts.Tensor, tol float64) {
	t.Helper()
	g, w := got.MustTo(gotch.CPU, false).Float64Values(), want.Float64Values()
	if len(g) != len(w) {
		t.Fatalf("%s: %d values, want %d", name, len(g), len(w))
	}
	for i := range g {
		if math.Abs(g[i]-w[i]) > tol*(1+math.Abs(w[i])) {
			t.Fatalf("%s[%d] = %.9g, PyTorch %.9g", name, i, g[i], w[i])
		}
	}
}

// The same seed gives PyTorch's exact initial weights.
func TestInitMatchesPyTorch(t *testing.T) {
	sc := ts.NewScope()
	defer sc.Close()
	g := golden(t)
	if _, err := Seed(0); err != nil {
		t.Fatal(err)
	}
	s := NewStore(gotch.CPU)
	defer s.Close()
	lin, err := NewLinear(s.Root().Sub("linear"), 3, 4)
	if err != nil {
		t.Fatal(err)
	}
	conv, err := NewConv2d(s.Root().Sub("conv"), 2, 3, 3)
	if err != nil {
		t.Fatal(err)
	}
	convt, err := NewConvTranspose2d(s.Root().Sub("convt"), 2, 3, 3)
	if err != nil {
		t.Fatal(err)
	}
	for name, pair := range map[string][2]*ts.Tensor{
		"linear": {lin.W, lin.B}, "conv": {conv.W, conv.B}, "convt": {convt.W, convt.B},
	} {
		assertClose(t, name+".weight", pair[0], g["init."+name+".weight"], 1e-7)
		assertClose(t, name+".bias", pair[1], g["init."+name+".bias"], 1e-7)
	}
}

// Large layers have PyTorch's init statistics: U(±1/√fan_in) has std
// 1/√(3·fan_in). gotch's own "KaimingUniform" is randn (std 1).
func TestInitStatistics(t *testing.T) {
	sc := ts.NewScope()
	defer sc.Close()
	s := NewStore(gotch.CPU)
	defer s.Close()
	lin, err := NewLinear(s.Root().Sub("lin"), 1024, 1024)
	if err != nil {
		t.Fatal(err)
	}
	conv, err := NewConv2d(s.Root().Sub("conv"), 256, 256, 3)
	if err != nil {
		t.Fatal(err)
	}
	convt, err := NewConvTranspose2d(s.Root().Sub("convt"), 128, 256, 4)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		w     *ts.Tensor
		fanIn float64
	}{{"Linear", lin.W, 1024}, {"Conv2d", conv.W, 256 * 9}, {"ConvTranspose2d", convt.W, 256 * 16}} {
		std, _ := c.w.MustStd(true, false).Float64()
		mean, _ := c.w.MustMean(gotch.Float, false).Float64()
		want := 1 / math.Sqrt(3*c.fanIn)
		if math.Abs(std/want-1) > 0.05 {
			t.Errorf("%s weight std %.5g, PyTorch's %.5g", c.name, std, want)
		}
		if math.Abs(mean) > 0.05*want {
			t.Errorf("%s weight mean %.3g, want ~0", c.name, mean)
		}
	}
}

// Both the fused one-pass CPU kernels and the _foreach ones follow
// torch.optim step for step.
func TestOptimizersMatchPyTorch(t *testing.T) {
	sc := ts.NewScope()
	defer sc.Close()
	g := golden(t)
	defer ts.SetOptimFused(true)
	for _, c := range []struct {
		name  string
		fused bool
	}{{"adam", true}, {"adam", false}, {"adamax", true}, {"adamax", false}} {
		name := c.name
		t.Run(fmt.Sprintf("%s_fused=%v", name, c.fused), func(t *testing.T) {
			ts.SetOptimFused(c.fused)
			s := NewStore(gotch.CPU)
			defer s.Close()
			w, err := s.Root().Param("w", g["optim.w0"].MustShallowClone())
			if err != nil {
				t.Fatal(err)
			}
			eps := 1e-6
			if name == "adamax" {
				eps = 1e-3
			}
			opt, err := NewOptimizer(s, OptimConfig{Name: name, LR: 0.05, Beta1: 0.8, Beta2: 0.95, Eps: eps, WeightDecay: 0.1})
			if err != nil {
				t.Fatal(err)
			}
			defer opt.Close()
			for i := 1; i <= 5; i++ {
				func() {
					sc := ts.NewScope()
					defer sc.Close()
					loss := w.MustSub(g["optim.target"], false).MustSquare(true).MustMul(g["optim.scale"], true).MustSum(gotch.Float, true)
					loss.MustBackward()
					if err := opt.Step(); err != nil {
						t.Fatal(err)
					}
					if err := opt.ZeroGrad(); err != nil {
						t.Fatal(err)
					}
				}()
				assertClose(t, name+".step"+strconv.Itoa(i), w, g[name+".step"+strconv.Itoa(i)], 2e-6)
			}
		})
	}
}

func TestOptimizerErrors(t *testing.T) {
	s := NewStore(gotch.CPU)
	defer s.Close()
	if _, err := s.Root().Param("w", Zeros([]int64{2}, gotch.CPU)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cfg  OptimConfig
		want string
	}{
		{OptimConfig{Name: "adam", LR: -1}, "learning rate must be positive"},
		{OptimConfig{Name: "sgd", LR: 1}, `unknown optimizer "sgd"`},
		{OptimConfig{Name: "adam", LR: 1, Beta1: 1}, "betas must be in [0, 1)"},
		{OptimConfig{Name: "adamax", LR: 1, Eps: -1}, "must be non-negative"},
	} {
		if _, err := NewOptimizer(s, c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.cfg, err, c.want)
		}
	}
	if _, err := NewOptimizer(NewStore(gotch.CPU), OptimConfig{Name: "adam", LR: 1}); err == nil {
		t.Error("an optimizer over no parameters should be an error")
	}
}

func TestOptimizerStateRoundTrip(t *testing.T) {
	sc := ts.NewScope()
	defer sc.Close()
	s := NewStore(gotch.CPU)
	defer s.Close()
	w, _ := s.Root().Param("w", Ones([]int64{3}, gotch.CPU))
	opt, _ := NewOptimizer(s, OptimConfig{Name: "adam", LR: 0.1})
	defer opt.Close()
	w.MustSquare(false).MustSum(gotch.Float, true).MustBackward()
	if err := opt.Step(); err != nil {
		t.Fatal(err)
	}
	state, step := opt.State()
	path := filepath.Join(t.TempDir(), "o.safetensors")
	if err := SaveTensors(path, state, nil); err != nil {
		t.Fatal(err)
	}
	loaded, _, err := LoadTensors(path)
	if err != nil {
		t.Fatal(err)
	}
	opt2, _ := NewOptimizer(s, OptimConfig{Name: "adam", LR: 0.1})
	defer opt2.Close()
	if err := opt2.LoadState(loaded, step); err != nil {
		t.Fatal(err)
	}
	s2, step2 := opt2.State()
	if step2 != 1 {
		t.Fatalf("step %d, want 1", step2)
	}
	for k, v := range state {
		assertClose(t, k, s2[k], v, 0)
	}
	delete(loaded, "optim.exp_avg.w")
	if err := opt2.LoadState(loaded, 1); err == nil || !strings.Contains(err.Error(), `"optim.exp_avg.w" missing`) {
		t.Errorf("missing state: error %v", err)
	}
}

func TestStoreLoadChecksNamesAndShapes(t *testing.T) {
	sc := ts.NewScope()
	defer sc.Close()
	s := NewStore(gotch.CPU)
	defer s.Close()
	if _, err := NewLinear(s.Root().Sub("l"), 2, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Root().Sub("l").Param("weight", Zeros([]int64{1}, gotch.CPU)); err == nil {
		t.Error("registering a name twice should fail")
	}
	good := map[string]*ts.Tensor{"l.weight": Ones([]int64{3, 2}, gotch.CPU), "l.bias": Ones([]int64{3}, gotch.CPU)}
	if err := s.Load(good); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Named()["l.weight"].MustSum(gotch.Float, false).Float64(); v != 6 {
		t.Errorf("loaded weight sums to %v, want 6", v)
	}
	bad := map[string]*ts.Tensor{"l.weight": Ones([]int64{2, 3}, gotch.CPU), "l.bias": Ones([]int64{3}, gotch.CPU)}
	if err := s.Load(bad); err == nil || !strings.Contains(err.Error(), "has shape [3 2] in the model but [2 3]") {
		t.Errorf("shape mismatch: %v", err)
	}
	if err := s.Load(map[string]*ts.Tensor{"x": Ones([]int64{1}, gotch.CPU)}); err == nil || !strings.Contains(err.Error(), "missing l.bias, l.weight; unexpected x") {
		t.Errorf("name mismatch: %v", err)
	}
}

func TestSafetensorsErrors(t *testing.T) {
	dir := t.TempDir()
	sc := ts.NewScope()
	defer sc.Close()
	path := filepath.Join(dir, "a.safetensors")
	if err := SaveTensors(path, map[string]*ts.Tensor{"x": Ones([]int64{100}, gotch.CPU)}, map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if err := os.WriteFile(path, b[:len(b)-8], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadTensors(path); err == nil || !strings.Contains(err.Error(), "outside the 392 data bytes (truncated file?)") {
		t.Errorf("truncated: %v", err)
	}
	os.WriteFile(path, []byte("not a tensor file at all"), 0o644)
	if _, _, err := LoadTensors(path); err == nil || !strings.Contains(err.Error(), "is not a safetensors file") {
		t.Errorf("garbage: %v", err)
	}
	if _, _, err := LoadTensors(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if matches, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(matches) != 0 {
		t.Errorf("temporary files left behind: %v", matches)
	}
}

func TestParseDevice(t *testing.T) {
	if d, err := ParseDevice("cpu"); err != nil || d != gotch.CPU {
		t.Errorf("cpu: %v %v", d, err)
	}
	if _, err := ParseDevice("auto"); err != nil {
		t.Errorf("auto: %v", err)
	}
	for in, want := range map[string]string{
		"gpu":     "want auto, cpu, cuda or cuda:N",
		"cuda:-1": "non-negative integer",
		"cuda:x":  "non-negative integer",
	} {
		if _, err := ParseDevice(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
	if !gotch.CUDA.IsAvailable() {
		if _, err := ParseDevice("cuda:0"); err == nil || !strings.Contains(err.Error(), "CUDA is not available") {
			t.Errorf("cuda without CUDA: %v", err)
		}
	}
}

func TestRNGStateRoundTrip(t *testing.T) {
	sc := ts.NewScope()
	defer sc.Close()
	r, err := Seed(7)
	if err != nil {
		t.Fatal(err)
	}
	state, goState, err := r.State(gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	a := Randn([]int64{5}, gotch.CPU).Float64Values()
	ga := r.Go.Uint64()
	if err := r.Restore(gotch.CPU, state, goState); err != nil {
		t.Fatal(err)
	}
	b := Randn([]int64{5}, gotch.CPU).Float64Values()
	if gb := r.Go.Uint64(); ga != gb {
		t.Errorf("Go RNG not restored: %d vs %d", ga, gb)
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("torch RNG not restored: %v vs %v", a, b)
		}
	}
}

func TestScopes(t *testing.T) {
	base := ts.LiveTensors()
	outer := ts.NewScope()
	x := Ones([]int64{4}, gotch.CPU)
	var kept *ts.Tensor
	func() {
		inner := ts.NewScope()
		defer inner.Close()
		for i := 0; i < 100; i++ {
			x.MustAdd(x, false)
		}
		kept = x.MustMulScalar(ts.FloatScalar(3), false)
		inner.Keep(kept)
		if got := ts.LiveTensors() - base; got != 102 {
			t.Errorf("%d live tensors inside the inner scope, want 102", got)
		}
	}()
	if got := ts.LiveTensors() - base; got != 2 {
		t.Errorf("%d live tensors after the inner scope, want 2 (x and the kept one)", got)
	}
	if v := kept.Float64Values(); v[0] != 3 {
		t.Errorf("kept tensor holds %v", v)
	}
	outer.Close()
	if got := ts.LiveTensors() - base; got != 0 {
		t.Errorf("%d live tensors after the outer scope, want 0", got)
	}
	// Using a freed tensor is a clear error, not a crash in C++.
	var err error
	func() {
		defer Recover(&err)
		kept.MustAdd(kept, false)
	}()
	if !errors.Is(err, ts.ErrFreedTensor) {
		t.Errorf("use after free: %v", err)
	}
}

func TestNoGradRestoresState(t *testing.T) {
	runtime.LockOSThread() // grad mode is per thread
	defer runtime.UnlockOSThread()
	if !ts.GradEnabled() {
		t.Fatal("grad should start enabled")
	}
	ts.NoGrad(func() {
		ts.NoGrad(func() {})
		if ts.GradEnabled() {
			t.Error("nested NoGrad re-enabled grad")
		}
	})
	if !ts.GradEnabled() {
		t.Error("NoGrad did not restore grad mode")
	}
}

func rssKB(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skip("no /proc/self/statm")
	}
	pages, _ := strconv.ParseInt(strings.Fields(string(b))[1], 10, 64)
	return pages * int64(os.Getpagesize()) / 1024
}

// In-place ops and scoped ops leak nothing on the C side: gotch leaked a
// C.malloc(0) per op and a tensor handle per in-place op.
func TestNoPerOpLeak(t *testing.T) {
	x := Ones([]int64{8}, gotch.CPU)
	defer x.MustDrop()
	one := ts.FloatScalar(1)
	loop := func(n int) {
		for i := 0; i < n; i++ {
			x.MustAdd_(x)
			x.MustMulScalar_(one)
			sc := ts.NewScope()
			x.MustAdd(x, false).MustExp(true)
			sc.Close()
		}
	}
	loop(20000)
	debug.FreeOSMemory()
	before := rssKB(t)
	loop(100000) // a 32-byte leak per op would be ~12 MB
	debug.FreeOSMemory()
	if grown := rssKB(t) - before; grown > 3000 {
		t.Errorf("RSS grew %d KB over 400k ops", grown)
	}
}

// Finalizers run concurrently with ops on tensors that are only reachable
// through the C call; with KeepAlive in every wrapper this cannot crash.
func TestFinalizersDuringOps(t *testing.T) {
	old := debug.SetGCPercent(1)
	defer debug.SetGCPercent(old)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			default:
				runtime.GC()
			}
		}
	}()
	defer close(done)
	for i := 0; i < 20000; i++ {
		a := Randn([]int64{16}, gotch.CPU) // unscoped: only the GC frees them
		b := a.MustNarrow(0, 2, 8, false).MustAdd(a.MustNarrow(0, 0, 8, false), false)
		if i%5000 == 0 {
			if v := b.Float64Values(); len(v) != 8 {
				t.Fatal("bad result")
			}
		}
	}
}

// A tensor handle costs a few dozen bytes of Go heap: gotch allocated a
// 100 KB ballast, a name and a map entry per tensor.
func TestTensorHandlesAreSmall(t *testing.T) {
	x := Ones([]int64{2}, gotch.CPU)
	defer x.MustDrop()
	live := ts.LiveTensors()
	const n = 20000
	keep := make([]*ts.Tensor, 0, n)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	sc := ts.NewScope()
	for i := 0; i < n; i++ {
		keep = append(keep, x.MustShallowClone())
	}
	runtime.ReadMemStats(&after)
	if got := ts.LiveTensors(); got < n {
		t.Errorf("%d live tensors inside the scope, want at least %d", got, n)
	}
	sc.Close()
	if perTensor := float64(after.TotalAlloc-before.TotalAlloc) / n; perTensor > 256 {
		t.Errorf("%.0f bytes of Go heap allocated per tensor handle, want < 256", perTensor)
	}
	// Earlier tests' unscoped tensors may be finalized meanwhile, so the
	// count can only have gone down.
	if got := ts.LiveTensors(); got > live {
		t.Errorf("%d live tensors after the scope, want at most %d", got, live)
	}
	var err error
	func() {
		defer Recover(&err)
		keep[n-1].MustDefined() // hand-written methods also check for freed tensors
	}()
	if !errors.Is(err, ts.ErrFreedTensor) {
		t.Errorf("MustDefined on a freed tensor: %v", err)
	}
}

// Recover turns torch failures into errors but re-raises Go bugs with
// their stack (issue 12: a nil dereference must not become a one-line
// error).
func TestRecoverKeepsGoBugs(t *testing.T) {
	torchFailure := func() (err error) {
		defer Recover(&err)
		panic(fmt.Errorf("ts: shape mismatch"))
	}
	if err := torchFailure(); err == nil || err.Error() != "ts: shape mismatch" {
		t.Errorf("torch failure: %v", err)
	}
	wrapped := func() (err error) {
		defer func() { RecoverValue(recover(), &err, "data: Batch.Tensor") }()
		panic(fmt.Errorf("ts: out of memory"))
	}
	if err := wrapped(); err == nil || err.Error() != "data: Batch.Tensor: ts: out of memory" {
		t.Errorf("wrapped torch failure: %v", err)
	}
	defer func() {
		if _, ok := recover().(runtime.Error); !ok {
			t.Error("a nil dereference was not re-raised as a runtime.Error")
		}
	}()
	func() (err error) {
		defer Recover(&err)
		var p *int
		return fmt.Errorf("%d", *p)
	}()
	t.Error("a nil dereference was turned into an error")
}

// NewSetup applies the thread count it is given (cmd/sample used to
// ignore run.threads) and the default for 0, and rejects a bad device.
func TestNewSetup(t *testing.T) {
	defer SetThreads(1)
	t.Setenv("MOLLIFY_THREADS", "")
	for _, c := range []struct{ threads, want int }{{2, 2}, {0, 1}} {
		s, err := NewSetup("cpu", c.threads, 7)
		if err != nil {
			t.Fatal(err)
		}
		if s.Threads != c.want || Threads() != c.want || s.Device != gotch.CPU || s.RNG.Seed != 7 {
			t.Errorf("NewSetup(cpu, %d, 7): threads %d (torch %d), device %v, seed %d", c.threads, s.Threads, Threads(), s.Device, s.RNG.Seed)
		}
		s.Close()
	}
	if _, err := NewSetup("gpu", 1, 0); err == nil || !strings.Contains(err.Error(), "gpu") {
		t.Errorf("bad device: %v", err)
	}
}

// cuDNN determinism (patch 0009) can be switched on and off, and says so.
func TestCuDNNDeterministicSwitch(t *testing.T) {
	defer ts.SetCuDNNDeterministic(false)
	if !ts.SetCuDNNDeterministic(true) {
		t.Error("on: reported off")
	}
	if ts.SetCuDNNDeterministic(false) {
		t.Error("off: reported on")
	}
}
