package inception

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"codeberg.org/sbinet/npyio/npy"
	"codeberg.org/sbinet/npyio/npz"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/mollify/mollify/fid"
	"github.com/mollify/mollify/fid/torchfile"
	"github.com/mollify/mollify/internal/testenv"
	"github.com/mollify/mollify/nn"
)

// parityTol is the bound on |Go − PyTorch| for every feature.
const parityTol = 1e-4

// fixture is one of gen_inception.py's .npz files.
type fixture struct {
	images    *array // uint8 levels as float32, N×3×H×W
	features  *array // N×(64+192+768+2048)/div
	checksums []float64
	seed      uint64
	div       int64
	arrays    map[string]*array
}

// array is one array of a fixture, as float64 in C order.
type array struct {
	Shape []int
	Data  []float64
}

func loadFixture(t testing.TB, name string) *fixture {
	t.Helper()
	m := map[string]*array{}
	r, err := npz.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("%v (regenerate with testdata/gen_inception.py)", err)
	}
	defer r.Close()
	for _, key := range r.Keys() {
		var a npy.Array
		if err := r.Read(key, &a); err != nil {
			t.Fatalf("%s: %s: %v", name, key, err)
		}
		v := &array{Shape: a.Shape()}
		switch d := a.Data().(type) {
		case []float64:
			v.Data = d
		case []float32:
			for _, x := range d {
				v.Data = append(v.Data, float64(x))
			}
		default:
			t.Fatalf("%s: %s is %T", name, key, d)
		}
		m[strings.TrimSuffix(key, ".npy")] = v
	}
	f := &fixture{images: m["images"], features: m["features"], checksums: m["checksums"].Data, div: 1, arrays: m}
	if s := m["seed"]; s != nil {
		f.seed = uint64(s.Data[0])
	} else {
		f.seed = 20151205
	}
	if d := m["div"]; d != nil {
		f.div = int64(d.Data[0])
	}
	return f
}

// imageTensor turns stored uint8 levels into pytorch-fid's ToTensor
// input, k/255, on the CPU.
func imageTensor(t testing.TB, a *array) *ts.Tensor {
	t.Helper()
	pix := make([]uint8, len(a.Data))
	for i, v := range a.Data {
		pix[i] = uint8(v)
	}
	shape := []int64{int64(a.Shape[0]), int64(a.Shape[1]), int64(a.Shape[2]), int64(a.Shape[3])}
	x, err := fid.UnitImages(pix, shape, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func floats(t testing.TB, x *ts.Tensor) []float32 {
	t.Helper()
	b, err := x.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

// compareBlocks checks the four pooled blocks against the fixture's
// concatenated features, row by row.
func compareBlocks(t *testing.T, got [4]*ts.Tensor, want *array, div int64) {
	t.Helper()
	n, width := want.Shape[0], want.Shape[1]
	off := 0
	for b, d := range Dims {
		d := d / int(div)
		g := floats(t, got[b])
		if len(g) != n*d {
			t.Fatalf("block %d (%d-d): %d values, want %d×%d", b, Dims[b], len(g), n, d)
		}
		worst := 0.0
		for i := 0; i < n; i++ {
			for j := 0; j < d; j++ {
				w := want.Data[i*width+off+j]
				if e := math.Abs(float64(g[i*d+j]) - w); e > worst || math.IsNaN(e) {
					worst = e
				}
			}
		}
		if !(worst <= parityTol) {
			t.Errorf("block %d (%d-d): max |Go − PyTorch| = %.3g > %g", b, Dims[b], worst, parityTol)
		} else {
			t.Logf("block %d (%d-d): max |Go − PyTorch| = %.2g", b, Dims[b], worst)
		}
		off += d
	}
}

// randomSource draws gen_inception.py's random weights from libtorch's
// generator: every BasicConv2d in sorted name order (so both sides agree
// without sharing the network's build order).
func randomSource(t testing.TB, seed uint64, div int64, sums []float64) weightSource {
	t.Helper()
	// A first build with zeros lists the BasicConv2d and their shapes.
	shapes := map[string][]int64{}
	zeros := func(name string, shape []int64) ([]float32, error) {
		shapes[name] = slices.Clone(shape)
		n := int64(1)
		for _, s := range shape {
			n *= s
		}
		return make([]float32, n), nil
	}
	m, err := newNet(zeros, Options{Device: gotch.CPU}, div)
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	var convs []string
	for name := range shapes {
		if c, ok := strings.CutSuffix(name, ".conv.weight"); ok {
			convs = append(convs, c)
		}
	}
	sort.Strings(convs)
	if err := ts.ManualSeed(seed); err != nil {
		t.Fatal(err)
	}
	sc := ts.NewScope()
	defer sc.Close()
	values := map[string][]float32{}
	var got []float64
	for _, c := range convs {
		ws := shapes[c+".conv.weight"]
		fan := ws[1] * ws[2] * ws[3]
		ch := []int64{ws[0]}
		draws := []struct {
			name string
			t    *ts.Tensor
		}{
			{"conv.weight", ts.MustRandn(ws, gotch.Float, gotch.CPU).MustMulScalar(ts.FloatScalar(math.Sqrt(2/float64(fan))), true)},
			{"bn.weight", ts.MustRand(ch, gotch.Float, gotch.CPU).MustMulScalar(ts.FloatScalar(0.5), true).MustAddScalar(ts.FloatScalar(0.75), true)},
			{"bn.bias", ts.MustRandn(ch, gotch.Float, gotch.CPU).MustMulScalar(ts.FloatScalar(0.1), true)},
			{"bn.running_mean", ts.MustRandn(ch, gotch.Float, gotch.CPU).MustMulScalar(ts.FloatScalar(0.1), true)},
			{"bn.running_var", ts.MustRand(ch, gotch.Float, gotch.CPU).MustMulScalar(ts.FloatScalar(0.5), true).MustAddScalar(ts.FloatScalar(0.75), true)},
		}
		for _, d := range draws {
			v := floats(t, d.t)
			values[c+"."+d.name] = v
			s := 0.0
			for _, x := range v {
				s += float64(x)
			}
			got = append(got, s)
		}
	}
	if sums == nil { // benchmarks
		sums = got
	}
	if len(got) != len(sums) {
		t.Fatalf("%d drawn tensors, the fixture has %d checksums: the networks have different layers", len(got), len(sums))
	}
	for i, s := range got {
		if math.Abs(s-sums[i]) > 1e-6*(1+math.Abs(sums[i])) {
			t.Fatalf("random tensor %d (%s...) sums to %v, PyTorch's to %v: libtorch's generator gave other numbers", i, convs[i/5], s, sums[i])
		}
	}
	return func(name string, shape []int64) ([]float32, error) {
		v, ok := values[name]
		if !ok {
			return nil, fmt.Errorf("%s is %w", name, errMissing)
		}
		return slices.Clone(v), nil
	}
}

// TestInceptionFullWidthParity: the full network, with the same random
// weights as gen_inception.py drew for pytorch-fid's torchvision-based
// network, gives its 64/192/768/2048-d features.
func TestInceptionFullWidthParity(t *testing.T) {
	f := loadFixture(t, "inception_full.npz")
	m, err := newNet(randomSource(t, f.seed, 1, f.checksums), Options{Device: gotch.CPU}, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	sc := ts.NewScope()
	defer sc.Close()
	got, err := m.blocks(imageTensor(t, f.images), 3, true)
	if err != nil {
		t.Fatal(err)
	}
	compareBlocks(t, got, f.features, 1)
}

// TestInceptionFiles: the reduced-width weights load from the legacy and
// zip torch.save formats and the TorchScript export, and all three give
// PyTorch's features, for images upsampled (32×32) and downsampled
// (311×320) to 299.
func TestInceptionFiles(t *testing.T) {
	f := loadFixture(t, "inception_slim.npz")
	sc := ts.NewScope()
	defer sc.Close()
	small, big := imageTensor(t, f.images), imageTensor(t, f.arrays["big"])
	for _, file := range []string{"inception_slim_legacy.pth", "inception_slim_zip.pth"} {
		t.Run(file, func(t *testing.T) {
			m, err := load(filepath.Join("testdata", file), Options{Device: gotch.CPU}, f.div)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			got, err := m.blocks(small, 3, true)
			if err != nil {
				t.Fatal(err)
			}
			compareBlocks(t, got, f.features, f.div)
			got, err = m.blocks(big, 3, true)
			if err != nil {
				t.Fatal(err)
			}
			compareBlocks(t, got, f.arrays["big_features"], f.div)
		})
	}
	t.Run("inception_slim_ts.pt", func(t *testing.T) {
		m, err := loadTorchScript(filepath.Join("testdata", "inception_slim_ts.pt"), Options{Device: gotch.CPU}, f.div)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		for _, x := range []struct {
			images *ts.Tensor
			want   *array
		}{{small, f.features}, {big, f.arrays["big_features"]}} {
			var got [4]*ts.Tensor
			for b := range Dims {
				m.setDims(b)
				if got[b], err = m.Features(x.images); err != nil {
					t.Fatal(err)
				}
			}
			compareBlocks(t, got, x.want, f.div)
		}
	})
}

// TestInceptionDims: Features returns the requested block only, computed
// up to that block.
func TestInceptionDims(t *testing.T) {
	f := loadFixture(t, "inception_slim.npz")
	sc := ts.NewScope()
	defer sc.Close()
	x := imageTensor(t, f.images)
	for _, d := range Dims {
		m, err := load(filepath.Join("testdata", "inception_slim_zip.pth"), Options{Device: gotch.CPU, Dims: d}, f.div)
		if err != nil {
			t.Fatal(err)
		}
		y, err := m.Features(x)
		m.Close()
		if err != nil {
			t.Fatal(err)
		}
		if s := y.MustSize(); !slices.Equal(s, []int64{2, int64(d) / f.div}) || m.Dim() != d/int(f.div) {
			t.Errorf("dims %d: features %v, Dim %d", d, s, m.Dim())
		}
	}
}

func TestInceptionErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pth")
	if err := os.WriteFile(garbage, []byte("not a torch file"), 0o644); err != nil {
		t.Fatal(err)
	}
	sd, err := torchfile.Load(filepath.Join("testdata", "inception_slim_zip.pth"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		load func() error
		want []string
		is   error
	}{
		{"missing file", func() error {
			_, err := Load(filepath.Join(dir, "nope.pth"), Options{Device: gotch.CPU})
			return err
		}, []string{"nope.pth", "fid_weights", WeightsURL}, ErrNoWeights},
		{"not a torch file", func() error {
			_, err := Load(garbage, Options{Device: gotch.CPU})
			return err
		}, []string{"garbage.pth", "not a PyTorch file"}, nil},
		{"full-size loader on reduced weights", func() error {
			_, err := Load(filepath.Join("testdata", "inception_slim_zip.pth"), Options{Device: gotch.CPU})
			return err
		}, []string{"Conv2d_1a_3x3.conv.weight has shape [2 3 3 3]", "[32 3 3 3]"}, nil},
		{"wrong shape", func() error {
			bad := maps(sd)
			bad["Mixed_6c.branch7x7_2.conv.weight"] = &torchfile.Tensor{Shape: []int64{10, 10, 7, 1}, DType: torchfile.Float32, Raw: make([]byte, 4*700)}
			_, err := newNet(stateDictSource(bad), Options{Device: gotch.CPU}, 16)
			return err
		}, []string{"Mixed_6c.branch7x7_2.conv.weight has shape [10 10 7 1]", "[10 10 1 7]"}, nil},
		{"missing tensor", func() error {
			bad := maps(sd)
			delete(bad, "Mixed_7c.branch_pool.bn.running_var")
			_, err := newNet(stateDictSource(bad), Options{Device: gotch.CPU}, 16)
			return err
		}, []string{"Mixed_7c.branch_pool.bn.running_var is missing"}, nil},
		{"bad dims", func() error {
			_, err := load(filepath.Join("testdata", "inception_slim_zip.pth"), Options{Device: gotch.CPU, Dims: 1000}, 16)
			return err
		}, []string{"dims must be one of [64 192 768 2048]", "1000"}, nil},
		{"missing TorchScript", func() error {
			_, err := LoadTorchScript(filepath.Join(dir, "model.pt"), Options{Device: gotch.CPU})
			return err
		}, []string{"model.pt", "export_inception.py"}, ErrNoWeights},
		{"TorchScript of another width", func() error {
			_, err := LoadTorchScript(filepath.Join("testdata", "inception_slim_ts.pt"), Options{Device: gotch.CPU})
			return err
		}, []string{"returns", "[1 192]", "(N, 3072)"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.load()
			assertError(t, err, c.want, c.is)
		})
	}
}

// TestTorchvisionWeightsRejected: ImageNet Inception-v3 weights (1000
// classes) have the same names but are not FID's network.
func TestTorchvisionWeightsRejected(t *testing.T) {
	src := func(name string, shape []int64) ([]float32, error) {
		if name == "fc.weight" {
			return nil, fmt.Errorf("fc.weight has shape [1000 2048], but pytorch-fid's Inception-v3 has %v", shape)
		}
		n := int64(1)
		for _, s := range shape {
			n *= s
		}
		return make([]float32, n), nil
	}
	_, err := newNet(src, Options{Device: gotch.CPU}, 1)
	if err == nil || !strings.Contains(err.Error(), "[1000 2048]") || !strings.Contains(err.Error(), "torchvision") {
		t.Fatalf("error %v", err)
	}
}

func maps(sd torchfile.StateDict) torchfile.StateDict {
	out := torchfile.StateDict{}
	for k, v := range sd {
		out[k] = v
	}
	return out
}

func TestWeightsPath(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "w.pth")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(WeightsEnv, "")
	if _, err := WeightsPath(""); !errors.Is(err, ErrNoWeights) || !strings.Contains(err.Error(), WeightsURL) || !strings.Contains(err.Error(), WeightsEnv) {
		t.Errorf("no path: %v", err)
	}
	if p, err := WeightsPath(file); err != nil || p != file {
		t.Errorf("flag: %q %v", p, err)
	}
	t.Setenv(WeightsEnv, file)
	if p, err := WeightsPath(""); err != nil || p != file {
		t.Errorf("env: %q %v", p, err)
	}
	t.Setenv(WeightsEnv, filepath.Join(dir, "gone.pth"))
	if _, err := WeightsPath(""); !errors.Is(err, ErrNoWeights) || !strings.Contains(err.Error(), "gone.pth") || !strings.Contains(err.Error(), "$"+WeightsEnv) {
		t.Errorf("missing env file: %v", err)
	}
}

// TestInceptionRejectsBadImages: checkImages guards Features.
func TestInceptionRejectsBadImages(t *testing.T) {
	m, err := load(filepath.Join("testdata", "inception_slim_zip.pth"), Options{Device: gotch.CPU}, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	sc := ts.NewScope()
	defer sc.Close()
	for _, c := range []struct {
		x    *ts.Tensor
		want string
	}{
		{ts.MustZeros([]int64{2, 1, 8, 8}, gotch.Float, gotch.CPU), "N×3×H×W"},
		{ts.MustZeros([]int64{3, 8, 8}, gotch.Float, gotch.CPU), "N×3×H×W"},
		{ts.MustZeros([]int64{2, 3, 8, 8}, gotch.Double, gotch.CPU), "float32"},
	} {
		if _, err := m.Features(c.x); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.x.MustSize(), err, c.want)
		}
	}
}

// BenchmarkInceptionFeatures is feature extraction at 299×299 (pytorch-fid's
// dims 2048) with random full-width weights, in images/s; compare with
// cmd/fid/bench_inception.py at the same threads and batch:
//
//	MOLLIFY_THREADS=1 go test ./fid/inception -run '^$' -bench InceptionFeatures -benchtime 4x
//	/usr/bin/python3 cmd/fid/bench_inception.py --threads 1 --batch 16 --batches 4
//
// MOLLIFY_BENCH_BATCH sets the batch size (default 16).
func BenchmarkInceptionFeatures(b *testing.B) {
	nn.SetThreads(nn.DefaultThreads())
	batch := 16
	if v, err := strconv.Atoi(os.Getenv("MOLLIFY_BENCH_BATCH")); err == nil && v > 0 {
		batch = v
	}
	m, err := newNet(randomSource(b, 1, 1, nil), Options{Device: gotch.CPU}, 1)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	sc := ts.NewScope()
	defer sc.Close()
	x := ts.MustRand([]int64{int64(batch), 3, 299, 299}, gotch.Float, gotch.CPU)
	run := func() {
		s := ts.NewScope()
		defer s.Close()
		if _, err := m.Features(x); err != nil {
			b.Fatal(err)
		}
	}
	run() // warm-up
	cpu0 := cpuSeconds()
	b.ResetTimer()
	for range b.N {
		run()
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "images/s")
	// CPU time per image is steadier than wall time on a shared machine.
	b.ReportMetric((cpuSeconds()-cpu0)/float64(b.N*batch), "cpu-s/image")
	b.ReportMetric(float64(nn.Threads()), "threads")
}

// TestInceptionCUDA repeats the parity checks on a GPU when one is visible
// (skipped otherwise), and logs the throughput at batch 50. cuDNN runs
// these convolutions in TF32 by default (in PyTorch too), so the bound is
// loose: it catches a wrong network or device handling, not rounding.
func TestInceptionCUDA(t *testing.T) {
	if !gotch.CUDA.IsAvailable() {
		t.Skip("no CUDA device")
	}
	dev := gotch.CudaBuilder(0)
	const tol = 0.05
	check := func(name string, got [4]*ts.Tensor, want *array, div int64) {
		n, width := want.Shape[0], want.Shape[1]
		off := 0
		for b, d := range Dims {
			d /= int(div)
			if got[b] == nil {
				off += d
				continue
			}
			g := floats(t, got[b])
			worst := 0.0
			for i := 0; i < n; i++ {
				for j := 0; j < d; j++ {
					if e := math.Abs(float64(g[i*d+j]) - want.Data[i*width+off+j]); e > worst || math.IsNaN(e) {
						worst = e
					}
				}
			}
			t.Logf("%s block %d (%d-d): max |CUDA − PyTorch CPU| = %.2g", name, b, Dims[b], worst)
			if !(worst <= tol) {
				t.Errorf("%s block %d: %.3g > %g", name, b, worst, tol)
			}
			off += d
		}
	}
	sc := ts.NewScope()
	defer sc.Close()
	f := loadFixture(t, "inception_full.npz")
	m, err := newNet(randomSource(t, f.seed, 1, f.checksums), Options{Device: dev}, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	x := imageTensor(t, f.images).MustTo(dev, false)
	got, err := m.blocks(x, 3, true)
	if err != nil {
		t.Fatal(err)
	}
	check("full width", got, f.features, 1)

	s := loadFixture(t, "inception_slim.npz")
	small := imageTensor(t, s.images).MustTo(dev, false)
	slim, err := load(filepath.Join("testdata", "inception_slim_legacy.pth"), Options{Device: dev}, s.div)
	if err != nil {
		t.Fatal(err)
	}
	defer slim.Close()
	if got, err = slim.blocks(small, 3, true); err != nil {
		t.Fatal(err)
	}
	check("reduced, legacy file", got, s.features, s.div)
	tsm, err := loadTorchScript(filepath.Join("testdata", "inception_slim_ts.pt"), Options{Device: dev}, s.div)
	if err != nil {
		t.Fatal(err)
	}
	defer tsm.Close()
	var tsGot [4]*ts.Tensor
	if tsGot[3], err = tsm.Features(small); err != nil {
		t.Fatal(err)
	}
	check("reduced, TorchScript", tsGot, s.features, s.div)

	// Statistics straight from CUDA features.
	acc, _ := fid.NewAccumulator(m.Dim())
	batch := ts.MustRand([]int64{50, 3, 299, 299}, gotch.Float, dev)
	if err := fid.Accumulate(acc, m, batch); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	const rounds = 10
	for range rounds {
		s := ts.NewScope()
		y, err := m.Features(batch)
		if err != nil {
			t.Fatal(err)
		}
		y.MustTo(gotch.CPU, false) // synchronises
		s.Close()
	}
	t.Logf("CUDA throughput at 299×299, batch 50: %.0f images/s", rounds*50/time.Since(start).Seconds())
}

// cpuSeconds is the process's user+system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return math.NaN()
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// assertError is testenv.AssertError.
func assertError(t *testing.T, err error, want []string, is error) {
	t.Helper()
	testenv.AssertError(t, err, want, is)
}
