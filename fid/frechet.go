package fid

import (
	"errors"
	"fmt"
	"math"

	"github.com/mollify/mollify/fid/internal/linalg"
)

// Method selects how FrechetDistance computes tr sqrt(Σ1·Σ2).
type Method int

const (
	// Symmetric computes tr sqrt(Σ1^½·Σ2·Σ1^½), which equals tr sqrtm(Σ1·Σ2):
	// Σ1·Σ2 is similar to that positive semidefinite matrix, so its
	// eigenvalues are real and ≥ 0 and the trace of its principal square root
	// is the sum of their square roots. The square roots are taken through
	// pivoted Cholesky factors Σi = Fi·Fiᵀ (any factor does: Σ1^½ = F1·U with
	// U orthogonal), so tr sqrt = Σ sqrt(λ(K·Kᵀ)) with K = F1ᵀ·F2, from a
	// symmetric eigendecomposition whose tiny negative eigenvalues (rounding)
	// are clipped to 0. No complex arithmetic, so no "Imaginary component":
	// Result.Imag reports the largest clipped √|λ| instead. Both sigmas must
	// be positive semidefinite. About 1 s for d = 2048 on 2 cores.
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

// psdTol is how large (relative to the largest variance) the remainder of
// the pivoted Cholesky factorisation may be before a sigma is rejected as
// not a covariance; a positive semidefinite matrix leaves rounding there.
// It is loose enough for covariances rounded through float32.
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
	// Rank1 and Rank2 are the numerical ranks of Σ1 and Σ2 found by the
	// pivoted Cholesky factorisation (Symmetric method only).
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

// traceSqrtSymmetric is the Symmetric method.
func traceSqrtSymmetric(s1, s2 *Stats, offset float64, res *Result) (float64, error) {
	d := s1.Dim()
	// The factorisations' panels are serial; run the two side by side.
	var (
		f2   []float64
		piv2 []int
		r2   int
		err2 error
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		f2, piv2, r2, err2 = factor(s2, offset, "second")
	}()
	f1, piv1, r1, err := factor(s1, offset, "first")
	<-done
	if err != nil {
		return 0, err
	}
	if err2 != nil {
		return 0, err2
	}
	res.Rank1, res.Rank2 = r1, r2
	if r1 == 0 || r2 == 0 {
		return 0, nil
	}
	// Σi = Pi·Li·Liᵀ·Piᵀ, so K = (P1L1)ᵀ(P2L2) = L1ᵀ·G with G's row i the
	// row of L2 for original index piv1[i].
	inv2 := make([]int, d)
	for i, p := range piv2 {
		inv2[p] = i
	}
	g := make([]float64, d*r2)
	for j := 0; j < r2; j++ {
		src := f2[j*d : j*d+d]
		dst := g[j*d : j*d+d]
		for i, p := range piv1 {
			dst[i] = src[inv2[p]]
		}
	}
	// K (r1×r2) = L1ᵀ·G; rows i of K only see rows ≥ i of G.
	k := make([]float64, r1*r2)
	const tile = 256
	for i0 := 0; i0 < r1; i0 += tile {
		ib := min(tile, r1-i0)
		linalg.Gemm(true, false, ib, r2, d-i0, 1, f1[i0+i0*d:], d, g[i0:], d, k[i0:], r1)
	}
	// The nonzero eigenvalues of K·Kᵀ and Kᵀ·K agree; take the smaller.
	var m []float64
	n := min(r1, r2)
	m = make([]float64, n*n)
	if r1 <= r2 {
		linalg.SyrkLower(false, r1, r2, 1, k, r1, m, n)
	} else {
		linalg.SyrkLower(true, r2, r1, 1, k, r1, m, n)
	}
	ev, err := linalg.SymEigvals(n, m, n)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errRetry, err)
	}
	var tr, neg float64
	for _, l := range ev {
		if l > 0 {
			tr += math.Sqrt(l)
		} else {
			neg = math.Max(neg, -l)
		}
	}
	res.Imag = math.Sqrt(neg)
	return tr, nil
}

// factor returns the pivoted Cholesky factor L (column-major d×rank, zero
// above the diagonal) of the symmetrised sigma + offset·I.
func factor(s *Stats, offset float64, name string) (l []float64, piv []int, rank int, err error) {
	d := s.Dim()
	raw := s.Sigma.RawMatrix()
	a := make([]float64, d*d)
	var maxDiag, maxAsym float64
	// Column j of the lower triangle averages row j and column j of sigma;
	// in tiles, so the column reads stay in cache.
	const tile = 64
	for j0 := 0; j0 < d; j0 += tile {
		for i0 := j0; i0 < d; i0 += tile {
			for j := j0; j < min(j0+tile, d); j++ {
				row := raw.Data[j*raw.Stride:]
				for i := max(i0, j); i < min(i0+tile, d); i++ {
					x, y := raw.Data[i*raw.Stride+j], row[i]
					a[i+j*d] = (x + y) / 2
					maxAsym = math.Max(maxAsym, math.Abs(x-y))
				}
			}
		}
	}
	for j := 0; j < d; j++ {
		a[j+j*d] += offset
		maxDiag = math.Max(maxDiag, a[j+j*d])
	}
	if maxAsym > 1e-6*maxDiag {
		return nil, nil, 0, fmt.Errorf("fid: %s sigma is not symmetric (entries differ from their transpose by up to %v); it is not a covariance matrix", name, maxAsym)
	}
	piv, rank, residual := linalg.Pstrf(d, a, d, -1)
	if !(residual <= psdTol*maxDiag) {
		return nil, nil, 0, fmt.Errorf("fid: %s sigma is not positive semidefinite (after rank %d of %d its Cholesky remainder has entries up to %v); it is not a covariance matrix", name, rank, d, residual)
	}
	for j := 0; j < rank; j++ {
		clear(a[j*d : j*d+j])
	}
	return a[:d*rank], piv, rank, nil
}
