package metrics

import (
	"fmt"
	"math"

	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// RBF is the kernel of the paper's eq. 17:
// K(x, x') = Variance · exp(−‖x − x'‖² / (2·Lengthscale)).
type RBF struct {
	Lengthscale float64
	Variance    float64
}

// PaperRBF is the kernel the paper reports (l = 1, σ² = 1e-4).
var PaperRBF = RBF{Lengthscale: 1, Variance: 1e-4}

// UnitRBF has unit variance, so MMD² values are not all on a 1e-4 scale.
var UnitRBF = RBF{Lengthscale: 1, Variance: 1}

// blockSum returns Σ_ij exp(−‖a_i − b_j‖²/(2l)) over all pairs, in blocks
// of `block` rows. Each block is one float32 buffer updated in place (the
// distances, then the kernel values); block sums accumulate in float64.
func blockSum(a, b *ts.Tensor, l float64, block int64) float64 {
	na := a.MustSize()[0]
	total := 0.0
	bsq := b.MustSquare(false).MustSumDimIntlist([]int64{1}, false, gotch.Float, true).MustUnsqueeze(0, true) // (1, nb)
	bt := b.MustT(false)
	for i := int64(0); i < na; i += block {
		func() {
			sc := ts.NewScope()
			defer sc.Close()
			ai := a.MustNarrow(0, i, min(block, na-i), false)
			asq := ai.MustSquare(false).MustSumDimIntlist([]int64{1}, false, gotch.Float, true).MustUnsqueeze(1, true) // (r, 1)
			k := ai.MustMatmul(bt, false)                                                                              // a·b, then −‖a−b‖² = 2a·b − ‖a‖² − ‖b‖²
			k.MustMulScalar_(ts.FloatScalar(2))
			k.MustSub_(asq)
			k.MustSub_(bsq)
			k.MustClampMax_(ts.FloatScalar(0))
			k.MustMulScalar_(ts.FloatScalar(1 / (2 * l)))
			k.MustExp_()
			s, _ := k.MustSum(gotch.Double, false).Float64()
			total += s
		}()
	}
	return total
}

// MMD2 returns the unbiased estimate of MMD²(P, Q) from samples x ~ P
// (N, D) and y ~ Q (M, D) with kernel k: the means of K over distinct pairs
// within x and within y, minus twice the mean over x×y.
func MMD2(x, y *ts.Tensor, k RBF) (v float64, err error) {
	defer nn.Recover(&err)
	xs, ys := x.MustSize(), y.MustSize()
	if len(xs) != 2 || len(ys) != 2 || xs[1] != ys[1] {
		return 0, fmt.Errorf("metrics: MMD2 needs (N, D) and (M, D) samples, got %v and %v", xs, ys)
	}
	n, m := float64(xs[0]), float64(ys[0])
	if n < 2 || m < 2 {
		return 0, fmt.Errorf("metrics: MMD2 needs at least 2 samples on each side, got %v and %v", n, m)
	}
	if !(k.Lengthscale > 0) || !(k.Variance > 0) {
		return 0, fmt.Errorf("metrics: RBF lengthscale and variance must be positive, got %+v", k)
	}
	sc := ts.NewScope()
	defer sc.Close()
	xf, yf := x.MustTotype(gotch.Float, false), y.MustTo(x.MustDevice(), false).MustTotype(gotch.Float, true)
	const block = 1024
	kxx := blockSum(xf, xf, k.Lengthscale, block) - n // drop the diagonal: exp(0) = 1
	kyy := blockSum(yf, yf, k.Lengthscale, block) - m
	kxy := blockSum(xf, yf, k.Lengthscale, block)
	v = k.Variance * (kxx/(n*(n-1)) + kyy/(m*(m-1)) - 2*kxy/(n*m))
	if math.IsNaN(v) {
		return 0, fmt.Errorf("metrics: MMD2 is NaN (non-finite samples?)")
	}
	return v, nil
}

// BitsPerDim converts a mean negative log-likelihood in nats per example of
// D dimensions to bits per dimension. offset is added for data rescaled
// from 256 levels to [0,1]: log2(256) = 8 bits per dimension.
func BitsPerDim(nllNats float64, dims int64, offset float64) float64 {
	return nllNats/(float64(dims)*math.Ln2) + offset
}
