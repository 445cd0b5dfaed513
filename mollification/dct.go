package mollification

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// DCTMatrix returns the n×n orthonormal DCT-II matrix, row-major:
// C[k][i] = s_k·cos(π(2i+1)k/(2n)), s_0 = √(1/n), s_k = √(2/n). C·x is
// scipy's dct(x, norm='ortho') and Cᵀ·y its idct.
func DCTMatrix(n int) []float64 {
	c := make([]float64, n*n)
	for k := 0; k < n; k++ {
		s := math.Sqrt(2 / float64(n))
		if k == 0 {
			s = math.Sqrt(1 / float64(n))
		}
		for i := 0; i < n; i++ {
			c[k*n+i] = s * math.Cos(math.Pi*float64((2*i+1)*k)/float64(2*n))
		}
	}
	return c
}

// heatFrequencies returns (πk/n)², k = 0..n-1: appendix B's
// freqs = π·linspace(0, n−1, n)/n, squared.
func heatFrequencies(n int) []float64 {
	f := make([]float64, n)
	for k := range f {
		v := math.Pi * float64(k) / float64(n)
		f[k] = v * v
	}
	return f
}

// matrixOn puts a row-major rows×cols matrix on device with dtype.
func matrixOn(m []float64, rows, cols int, device gotch.Device, dtype gotch.DType) *ts.Tensor {
	t := ts.MustOfSlice(m).MustView([]int64{int64(rows), int64(cols)}, false)
	return t.MustToDevice(device, dtype, false, false, false)
}

// imageDims checks that x is (…, H, W) with at least 2 dims and returns H, W.
func imageDims(x *ts.Tensor, what string) (int, int, error) {
	shape, err := x.Size()
	if err != nil {
		return 0, 0, fmt.Errorf("mollification: %s: %w", what, err)
	}
	if len(shape) < 2 {
		return 0, 0, fmt.Errorf("mollification: %s needs a tensor whose last two dims are H, W, got shape %v", what, shape)
	}
	return int(shape[len(shape)-2]), int(shape[len(shape)-1]), nil
}

func dtypeOf(x *ts.Tensor) (gotch.DType, error) {
	switch dt := x.DType(); dt {
	case gotch.Float, gotch.Double, gotch.Half, gotch.BFloat16:
		return dt, nil
	default:
		return dt, fmt.Errorf("mollification: need a floating-point tensor, got %v", dt)
	}
}

// DCT2 is the orthonormal 2-D DCT-II over the last two dims of x
// (scipy's dct(dct(x, axis=-2, norm='ortho'), axis=-1, norm='ortho')),
// computed as C_H·x·C_Wᵀ with matrices built on x's device for this call.
func DCT2(x *ts.Tensor) (*ts.Tensor, error) { return dct2(x, false) }

// IDCT2 inverts DCT2: C_Hᵀ·y·C_W.
func IDCT2(y *ts.Tensor) (*ts.Tensor, error) { return dct2(y, true) }

func dct2(x *ts.Tensor, inverse bool) (out *ts.Tensor, err error) {
	h, w, err := imageDims(x, "DCT2")
	if err != nil {
		return nil, err
	}
	dt, err := dtypeOf(x)
	if err != nil {
		return nil, err
	}
	defer recoverTorch(&err, "DCT2")
	dev := x.MustDevice()
	ch := matrixOn(DCTMatrix(h), h, h, dev, dt)
	cw := matrixOn(DCTMatrix(w), w, w, dev, dt)
	if inverse {
		// Cᵀ·y·C
		return ch.MustTranspose(0, 1, false).MustMatmul(x, false).MustMatmul(cw, false), nil
	}
	return ch.MustMatmul(x, false).MustMatmul(cw.MustTranspose(0, 1, false), false), nil
}

// HeatBlur is Algorithm 2 of appendix B on the last two dims of x:
// IDCT2(DCT2(x)·exp(−Λt)), Λ_ij = (πi/H)² + (πj/W)². It builds its
// matrices per call; Blur caches them for training.
func HeatBlur(x *ts.Tensor, t float64) (out *ts.Tensor, err error) {
	if !(t >= 0) || math.IsInf(t, 0) {
		return nil, fmt.Errorf("mollification: blur time must be finite and >= 0, got %g", t)
	}
	h, w, err := imageDims(x, "HeatBlur")
	if err != nil {
		return nil, err
	}
	dt, err := dtypeOf(x)
	if err != nil {
		return nil, err
	}
	u, err := DCT2(x)
	if err != nil {
		return nil, err
	}
	defer recoverTorch(&err, "HeatBlur")
	fh, fw := heatFrequencies(h), heatFrequencies(w)
	d := make([]float64, h*w)
	for i := range fh {
		for j := range fw {
			d[i*w+j] = math.Exp(-(fh[i] + fw[j]) * t)
		}
	}
	u.MustMul_(matrixOn(d, h, w, x.MustDevice(), dt))
	return IDCT2(u)
}
