package data

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// allLevels is a batch holding each of the 256 levels once: 4×1×8×8.
func allLevels() *Batch {
	pix := make([]uint8, 256)
	for i := range pix {
		pix[i] = uint8(i)
	}
	return &Batch{Pixels: pix, Shape: [4]int{4, 1, 8, 8}}
}

func floats(t *testing.T, x *ts.Tensor) []float64 {
	t.Helper()
	if x.DType() != gotch.Float {
		t.Fatalf("dtype %v, want float32", x.DType())
	}
	return x.Float64Values()
}

func TestBatchTensorTransforms(t *testing.T) {
	sc := ts.NewScope()
	defer sc.Close()
	if err := ts.ManualSeed(1); err != nil {
		t.Fatal(err)
	}
	b := allLevels()
	for _, tc := range []struct {
		tr     Transform
		lo, hi func(k float64) float64 // bounds of the value of level k
		offset float64
	}{
		{Transform{DequantNone, RangeUnit}, func(k float64) float64 { return k / 255 }, nil, math.Log2(255)},
		{Transform{DequantNone, RangeSigned}, func(k float64) float64 { return k/127.5 - 1 }, nil, math.Log2(127.5)},
		{Transform{DequantUniform, RangeUnit}, func(k float64) float64 { return k / 256 }, func(k float64) float64 { return (k + 1) / 256 }, 8},
		{Transform{DequantUniform, RangeSigned}, func(k float64) float64 { return k/128 - 1 }, func(k float64) float64 { return (k+1)/128 - 1 }, 7},
	} {
		x, err := b.Tensor(gotch.CPU, tc.tr)
		if err != nil {
			t.Fatal(err)
		}
		if got := x.MustSize(); len(got) != 4 || got[0] != 4 || got[1] != 1 || got[2] != 8 || got[3] != 8 {
			t.Fatalf("%+v: shape %v", tc.tr, got)
		}
		v := floats(t, x)
		frac := 0.0
		for k, got := range v {
			lo := tc.lo(float64(k))
			if tc.hi == nil {
				if math.Abs(got-lo) > 1e-6 {
					t.Fatalf("%+v: level %d -> %v, want %v", tc.tr, k, got, lo)
				}
				continue
			}
			hi := tc.hi(float64(k))
			if got < lo-1e-6 || got >= hi+1e-6 {
				t.Fatalf("%+v: level %d -> %v, outside [%v, %v)", tc.tr, k, got, lo, hi)
			}
			frac += (got - lo) / (hi - lo)
		}
		if tc.hi != nil {
			// u ~ U[0,1): the mean position inside the bin is 1/2 ± 0.018.
			if m := frac / 256; math.Abs(m-0.5) > 0.07 {
				t.Errorf("%+v: mean dequantisation offset %.3f, want about 0.5", tc.tr, m)
			}
		}
		if tc.tr.Dequantization == DequantNone && (v[0] != tc.lo(0) || v[255] != 1) {
			t.Errorf("%+v: ends %v, %v are not exact", tc.tr, v[0], v[255])
		}
		if got := tc.tr.BitsPerDimOffset(); math.Abs(got-tc.offset) > 1e-12 {
			t.Errorf("%+v: bits/dim offset %v, want %v", tc.tr, got, tc.offset)
		}
		// Quantize inverts the transform.
		q, err := tc.tr.Quantize(x)
		if err != nil {
			t.Fatal(err)
		}
		back, err := q.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		for k := range back {
			if int(back[k]) != k {
				t.Fatalf("%+v: Quantize(level %d) = %d", tc.tr, k, back[k])
			}
		}
	}
}

// Out-of-range model outputs are clamped when quantized.
func TestQuantizeClamps(t *testing.T) {
	sc := ts.NewScope()
	defer sc.Close()
	x := ts.MustOfSlice([]float32{-3, 0.5, 7})
	q, err := VAETransform.Quantize(x)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := q.Bytes()
	if b[0] != 0 || b[1] != 128 || b[2] != 255 {
		t.Errorf("got %v, want [0 128 255]", b)
	}
}

// Quantize leaves its input alone (issue 11, defect 2): Totype returns
// float32 input itself, and the in-place multiply and round that followed
// turned the caller's [0 0.25 0.5 1] into [0 64 128 255].
func TestQuantizeDoesNotChangeItsInput(t *testing.T) {
	sc := ts.NewScope()
	defer sc.Close()
	for _, tr := range []Transform{VAETransform, {Dequantization: DequantUniform, Range: RangeUnit}, {Dequantization: DequantNone, Range: RangeSigned}} {
		in := []float32{0, 0.25, 0.5, 1}
		x := ts.MustOfSlice(in)
		if _, err := tr.Quantize(x); err != nil {
			t.Fatal(err)
		}
		if got := x.Float64Values(); fmt.Sprint(got) != fmt.Sprint([]float64{0, 0.25, 0.5, 1}) {
			t.Errorf("%+v: Quantize changed its input to %v", tr, got)
		}
	}
}

// Apply takes uint8 only: float input would alias its output.
func TestApplyRejectsFloatInput(t *testing.T) {
	sc := ts.NewScope()
	defer sc.Close()
	_, err := VAETransform.Apply(ts.MustOfSlice([]float32{0, 1}))
	if err == nil || !strings.Contains(err.Error(), "uint8") {
		t.Errorf("Apply(float32): %v, want an error asking for uint8", err)
	}
}

// Samples with NaN or Inf are an error, never an image (issue 11, defect 7).
func TestQuantizeRejectsNonFiniteSamples(t *testing.T) {
	sc := ts.NewScope()
	defer sc.Close()
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		_, err := VAETransform.Quantize(ts.MustOfSlice([]float32{0.5, bad, 0.2}))
		if !errors.Is(err, ErrNonFiniteSamples) || !strings.Contains(err.Error(), "1 of 3 values") {
			t.Errorf("Quantize with %v: %v, want ErrNonFiniteSamples naming 1 of 3 values", bad, err)
		}
	}
}

func TestParseTransform(t *testing.T) {
	tr, err := ParseTransform("uniform", "unit")
	if err != nil || tr != FlowTransform {
		t.Errorf("got %+v, %v", tr, err)
	}
	for _, bad := range [][3]string{{"gaussian", "unit", `dequantization "gaussian"`}, {"none", "0-255", `range "0-255"`}} {
		_, err := ParseTransform(bad[0], bad[1])
		mustContain(t, err, bad[2])
	}
	if _, err := (&Batch{Pixels: make([]uint8, 4), Shape: [4]int{1, 1, 2, 2}}).Tensor(gotch.CPU, Transform{}); err == nil {
		t.Error("the zero Transform was accepted")
	}
}

// The conversion frees its intermediates: only the result stays alive.
func TestBatchTensorNoLeak(t *testing.T) {
	b := allLevels()
	run := func() {
		sc := ts.NewScope()
		defer sc.Close()
		if _, err := b.Tensor(gotch.CPU, FlowTransform); err != nil {
			t.Fatal(err)
		}
	}
	run()
	before := ts.LiveTensors()
	for i := 0; i < 50; i++ {
		run()
	}
	if after := ts.LiveTensors(); after != before {
		t.Errorf("%d live tensors after 50 conversions, %d before", after, before)
	}
	sc := ts.NewScope()
	defer sc.Close()
	inner := ts.LiveTensors()
	x, _ := b.Tensor(gotch.CPU, FlowTransform)
	if got := ts.LiveTensors() - inner; got != 1 || x == nil {
		t.Errorf("one conversion left %d tensors in the caller's scope, want 1", got)
	}
}

func TestStreamBatchTensor(t *testing.T) {
	sc := ts.NewScope()
	defer sc.Close()
	ds := indexImages(t, 20)
	l, _ := NewLoader(ds, LoaderConfig{BatchSize: 6, DropLast: true, Shuffle: true, Seed: 2})
	s, err := l.Stream(gotch.CPU, VAETransform)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for step := 0; step < 5; step++ {
		x, err := s.Batch(step)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := l.BatchAt(l.Position(step))
		v := floats(t, x)
		for i, p := range want.Pixels {
			if math.Abs(v[i]-float64(p)/255) > 1e-6 {
				t.Fatalf("step %d value %d = %v, want %v/255", step, i, v[i], p)
			}
		}
		if s.DataWait() < 0 {
			t.Error("negative wait")
		}
	}
	lbl, err := allLevels().LabelTensor()
	if err == nil || lbl != nil {
		t.Error("labels of an unlabelled batch")
	}
	b, _ := l.BatchAt(0, 0)
	lt, err := b.LabelTensor()
	if err != nil {
		t.Fatal(err)
	}
	if got := lt.Int64Values(); len(got) != 6 || got[0] != int64(b.Labels[0]) {
		t.Errorf("labels %v, want %v", got, b.Labels)
	}
}
