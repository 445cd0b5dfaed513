package data

import (
	"math"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// The CUDA path of Batch.Tensor: uint8 goes to the GPU, the transform runs
// there. Skipped where no GPU is visible (see docs/gpu.md).
func TestBatchTensorOnCUDA(t *testing.T) {
	if !gotch.CUDA.IsAvailable() {
		t.Skip("CUDA not available")
	}
	dev := gotch.CudaBuilder(0)
	sc := ts.NewScope()
	defer sc.Close()
	b := allLevels()
	for _, tr := range []Transform{VAETransform, {DequantNone, RangeSigned}, FlowTransform, {DequantUniform, RangeSigned}} {
		x, err := b.Tensor(dev, tr)
		if err != nil {
			t.Fatal(err)
		}
		if x.MustDevice() != dev {
			t.Fatalf("%+v: tensor on %v, want %v", tr, x.MustDevice(), dev)
		}
		q, err := tr.Quantize(x)
		if err != nil {
			t.Fatal(err)
		}
		back, _ := q.Bytes()
		for k := range back {
			if int(back[k]) != k {
				t.Fatalf("%+v: level %d came back as %d", tr, k, back[k])
			}
		}
		if tr.Dequantization == DequantNone {
			want, _ := b.Tensor(gotch.CPU, tr)
			g := x.MustTo(gotch.CPU, false).Float64Values()
			for i, v := range want.Float64Values() {
				if math.Abs(v-g[i]) > 1e-7 {
					t.Fatalf("%+v: CUDA %v, CPU %v at %d", tr, g[i], v, i)
				}
			}
		}
	}
}
