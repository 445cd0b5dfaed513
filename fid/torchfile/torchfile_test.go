package torchfile

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"
)

// ramp is gen_fixtures.py's ramp: (i - 5) / 4.
func ramp(i int) float32 { return float32(i-5) / 4 }

// wantFloat gives the expected float32 elements of each fixture tensor.
var wantFloat = map[string]struct {
	shape []int64
	dtype DType
	at    func(i int) float32 // element i in C order
}{
	"conv.weight":    {[]int64{2, 3, 2, 2}, Float32, ramp},
	"bn.running_var": {[]int64{3}, Float64, ramp},
	"half":           {[]int64{6}, Float16, ramp},
	"bf16":           {[]int64{4}, BFloat16, ramp},
	"view.base":      {[]int64{4, 5}, Float32, ramp},
	// base.t(): element (r, c) of the (5, 4) result is base[c][r].
	"view.t": {[]int64{5, 4}, Float32, func(i int) float32 { return ramp(i%4*5 + i/4) }},
	// base[1:3]: storage offset 5.
	"view.rows": {[]int64{2, 5}, Float32, func(i int) float32 { return ramp(i + 5) }},
	// base[:, 1::2]: element (r, c) is base[r][1+2c].
	"view.cols": {[]int64{4, 2}, Float32, func(i int) float32 { return ramp(i/2*5 + 1 + 2*(i%2)) }},
	"empty":     {[]int64{0, 3}, Float32, ramp},
	"param":     {[]int64{3}, Float32, ramp},
}

var wantInt = map[string]struct {
	shape []int64
	dtype DType
	vals  []int64
}{
	"bn.num_batches_tracked": {[]int64{}, Int64, []int64{7}},
	"int32":                  {[]int64{5}, Int32, []int64{-2, -1, 0, 1, 2}},
	"uint8":                  {[]int64{6}, Uint8, []int64{250, 251, 252, 253, 254, 255}},
	"mask":                   {[]int64{3}, Bool, []int64{1, 0, 1}},
}

func TestLoadFixtures(t *testing.T) {
	for _, file := range []string{"legacy.pt", "zip.pt"} {
		t.Run(file, func(t *testing.T) {
			sd, err := Load("testdata/" + file)
			if err != nil {
				t.Fatal(err)
			}
			if len(sd) != len(wantFloat)+len(wantInt) {
				t.Errorf("%d tensors %v, want %d", len(sd), sd.Names(), len(wantFloat)+len(wantInt))
			}
			for name, w := range wantFloat {
				tn := sd[name]
				if tn == nil {
					t.Fatalf("missing %s", name)
				}
				if !slices.Equal(tn.Shape, w.shape) || tn.DType != w.dtype {
					t.Fatalf("%s: shape %v %v, want %v %v", name, tn.Shape, tn.DType, w.shape, w.dtype)
				}
				got, err := tn.Float32()
				if err != nil {
					t.Fatal(err)
				}
				if int64(len(got)) != tn.Numel() || len(tn.Raw) != len(got)*tn.DType.Size() {
					t.Fatalf("%s: %d values, %d raw bytes for %d elements", name, len(got), len(tn.Raw), tn.Numel())
				}
				for i, v := range got {
					if v != w.at(i) {
						t.Fatalf("%s[%d] = %v, want %v", name, i, v, w.at(i))
					}
				}
			}
			for name, w := range wantInt {
				tn := sd[name]
				if tn == nil {
					t.Fatalf("missing %s", name)
				}
				got, err := tn.Int64()
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(tn.Shape, w.shape) || tn.DType != w.dtype || !slices.Equal(got, w.vals) {
					t.Fatalf("%s: %v %v %v, want %v %v %v", name, tn.Shape, tn.DType, got, w.shape, w.dtype, w.vals)
				}
			}
			if _, err := sd["mask"].Float32(); err == nil {
				t.Error("Float32 of a bool tensor succeeded")
			}
		})
	}
}

func TestCheckpointFlattened(t *testing.T) {
	sd, err := Load("testdata/checkpoint.pt")
	if err != nil {
		t.Fatal(err)
	}
	if names := sd.Names(); !slices.Equal(names, []string{"model.w"}) {
		t.Fatalf("names %v, want [model.w] (epoch and name are not tensors)", names)
	}
	if v, _ := sd["model.w"].Float32(); !slices.Equal(v, []float32{ramp(0), ramp(1)}) {
		t.Fatalf("model.w = %v", v)
	}
}

// TestLegacyStorageView: a storage that is a view of another (legacy
// view_metadata), as torch.load reads it: [ramp(3), ramp(4), ramp(5)].
func TestLegacyStorageView(t *testing.T) {
	sd, err := Load("testdata/legacy_view.pt")
	if err != nil {
		t.Fatal(err)
	}
	v, err := sd["v"].Float32()
	if err != nil {
		t.Fatal(err)
	}
	if want := []float32{ramp(3), ramp(4), ramp(5)}; !slices.Equal(v, want) {
		t.Fatalf("v = %v, want %v", v, want)
	}
}

func TestHalfToFloat(t *testing.T) {
	cases := map[uint16]float32{0x3c00: 1, 0xc000: -2, 0x7bff: 65504, 0x0001: 0x1p-24, 0x03ff: 1023 * 0x1p-24, 0x8000: 0}
	for h, want := range cases {
		if got := halfToFloat(h); got != want {
			t.Errorf("half %#04x = %v, want %v", h, got, want)
		}
	}
	if f := halfToFloat(0x7c00); f < 3e38 {
		t.Errorf("half +Inf = %v", f)
	}
	if f := halfToFloat(0x7e00); f == f {
		t.Errorf("half NaN = %v", f)
	}
}

func TestRejects(t *testing.T) {
	legacy, err := os.ReadFile("testdata/legacy.pt")
	if err != nil {
		t.Fatal(err)
	}
	zipped, err := os.ReadFile("testdata/zip.pt")
	if err != nil {
		t.Fatal(err)
	}
	module, err := os.ReadFile("testdata/module_legacy.pt")
	if err != nil {
		t.Fatal(err)
	}
	flipped := slices.Clone(zipped)
	// Corrupt the first storage record's bytes (conv.weight's data).
	i := bytes.Index(flipped, []byte("zip/data/0"))
	flipped[i+len("zip/data/0")+70] ^= 0xff
	noMagic := slices.Clone(legacy)
	noMagic[5] ^= 0x01 // inside the LONG1 magic number
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "not a PyTorch file"},
		{"text", []byte("hello"), "not a PyTorch file"},
		{"module", module, "pickled torch.nn.modules.linear.Identity object, not a state dict"},
		{"truncated pickle", legacy[:700], "truncated pickle"},
		{"truncated storages", legacy[:len(legacy)-10], "truncated in storage"},
		{"wrong magic", noMagic, "magic number"},
		{"bad opcode", append(slices.Clone(legacy[:137]), 0x80, 2, 0xff), "unsupported opcode"},
		{"unknown opcode", append(slices.Clone(legacy[:137]), 0x80, 2, 0xfe), "unsupported opcode"},
		{"empty LONG1", append(slices.Clone(legacy[:137]), 0x80, 2, 0x8a, 0), "corrupt pickle"},
		{"zip corrupted", flipped, "corrupt"},
		{"zip truncated", zipped[:len(zipped)/2], "corrupt zip archive"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(c.data)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to mention %q", err, c.want)
			}
		})
	}
}

// TestPytorchFIDWeights loads pytorch-fid's Inception weights when
// MOLLIFY_FID_WEIGHTS names pt_inception-2015-12-05-6726825d.pth.
func TestPytorchFIDWeights(t *testing.T) {
	path := os.Getenv("MOLLIFY_FID_WEIGHTS")
	if path == "" {
		t.Skip("set MOLLIFY_FID_WEIGHTS to pt_inception-2015-12-05-6726825d.pth to run")
	}
	sd, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for name, shape := range map[string][]int64{
		"Conv2d_1a_3x3.conv.weight":         {32, 3, 3, 3},
		"Mixed_5b.branch1x1.bn.running_var": {64},
		"fc.weight":                         {1008, 2048},
	} {
		if tn := sd[name]; tn == nil || !slices.Equal(tn.Shape, shape) || tn.DType != Float32 {
			t.Errorf("%s: %+v, want float32 %v", name, tn, shape)
		}
	}
	t.Logf("%d tensors", len(sd))
}
