package mollification

import (
	"math"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

func TestDCTMatrixIsOrthonormal(t *testing.T) {
	for _, n := range []int{1, 2, 7, 32} {
		c := DCTMatrix(n)
		for i := 0; i < n; i++ {
			for j := 0; j < n; j++ {
				dot := 0.0
				for k := 0; k < n; k++ {
					dot += c[i*n+k] * c[j*n+k]
				}
				want := 0.0
				if i == j {
					want = 1
				}
				if math.Abs(dot-want) > 1e-12 {
					t.Fatalf("n=%d: row %d · row %d = %g, want %g", n, i, j, dot, want)
				}
			}
		}
	}
}

// DCT2 and IDCT2 match scipy.fftpack's dct/idct with norm='ortho'.
func TestDCT2MatchesScipy(t *testing.T) {
	for _, c := range loadGolden(t).Blur {
		for _, tc := range []struct {
			dt  gotch.DType
			tol float64
		}{{gotch.Double, 1e-12}, {gotch.Float, 1e-5}} {
			scoped(t, func() {
				x := tensorOf(c.X, c.Shape, tc.dt)
				d, err := DCT2(x)
				if err != nil {
					t.Fatal(err)
				}
				if e := maxAbsDiff(t, d, c.DCT2); e > tc.tol {
					t.Errorf("%v %v: DCT2 off scipy by %g", c.Shape, tc.dt, e)
				}
				i, err := IDCT2(x)
				if err != nil {
					t.Fatal(err)
				}
				if e := maxAbsDiff(t, i, c.IDCT2); e > tc.tol {
					t.Errorf("%v %v: IDCT2 off scipy by %g", c.Shape, tc.dt, e)
				}
				back, err := IDCT2(d)
				if err != nil {
					t.Fatal(err)
				}
				if e := maxAbsDiff(t, back, c.X); e > tc.tol {
					t.Errorf("%v %v: IDCT2(DCT2(x)) off x by %g", c.Shape, tc.dt, e)
				}
			})
		}
	}
}

// Both the literal Algorithm 2 (HeatBlur) and the cached separable
// operator (Blur.Apply) match the Python transcription.
func TestBlurMatchesAlgorithm2(t *testing.T) {
	for _, c := range loadGolden(t).Blur {
		h, w := int(c.Shape[2]), int(c.Shape[3])
		for _, tc := range []struct {
			dt  gotch.DType
			tol float64
		}{{gotch.Double, 1e-12}, {gotch.Float, 1e-5}} {
			b, err := NewBlur(BlurOptions{Height: h, Width: w, Steps: 10, DType: tc.dt})
			if err != nil {
				t.Fatal(err)
			}
			for k, tm := range c.Times {
				scoped(t, func() {
					x := tensorOf(c.X, c.Shape, tc.dt)
					y, err := HeatBlur(x, tm)
					if err != nil {
						t.Fatal(err)
					}
					if e := maxAbsDiff(t, y, c.Blurred[k]); e > tc.tol {
						t.Errorf("HeatBlur %v %v t=%g: off Python by %g", c.Shape, tc.dt, tm, e)
					}
					z, err := b.Apply(x, tm)
					if err != nil {
						t.Fatal(err)
					}
					if e := maxAbsDiff(t, z, c.Blurred[k]); e > tc.tol {
						t.Errorf("Blur.Apply %v %v t=%g: off Python by %g", c.Shape, tc.dt, tm, e)
					}
				})
			}
			b.Close()
		}
	}
}

func TestBlurIdentityAtZeroAndPreservesMean(t *testing.T) {
	b, err := NewBlur(BlurOptions{Height: 16, Width: 16, Steps: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	scoped(t, func() {
		if err := ts.ManualSeed(3); err != nil {
			t.Fatal(err)
		}
		x := ts.MustRand([]int64{4, 3, 16, 16}, gotch.Float, gotch.CPU)
		y, err := b.Apply(x, 0)
		if err != nil {
			t.Fatal(err)
		}
		if e := maxAbsDiff(t, y, x.Float64Values()); e > 1e-5 {
			t.Errorf("blur at t=0 differs from x by %g", e)
		}
		mean := func(v *ts.Tensor) *ts.Tensor {
			return v.MustMeanDim([]int64{2, 3}, false, gotch.Float, false)
		}
		mx := mean(x).Float64Values()
		for _, tm := range []float64{0.125, 8, 128, 1e6} {
			y, err := b.Apply(x, tm)
			if err != nil {
				t.Fatal(err)
			}
			if e := maxAbsDiff(t, mean(y), mx); e > 1e-5 {
				t.Errorf("t=%g: per-channel mean moved by %g", tm, e)
			}
			if tm == 1e6 { // fully diffused: every pixel is the channel mean
				v := y.Float64Values()
				for i, val := range v {
					if math.Abs(val-mx[i/256]) > 1e-4 {
						t.Fatalf("t=1e6: pixel %d is %g, channel mean %g", i, val, mx[i/256])
					}
				}
			}
		}
	})
}

func TestBlurSchedule(t *testing.T) {
	b, err := NewBlur(BlurOptions{Height: 32, Width: 32, Steps: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if o := b.Options(); o.SigmaMax != 16 || o.SigmaMin != 0.5 {
		t.Errorf("defaults: σ_max %g (want half the width, 16), σ_min %g (want 0.5)", o.SigmaMax, o.SigmaMin)
	}
	first := b.At(0)
	if !first.Active || first.BlurSigma != 16 || first.BlurTime != 128 {
		t.Errorf("step 0: %+v, want σ_B = 16, t = 128", first)
	}
	// log t is linear in the step, from ln 128 to ln 0.125.
	for _, step := range []int{1, 250, 500, 999} {
		got := math.Log(b.At(step).BlurTime)
		want := math.Log(128) + float64(step)/1000*(math.Log(0.125)-math.Log(128))
		if math.Abs(got-want) > 1e-12 {
			t.Errorf("step %d: ln t = %g, want %g", step, got, want)
		}
	}
	if end := b.At(1000); end.Active || end.BlurTime != 0 || end.String() != "clean" {
		t.Errorf("step T: %+v, want clean", end)
	}
	if s := b.At(500).String(); s != "blur σ=2.83px" {
		t.Errorf("String() = %q", s)
	}
}

func TestBlurMollify(t *testing.T) {
	b, err := NewBlur(BlurOptions{Height: 8, Width: 8, Steps: 4, SigmaMax: 2, SigmaMin: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	x := ts.MustRand([]int64{2, 1, 8, 8}, gotch.Float, gotch.CPU)
	defer x.MustDrop()
	xs := x.Float64Values()
	for step := 0; step < 6; step++ {
		scoped(t, func() {
			y, info, err := b.Mollify(x, step)
			if err != nil {
				t.Fatal(err)
			}
			want := xs
			if info.Active {
				z, err := HeatBlur(x, info.BlurTime)
				if err != nil {
					t.Fatal(err)
				}
				want = z.Float64Values()
			}
			if e := maxAbsDiff(t, y, want); e > 1e-5 {
				t.Errorf("step %d (%v): off by %g", step, info, e)
			}
		})
	}
}

func TestBlurRejectsNonImages(t *testing.T) {
	b, err := NewBlur(BlurOptions{Height: 8, Width: 8, Steps: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tests := []struct {
		shape []int64
		want  string
	}{
		{[]int64{256, 2}, "blur needs image batches"},
		{[]int64{4, 3, 16, 16}, "8×8 pixels got a tensor of shape [4 3 16 16]"},
	}
	for _, tc := range tests {
		scoped(t, func() {
			x := ts.MustZeros(tc.shape, gotch.Float, gotch.CPU)
			if _, _, err := b.Mollify(x, 0); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("shape %v: err = %v, want it to contain %q", tc.shape, err, tc.want)
			}
		})
	}
	for _, o := range []BlurOptions{{Height: 1, Width: 8}, {Height: 8, Width: 8, SigmaMax: 0.4}, {Height: 8, Width: 8, Steps: -1}} {
		if _, err := NewBlur(o); err == nil {
			t.Errorf("NewBlur(%+v) succeeded", o)
		}
	}
	scoped(t, func() {
		if _, err := HeatBlur(ts.MustZeros([]int64{3, 3}, gotch.Float, gotch.CPU), -1); err == nil {
			t.Error("negative blur time accepted")
		}
	})
}

// BenchmarkBlurCIFAR is one CIFAR10 batch of 64 (64×3×32×32).
func BenchmarkBlurCIFAR(b *testing.B) {
	outer := ts.NewScope()
	defer outer.Close()
	x := ts.MustRand([]int64{64, 3, 32, 32}, gotch.Float, gotch.CPU)
	bl, err := NewBlur(BlurOptions{Height: 32, Width: 32, Steps: 1 << 30})
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
		s.Close()
	}
}
