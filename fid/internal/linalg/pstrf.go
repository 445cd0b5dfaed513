package linalg

import (
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

const pstrfBlock = 64

// Pstrf computes the pivoted Cholesky factorisation Pᵀ·A·P = L·Lᵀ of the
// symmetric positive semidefinite n×n matrix A (lower triangle, column-major),
// LAPACK dpstrf('L') blocked. It stops at the first pivot ≤ tol (tol < 0: the
// LAPACK default n·ε·max diag(A)): rank is the number of columns of L, which
// are left in the lower trapezoid of A[:, 0:rank]. piv[i] is the row of A
// that became row i. residual is the largest |entry| of the Schur complement
// left when the factorisation stopped (0 at full rank): for a positive
// semidefinite A it is at most the stopping pivot, so a larger value means A
// was not positive semidefinite. The rest of A is scratch.
func Pstrf(n int, a []float64, lda int, tol float64) (piv []int, rank int, residual float64) {
	piv = make([]int, n)
	for i := range piv {
		piv[i] = i
	}
	if n == 0 {
		return piv, 0, 0
	}
	maxDiag := math.Inf(-1)
	for i := 0; i < n; i++ {
		if d := a[i+i*lda]; d > maxDiag || math.IsNaN(d) {
			maxDiag = d
		}
	}
	if !(maxDiag > 0) {
		return piv, 0, maxAbsLower(n, a, lda)
	}
	dstop := tol
	if tol < 0 {
		dstop = float64(n) * eps * maxDiag
	}
	work := make([]float64, 2*n)
	for k := 0; k < n; k += pstrfBlock {
		jb := min(pstrfBlock, n-k)
		clear(work[k:n])
		for j := k; j < k+jb; j++ {
			pvt, ajj := j, math.Inf(-1)
			for i := j; i < n; i++ {
				if j > k {
					v := a[i+(j-1)*lda]
					work[i] += v * v
				}
				d := a[i+i*lda] - work[i]
				work[n+i] = d
				if d > ajj || math.IsNaN(d) {
					pvt, ajj = i, d
				}
			}
			if ajj <= dstop || math.IsNaN(ajj) {
				// Finish the Schur complement: apply this block's columns.
				m := n - j
				SyrkLower(false, m, j-k, -1, a[j+k*lda:], lda, a[j+j*lda:], lda)
				return piv, j, maxAbsLower(m, a[j+j*lda:], lda)
			}
			if pvt != j {
				a[pvt+pvt*lda] = a[j+j*lda]
				for c := 0; c < j; c++ {
					a[j+c*lda], a[pvt+c*lda] = a[pvt+c*lda], a[j+c*lda]
				}
				for i := pvt + 1; i < n; i++ {
					a[i+j*lda], a[i+pvt*lda] = a[i+pvt*lda], a[i+j*lda]
				}
				for i := j + 1; i < pvt; i++ {
					a[i+j*lda], a[pvt+i*lda] = a[pvt+i*lda], a[i+j*lda]
				}
				work[j], work[pvt] = work[pvt], work[j]
				piv[j], piv[pvt] = piv[pvt], piv[j]
			}
			ajj = math.Sqrt(ajj)
			a[j+j*lda] = ajj
			if j < n-1 {
				m := n - j - 1
				col := a[j+1+j*lda : j+1+j*lda+m]
				if j > k {
					// col -= A[j+1:n, k:j]·A[j, k:j]ᵀ
					blas64.Implementation().Dgemv(blas.Trans, j-k, m, -1, a[j+1+k*lda:], lda, a[j+k*lda:], lda, 1, col, 1)
				}
				s := 1 / ajj
				for i := range col {
					col[i] *= s
				}
			}
		}
		if k+jb < n {
			m := n - k - jb
			SyrkLower(false, m, jb, -1, a[k+jb+k*lda:], lda, a[k+jb+(k+jb)*lda:], lda)
		}
	}
	return piv, n, 0
}

// maxAbsLower is the largest |entry| of a lower triangle; NaN if any is NaN.
func maxAbsLower(n int, a []float64, lda int) float64 {
	var m float64
	for j := 0; j < n; j++ {
		for _, v := range a[j+j*lda : n+j*lda] {
			if math.IsNaN(v) {
				return v
			}
			m = math.Max(m, math.Abs(v))
		}
	}
	return m
}

const eps = 0x1p-53 // LAPACK dlamch('E') for float64
