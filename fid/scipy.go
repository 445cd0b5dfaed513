package fid

import (
	"fmt"
	"math"
	"math/cmplx"

	"gonum.org/v1/gonum/lapack"
	"gonum.org/v1/gonum/lapack/gonum"
	"gonum.org/v1/gonum/mat"
)

// traceSqrtScipy is the Scipy method: pytorch-fid's
//
//	covmean, _ = linalg.sqrtm(sigma1.dot(sigma2), disp=False)
//	... imaginary check ... np.trace(covmean.real)
//
// with scipy 1.10's sqrtm (schur, rsf2csf, _sqrtm_triu) transcribed
// unblocked. A failed square root (scipy's NaN result) returns errRetry.
func traceSqrtScipy(s1, s2 *Stats, offset, imagTol float64, res *Result) (float64, error) {
	d := s1.Dim()
	a1, a2 := mat.DenseCopyOf(s1.Sigma), mat.DenseCopyOf(s2.Sigma)
	for i := 0; i < d; i++ {
		a1.Set(i, i, a1.At(i, i)+offset)
		a2.Set(i, i, a2.At(i, i)+offset)
	}
	var p mat.Dense
	p.Mul(a1, a2)
	t, z, err := realSchur(d, p.RawMatrix().Data)
	if err != nil {
		return 0, err
	}
	// Row-major complex copies of T and Z.
	ct := make([]complex128, d*d)
	cz := make([]complex128, d*d)
	for i := range t {
		ct[i] = complex(t[i], 0)
		cz[i] = complex(z[i], 0)
	}
	isComplex := false
	for i := 1; i < d; i++ {
		if t[i*d+i-1] != 0 {
			isComplex = true
			rsf2csf(d, ct, cz)
			break
		}
	}
	for i := 0; i < d; i++ {
		if real(ct[i*d+i]) < 0 {
			isComplex = true // _sqrtm_triu's keep_it_real is false
		}
	}
	r, ok := sqrtmTriu(d, ct)
	if !ok {
		return math.NaN(), errRetry // scipy: "failed to find the matrix square root"
	}
	// X = Z·R·Zᴴ.
	zr := make([]complex128, d*d)
	for i := 0; i < d; i++ {
		for k := 0; k < d; k++ {
			zik := cz[i*d+k]
			if zik == 0 {
				continue
			}
			rk := r[k*d : k*d+d]
			row := zr[i*d : i*d+d]
			for j := k; j < d; j++ {
				row[j] += zik * rk[j]
			}
		}
	}
	var tr, maxImagDiag, maxImag float64
	for i := 0; i < d; i++ {
		zri := zr[i*d : i*d+d]
		for j := 0; j < d; j++ {
			if !isComplex && j != i {
				continue
			}
			var x complex128
			zj := cz[j*d : j*d+d]
			for k, v := range zri {
				x += v * cmplx.Conj(zj[k])
			}
			if cmplx.IsNaN(x) || cmplx.IsInf(x) {
				return math.NaN(), errRetry
			}
			maxImag = math.Max(maxImag, math.Abs(imag(x)))
			if i == j {
				tr += real(x)
				maxImagDiag = math.Max(maxImagDiag, math.Abs(imag(x)))
			}
		}
	}
	if isComplex {
		res.Imag = maxImagDiag
		if !(maxImagDiag <= imagTol) {
			return 0, &ImaginaryComponentError{MaxImag: maxImag, MaxImagDiag: maxImagDiag}
		}
	}
	return tr, nil
}

// realSchur returns the real Schur form T and vectors Z (row-major d×d) of a,
// A = Z·T·Zᵀ, as LAPACK dgees (scipy.linalg.schur) computes them: permute-only
// balancing, Hessenberg reduction, QR iteration, back-permutation.
func realSchur(d int, a []float64) (t, z []float64, err error) {
	var impl gonum.Implementation
	h := append([]float64(nil), a...)
	scale := make([]float64, d)
	ilo, ihi := impl.Dgebal(lapack.Permute, d, h, d, scale)
	tau := make([]float64, max(d-1, 1))
	work := make([]float64, 1)
	impl.Dgehrd(d, ilo, ihi, h, d, tau, work, -1)
	lwork := max(int(work[0]), d)
	impl.Dorghr(d, ilo, ihi, h, d, tau, work, -1)
	lwork = max(lwork, int(work[0]))
	work = make([]float64, lwork)
	impl.Dgehrd(d, ilo, ihi, h, d, tau, work, lwork)
	z = append([]float64(nil), h...)
	impl.Dorghr(d, ilo, ihi, z, d, tau, work, lwork)
	for i := 2; i < d; i++ {
		clear(h[i*d : i*d+i-1]) // below the first subdiagonal: reflectors, not T
	}
	wr, wi := make([]float64, d), make([]float64, d)
	impl.Dhseqr(lapack.EigenvaluesAndSchur, lapack.SchurOrig, d, ilo, ihi, h, d, wr, wi, z, d, work, -1)
	if need := int(work[0]); need > len(work) {
		work = make([]float64, need)
	}
	if unconv := impl.Dhseqr(lapack.EigenvaluesAndSchur, lapack.SchurOrig, d, ilo, ihi, h, d, wr, wi, z, d, work, len(work)); unconv > 0 {
		return nil, nil, fmt.Errorf("fid: Schur decomposition of Σ1·Σ2 did not converge (%d eigenvalues left)", unconv)
	}
	impl.Dgebak(lapack.Permute, lapack.EVRight, d, ilo, ihi, scale, d, z, d)
	return h, z, nil
}

// rsf2csf turns a real Schur form into a complex one in place, as
// scipy.linalg.rsf2csf: a Givens rotation per 2×2 block.
func rsf2csf(n int, t, z []complex128) {
	const eps = 0x1p-52 // np.finfo(float).eps
	for m := n - 1; m >= 1; m-- {
		sub := t[m*n+m-1]
		if cmplx.Abs(sub) > eps*(cmplx.Abs(t[(m-1)*n+m-1])+cmplx.Abs(t[m*n+m])) {
			a, b, c, dd := t[(m-1)*n+m-1], t[(m-1)*n+m], sub, t[m*n+m]
			half := (a - dd) / 2
			lambda := (a+dd)/2 + cmplx.Sqrt(half*half+b*c)
			mu := lambda - dd
			r := math.Hypot(cmplx.Abs(mu), cmplx.Abs(c))
			g := mu / complex(r, 0)
			s := c / complex(r, 0)
			gc, sc := cmplx.Conj(g), cmplx.Conj(s)
			// T[m-1:m+1, m-1:] = G·T[m-1:m+1, m-1:], G = [[ḡ, s], [−s, g]].
			for j := m - 1; j < n; j++ {
				x, y := t[(m-1)*n+j], t[m*n+j]
				t[(m-1)*n+j] = gc*x + s*y
				t[m*n+j] = -s*x + g*y
			}
			// T[:m+1, m-1:m+1] and Z[:, m-1:m+1] times Gᴴ = [[g, −s̄], [s̄, ḡ]].
			for i := 0; i <= m; i++ {
				x, y := t[i*n+m-1], t[i*n+m]
				t[i*n+m-1] = x*g + y*sc
				t[i*n+m] = -x*sc + y*gc
			}
			for i := 0; i < n; i++ {
				x, y := z[i*n+m-1], z[i*n+m]
				z[i*n+m-1] = x*g + y*sc
				z[i*n+m] = -x*sc + y*gc
			}
		}
		t[m*n+m-1] = 0
	}
}

// sqrtmTriu is scipy's _sqrtm_triu as one block (its within_block_loop):
// the Björck–Hammarling recurrence for the upper triangular root of T.
// ok is false where scipy raises "failed to find the matrix square root".
func sqrtmTriu(n int, t []complex128) (r []complex128, ok bool) {
	r = make([]complex128, n*n)
	for i := 0; i < n; i++ {
		r[i*n+i] = cmplx.Sqrt(t[i*n+i])
	}
	for j := 0; j < n; j++ {
		for i := j - 1; i >= 0; i-- {
			var s complex128
			for k := i + 1; k < j; k++ {
				s += r[i*n+k] * r[k*n+j]
			}
			denom := r[i*n+i] + r[j*n+j]
			num := t[i*n+j] - s
			switch {
			case denom != 0:
				r[i*n+j] = num / denom
			case num == 0:
				r[i*n+j] = 0
			default:
				return nil, false
			}
		}
	}
	return r, true
}
