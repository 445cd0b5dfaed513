package fid

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/mollify/mollify/nn"
)

// Method selects how FrechetDistance computes tr sqrt(Σ1·Σ2).
type Method int

const (
	// Symmetric computes tr sqrt(Σ1^½·Σ2·Σ1^½), which equals tr sqrtm(Σ1·Σ2):
	// Σ1·Σ2 is similar to that positive semidefinite matrix, so its
	// eigenvalues are real and ≥ 0 and the trace of its principal square root
	// is the sum of their square roots. The square roots are taken through
	// factors Σi = Fi·Fiᵀ (any factor does: Σ1^½ = F1·U with U orthogonal),
	// the Cholesky factor or, when Σi is singular, V·Λ^½ over the numerically
	// nonzero eigenvalues: tr sqrt = Σ sqrt(λ(F1ᵀ·Σ2·F1)), or Σ sqrt(λ(K·Kᵀ))
	// with K = F1ᵀ·F2 when a factor is V·Λ^½, from a symmetric
	// eigendecomposition whose tiny negative eigenvalues (rounding) are
	// clipped to 0. No complex arithmetic, so no "Imaginary component":
	// Result.Imag reports the largest clipped √|λ| instead. Both sigmas must
	// be positive semidefinite. It runs in float64 on libtorch's CPU LAPACK
	// (linalg.cholesky_ex, linalg.eigh, linalg.eigvalsh, matmul): 1–2 s at
	// d = 2048 on one thread, 3–5 times faster than scipy's sqrtm (`make
	// bench`); a singular sigma costs an eigendecomposition more.
	Symmetric Method = iota
	// Scipy follows pytorch-fid literally: scipy.linalg.sqrtm(Σ1·Σ2) by a
	// real Schur decomposition, its complex Schur form when there are 2×2
	// blocks or negative eigenvalues, and the triangular square-root
	// recurrence; then pytorch-fid's checks. Rounding in the non-symmetric
	// Schur form is what makes the result complex; when the imaginary part of
	// its diagonal exceeds Options.ImagTol the call fails with
	// *ImaginaryComponentError, as pytorch-fid raises "Imaginary component".
	// It is O(d³) in complex arithmetic on gonum's single-threaded LAPACK:
	// meant for parity tests and diagnosis at small d, minutes at d = 2048.
	Scipy
)

func (m Method) String() string {
	switch m {
	case Symmetric:
		return "symmetric"
	case Scipy:
		return "scipy"
	}
	return fmt.Sprintf("Method(%d)", int(m))
}

// pytorch-fid's constants.
const (
	DefaultEps     = 1e-6 // added to both diagonals when sqrtm is not finite
	DefaultImagTol = 1e-3 // largest |Im diag sqrtm(Σ1Σ2)| accepted
)

// psdTol is how negative (relative to the largest variance) an eigenvalue
// of a singular sigma may be before it is rejected as not a covariance; a
// positive semidefinite matrix leaves rounding there. It is loose enough
// for covariances rounded through float32.
const psdTol = 1e-5

// Options tune FrechetDistance; the zero value is pytorch-fid's behaviour
// with the Symmetric method.
type Options struct {
	Method Method
	// Eps is added to both diagonals when the first attempt is not finite
	// (pytorch-fid's fallback). 0 means DefaultEps; negative disables it.
	Eps float64
	// ImagTol is the Scipy method's tolerance on the imaginary part of the
	// square root's diagonal. 0 means DefaultImagTol.
	ImagTol float64
}

// Result is the distance and its parts.
type Result struct {
	Distance     float64
	MeanTerm     float64 // ‖μ1−μ2‖²
	Trace1       float64 // tr Σ1
	Trace2       float64 // tr Σ2
	TraceCovmean float64 // tr sqrt(Σ1·Σ2), real part
	// Offset is the ε added to both diagonals by the fallback, 0 if none.
	Offset float64
	// Imag is, for Scipy, max |Im diag sqrtm(Σ1Σ2)|; for Symmetric, the
	// square root of the most negative eigenvalue that was clipped, i.e. the
	// imaginary part the principal root would have given it.
	Imag float64
	// Rank1 and Rank2 are the numerical ranks of Σ1 and Σ2 (Symmetric method
	// only): d when the Cholesky factorisation succeeds, else the number of
	// eigenvalues above d·ε·λmax.
	Rank1, Rank2 int
}

// ImaginaryComponentError is the Scipy method's version of pytorch-fid's
// ValueError("Imaginary component ...").
type ImaginaryComponentError struct {
	MaxImag     float64 // max |Im| over the whole square root, as reported by pytorch-fid
	MaxImagDiag float64 // max |Im| over its diagonal, the value tested
}

func (e *ImaginaryComponentError) Error() string {
	return fmt.Sprintf("fid: Imaginary component %v in sqrtm(Σ1·Σ2) (diagonal up to %v); "+
		"the covariances are too singular for scipy's method: use more samples or the Symmetric method",
		e.MaxImag, e.MaxImagDiag)
}

// ErrNotFinite is returned when the distance is not finite even after the
// ε fallback.
var ErrNotFinite = errors.New("fid: Fréchet distance is not finite even with ε added to the covariance diagonals")

// FID is FrechetDistance with default options, returning only the distance.
func FID(s1, s2 *Stats) (float64, error) {
	r, err := FrechetDistance(s1, s2, nil)
	return r.Distance, err
}

// FrechetDistance returns the Fréchet distance between the Gaussians
// N(μ1, Σ1) and N(μ2, Σ2): ‖μ1−μ2‖² + tr Σ1 + tr Σ2 − 2·tr sqrt(Σ1Σ2).
// opt may be nil.
func FrechetDistance(s1, s2 *Stats, opt *Options) (Result, error) {
	var o Options
	if opt != nil {
		o = *opt
	}
	if o.Eps == 0 {
		o.Eps = DefaultEps
	}
	if o.ImagTol == 0 {
		o.ImagTol = DefaultImagTol
	}
	if err := s1.validate("first"); err != nil {
		return Result{}, err
	}
	if err := s2.validate("second"); err != nil {
		return Result{}, err
	}
	d := s1.Dim()
	if s2.Dim() != d {
		return Result{}, fmt.Errorf("fid: mean vectors have different lengths (%d and %d); were both computed with the same --dims?", d, s2.Dim())
	}
	var res Result
	for i := 0; i < d; i++ {
		diff := s1.Mu[i] - s2.Mu[i]
		res.MeanTerm += diff * diff
		res.Trace1 += s1.Sigma.At(i, i)
		res.Trace2 += s2.Sigma.At(i, i)
	}
	var tr float64
	var err error
	for _, offset := range []float64{0, o.Eps} {
		if offset < 0 {
			break
		}
		res.Offset = offset
		switch o.Method {
		case Symmetric:
			tr, err = traceSqrtSymmetric(s1, s2, offset, &res)
		case Scipy:
			tr, err = traceSqrtScipy(s1, s2, offset, o.ImagTol, &res)
		default:
			return Result{}, fmt.Errorf("fid: unknown method %v", o.Method)
		}
		if err != nil && !errors.Is(err, errRetry) {
			return Result{}, err
		}
		if err == nil && !math.IsNaN(tr) && !math.IsInf(tr, 0) {
			res.TraceCovmean = tr
			// pytorch-fid uses the original traces even after the fallback.
			res.Distance = res.MeanTerm + res.Trace1 + res.Trace2 - 2*tr
			return res, nil
		}
	}
	return Result{}, ErrNotFinite
}

// errRetry marks a failure the ε fallback may cure.
var errRetry = errors.New("fid: retry with offset")

// traceSqrtSymmetric is the Symmetric method, in float64 on libtorch.
func traceSqrtSymmetric(s1, s2 *Stats, offset float64, res *Result) (tr float64, err error) {
	defer nn.Recover(&err)
	sc := ts.NewScope()
	defer sc.Close()
	f1, err := factor(s1, offset, "first")
	if err != nil {
		return 0, err
	}
	f2, err := factor(s2, offset, "second")
	if err != nil {
		return 0, err
	}
	res.Rank1, res.Rank2 = f1.rank, f2.rank
	if f1.rank == 0 || f2.rank == 0 {
		return 0, nil
	}
	// Σi = Fi·Fiᵀ, so Σ1^½ = F1·U with U orthogonal, and Σ1^½·Σ2·Σ1^½ has
	// the eigenvalues of F1ᵀ·Σ2·F1, which are the nonzero ones of K·Kᵀ and
	// Kᵀ·K, K = F1ᵀ·F2 (r1×r2).
	var g *ts.Tensor
	switch {
	case f1.cholesky && f2.cholesky:
		g = lowerCongruence(f2.a, f1.f)
	case f1.rank <= f2.rank:
		k := f1.f.MustTranspose(0, 1, false).MustMatmul(f2.f, false)
		g = k.MustMatmul(k.MustTranspose(0, 1, false), false)
	default:
		k := f2.f.MustTranspose(0, 1, false).MustMatmul(f1.f, false)
		g = k.MustMatmul(k.MustTranspose(0, 1, false), false)
	}
	if !allFinite(g) {
		return math.NaN(), errRetry
	}
	ev, err := g.LinalgEigvalsh("L", false)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errRetry, err)
	}
	var neg float64
	for _, l := range ev.Float64Values() {
		if l > 0 {
			tr += math.Sqrt(l)
		} else {
			neg = math.Max(neg, -l)
		}
	}
	res.Imag = math.Sqrt(neg)
	return tr, nil
}

// congruenceBlock is the block size of lowerCongruence's products.
const congruenceBlock = 256

// lowerCongruence returns the lower triangle of Lᵀ·A·L (d×d; the strict
// upper triangle is 0) for a lower-triangular L, skipping L's zero blocks:
// a third of the flops of the two full matmuls.
func lowerCongruence(a, l *ts.Tensor) *ts.Tensor {
	d := a.MustSize()[0]
	// W = A·L, a block of columns at a time: W[:, J] = A[:, j0:]·L[j0:, J].
	var cols []*ts.Tensor
	for j0 := int64(0); j0 < d; j0 += congruenceBlock {
		n := min(congruenceBlock, d-j0)
		lj := l.MustNarrow(0, j0, d-j0, false).MustNarrow(1, j0, n, true)
		cols = append(cols, a.MustNarrow(1, j0, d-j0, false).MustMatmul(lj, true))
	}
	w := ts.MustCat(cols, 1)
	// M[I, :i1] = L[i0:, I]ᵀ·W[i0:, :i1], the rows of I up to the diagonal.
	m := ts.MustZeros([]int64{d, d}, gotch.Double, gotch.CPU)
	for i0 := int64(0); i0 < d; i0 += congruenceBlock {
		n := min(congruenceBlock, d-i0)
		li := l.MustNarrow(0, i0, d-i0, false).MustNarrow(1, i0, n, true).MustTranspose(0, 1, true)
		block := li.MustMatmul(w.MustNarrow(0, i0, d-i0, false).MustNarrow(1, 0, i0+n, true), true)
		m.MustNarrow(0, i0, n, false).MustNarrow(1, 0, i0+n, true).Copy_(block)
	}
	return m
}

// factorization is F with F·Fᵀ = a, the symmetrised sigma + offset·I.
type factorization struct {
	a, f     *ts.Tensor // d×d, d×rank
	rank     int
	cholesky bool // f is a's lower-triangular Cholesky factor (rank d)
}

// factor factorises the symmetrised sigma + offset·I: its Cholesky factor
// when that succeeds (rank d), else V·sqrt(Λ) over the eigenvalues above
// d·ε·λmax, which is the numerical rank. A sigma with an eigenvalue below
// −psdTol·(largest variance) is not a covariance.
func factor(s *Stats, offset float64, name string) (*factorization, error) {
	d := s.Dim()
	raw := s.Sigma.RawMatrix()
	a := make([]float64, d*d)
	var maxDiag, maxAsym float64
	// (sigma + sigmaᵀ)/2, in tiles so that the column reads stay in cache.
	const tile = 64
	for i0 := 0; i0 < d; i0 += tile {
		for j0 := 0; j0 <= i0; j0 += tile {
			for i := i0; i < min(i0+tile, d); i++ {
				row := raw.Data[i*raw.Stride:]
				for j := j0; j < min(j0+tile, i+1); j++ {
					x, y := row[j], raw.Data[j*raw.Stride+i]
					a[i*d+j] = (x + y) / 2
					a[j*d+i] = a[i*d+j]
					maxAsym = math.Max(maxAsym, math.Abs(x-y))
				}
			}
		}
	}
	for i := 0; i < d; i++ {
		a[i*d+i] += offset
		maxDiag = math.Max(maxDiag, a[i*d+i])
	}
	if maxAsym > 1e-6*maxDiag {
		return nil, fmt.Errorf("fid: %s sigma is not symmetric (entries differ from their transpose by up to %v); it is not a covariance matrix", name, maxAsym)
	}
	t, err := float64Tensor(a, int64(d), int64(d))
	if err != nil {
		return nil, err
	}
	l, info := t.MustLinalgCholeskyEx(false, false, false)
	if info.Int64Values()[0] == 0 {
		return &factorization{a: t, f: l, rank: d, cholesky: true}, nil
	}
	// Singular (fewer samples than dimensions) or not a covariance.
	lambda, v, err := t.LinalgEigh("L", false)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errRetry, err)
	}
	if !allFinite(lambda) {
		return nil, fmt.Errorf("%w: the %s sigma's eigenvalues are not finite", errRetry, name)
	}
	ev := lambda.Float64Values() // ascending
	if ev[0] < -psdTol*maxDiag {
		return nil, fmt.Errorf("fid: %s sigma is not positive semidefinite (it has the eigenvalue %v, and variances up to %v); it is not a covariance matrix", name, ev[0], maxDiag)
	}
	tol := float64(d) * 0x1p-52 * ev[d-1]
	first := sort.Search(d, func(i int) bool { return ev[i] > tol })
	fz := &factorization{a: t, rank: d - first}
	if fz.rank > 0 {
		sqrtL := lambda.MustNarrow(0, int64(first), int64(fz.rank), false).MustSqrt(true)
		fz.f = v.MustNarrow(1, int64(first), int64(fz.rank), false).MustMul(sqrtL, true)
	}
	return fz, nil
}
