package nn

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// convTransposeGrads returns y, dL/dx, dL/dW, dL/db and the second-order
// gradient d(Σ (dL/dx)²)/dW for L = Σ y·r, with the oneDNN backward or
// libtorch's native one.
func convTransposeGrads(t *testing.T, native bool, x, w, b, r *ts.Tensor, o ConvOptions) []*ts.Tensor {
	t.Helper()
	o.NativeBackward = native
	c := &ConvTranspose2d{ConvLayer{W: w, B: b, Opts: o.norm()}}
	y := c.Forward(x)
	loss := y.MustMul(r, false).MustSum(gotch.Float, true)
	inputs := []*ts.Tensor{x, w}
	if b != nil {
		inputs = append(inputs, b)
	}
	g, err := ts.RunBackward([]*ts.Tensor{loss}, inputs, true, true)
	if err != nil {
		t.Fatal(err)
	}
	gg, err := ts.RunBackward([]*ts.Tensor{g[0].MustSquare(false).MustSum(gotch.Float, true)}, []*ts.Tensor{w}, false, false)
	if err != nil {
		t.Fatal(err)
	}
	return append(append([]*ts.Tensor{y}, g...), gg[0])
}

// The oneDNN backward of ConvTranspose2d gives libtorch's native values,
// first and second order, across the decoder shapes of Table 4 (stride 2 with
// and without output padding, the stride-1 RGB head) plus groups, dilation
// and no bias.
func TestConvTransposeOneDNNMatchesNative(t *testing.T) {
	cases := []struct {
		n, in, out, h, k int64
		o                ConvOptions
		bias             bool
	}{
		{4, 32, 16, 8, 4, ConvOptions{Stride: 2, Padding: 1}, true},
		{4, 16, 24, 16, 4, ConvOptions{Stride: 2, Padding: 1, OutputPadding: 1}, true},
		{4, 16, 3, 33, 4, ConvOptions{Stride: 1, Padding: 2}, true},
		{3, 16, 32, 8, 5, ConvOptions{Stride: 2, Padding: 2, OutputPadding: 1}, false},
		{2, 16, 32, 7, 3, ConvOptions{Stride: 2, Padding: 1, Groups: 2, Dilation: 2}, true},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%dto%d_k%d_s%d_p%d_op%d_g%d_d%d_bias%v", c.in, c.out, c.k, c.o.Stride, c.o.Padding, c.o.OutputPadding, c.o.Groups, c.o.Dilation, c.bias), func(t *testing.T) {
			sc := ts.NewScope()
			defer sc.Close()
			Seed(7)
			o := c.o.norm()
			x := Randn([]int64{c.n, c.in, c.h, c.h}, gotch.CPU).MustSetRequiresGrad(true, false)
			w := Uniform([]int64{c.in, c.out / o.Groups, c.k, c.k}, 0.2, gotch.CPU).MustSetRequiresGrad(true, false)
			var b *ts.Tensor
			if c.bias {
				b = Uniform([]int64{c.out}, 0.2, gotch.CPU).MustSetRequiresGrad(true, false)
			}
			ho := (c.h-1)*o.Stride - 2*o.Padding + o.Dilation*(c.k-1) + o.OutputPadding + 1
			r := Randn([]int64{c.n, c.out, ho, ho}, gotch.CPU)
			fast := convTransposeGrads(t, false, x, w, b, r, c.o)
			ref := convTransposeGrads(t, true, x, w, b, r, c.o)
			names := []string{"y", "dx", "dW", "db", "d2W"}
			if b == nil {
				names = []string{"y", "dx", "dW", "d2W"}
			}
			for i, name := range names {
				if got, want := fast[i].MustSize(), ref[i].MustSize(); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("%s shape %v, native %v", name, got, want)
				}
				g, w := fast[i].Float64Values(), ref[i].Float64Values()
				scale := 0.0
				for _, v := range w {
					scale = math.Max(scale, math.Abs(v))
				}
				for j := range g {
					if math.Abs(g[j]-w[j]) > 1e-5*scale {
						t.Fatalf("%s[%d] = %.9g, native %.9g (scale %.3g)", name, j, g[j], w[j], scale)
					}
				}
			}
		})
	}
}

func TestConvTransposeFastRejectsBadArguments(t *testing.T) {
	sc := ts.NewScope()
	defer sc.Close()
	x := Randn([]int64{1, 2, 4, 4}, gotch.CPU)
	w := Randn([]int64{2, 3, 3, 3}, gotch.CPU)
	if _, err := ts.ConvTranspose2dFast(x, w, nil, []int64{1}, []int64{0, 0}, []int64{0, 0}, 1, []int64{1, 1}, false); err == nil || !strings.Contains(err.Error(), "stride needs 2 values") {
		t.Fatalf("short stride: err = %v", err)
	}
	bad := Randn([]int64{5, 3, 3, 3}, gotch.CPU)
	if _, err := ts.ConvTranspose2dFast(x, bad, nil, []int64{1, 1}, []int64{0, 0}, []int64{0, 0}, 1, []int64{1, 1}, false); err == nil {
		t.Fatal("weight with 5 input channels for 2-channel input: no error")
	}
}

// The oneDNN backward is taken for CPU float32 input (Debian's and the
// official libtorch builds have oneDNN) and not for float64, which goes to
// libtorch's own op.
func TestConvTransposeOneDNNAppliesToCPUFloat32(t *testing.T) {
	sc := ts.NewScope()
	defer sc.Close()
	x := Randn([]int64{2, 4, 5, 5}, gotch.CPU)
	if !ts.ConvTranspose2dUsesOneDNN(x) {
		t.Fatal("CPU float32 input does not take the oneDNN backward: is this libtorch built without oneDNN (MKLDNN)?")
	}
	if ts.ConvTranspose2dUsesOneDNN(x.MustTotype(gotch.Double, false)) {
		t.Error("float64 input takes the oneDNN backward; it has no float64 kernels")
	}
	if ts.ConvTranspose2dUsesOneDNN(nil) {
		t.Error("nil input reported as oneDNN")
	}
}
