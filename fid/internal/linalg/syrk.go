package linalg

// tile is the column-block width of the lower-triangular updates; the
// diagonal blocks are computed whole, wasting tile²/2 per block.
const tile = 192

// SyrkLower computes the lower triangle of C += alpha·op(A)·op(A)ᵀ, where
// op(A) = A (n×k) or, with trans, Aᵀ (A is k×n). The strict upper triangle
// of C's diagonal blocks is overwritten with scratch.
func SyrkLower(trans bool, n, k int, alpha float64, a []float64, lda int, c []float64, ldc int) {
	for j0 := 0; j0 < n; j0 += tile {
		jb := min(tile, n-j0)
		// C[j0:n, j0:j0+jb] += alpha·op(A)[j0:n, :]·op(A)[j0:j0+jb, :]ᵀ
		if trans {
			Gemm(true, false, n-j0, jb, k, alpha, a[j0*lda:], lda, a[j0*lda:], lda, c[j0+j0*ldc:], ldc)
		} else {
			Gemm(false, true, n-j0, jb, k, alpha, a[j0:], lda, a[j0:], lda, c[j0+j0*ldc:], ldc)
		}
	}
}
