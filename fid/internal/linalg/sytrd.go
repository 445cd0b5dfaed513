package linalg

import (
	"errors"
	"runtime"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/lapack/gonum"
)

const (
	trdBlock = 32  // panel width of the blocked reduction
	trdCross = 128 // below this order the rest is reduced unblocked
)

var lapackImpl gonum.Implementation

// ErrNoConvergence is returned when the tridiagonal QL/QR iteration fails.
var ErrNoConvergence = errors.New("linalg: symmetric eigenvalue iteration did not converge")

// SymEigvals returns the eigenvalues of the symmetric n×n matrix whose lower
// triangle is in a (column-major), in no particular order. a is destroyed.
func SymEigvals(n int, a []float64, lda int) ([]float64, error) {
	d := make([]float64, n)
	e := make([]float64, max(n-1, 0))
	Sytrd(n, a, lda, d, e)
	if !lapackImpl.Dsterf(n, d, e) {
		return nil, ErrNoConvergence
	}
	return d, nil
}

// Sytrd reduces the symmetric matrix in the lower triangle of a to
// tridiagonal form Qᵀ·A·Q = T by Householder reflectors (dsytrd 'L'),
// returning T's diagonal in d and off-diagonal in e. Only T is kept: the
// reflectors are left in a and their scalars discarded.
func Sytrd(n int, a []float64, lda int, d, e []float64) {
	if n == 0 {
		return
	}
	ldw := n
	w := make([]float64, ldw*trdBlock)
	// vw = [V W] and wv = [W V], so one GEMM of depth 2·nb does the update.
	vw := make([]float64, n*2*trdBlock)
	wv := make([]float64, n*2*trdBlock)
	i := 0
	for ; n-i > trdCross; i += trdBlock {
		m := n - i
		latrd(m, trdBlock, a[i+i*lda:], lda, e[i:], w, ldw)
		// A[i+nb:n, i+nb:n] -= V·Wᵀ + W·Vᵀ
		r := m - trdBlock
		for j := 0; j < trdBlock; j++ {
			v := a[i+trdBlock+(i+j)*lda : n+(i+j)*lda]
			wj := w[trdBlock+j*ldw : m+j*ldw]
			copy(vw[j*r:(j+1)*r], v)
			copy(vw[(trdBlock+j)*r:(trdBlock+j+1)*r], wj)
			copy(wv[j*r:(j+1)*r], wj)
			copy(wv[(trdBlock+j)*r:(trdBlock+j+1)*r], v)
		}
		for j0 := 0; j0 < r; j0 += tile {
			jb := min(tile, r-j0)
			Gemm(false, true, r-j0, jb, 2*trdBlock, -1, vw[j0:], r, wv[j0:], r, a[(i+trdBlock+j0)*(lda+1):], lda)
		}
		for j := i; j < i+trdBlock; j++ {
			a[j+1+j*lda] = e[j]
			d[j] = a[j+j*lda]
		}
	}
	sytd2(n-i, a[i+i*lda:], lda, d[i:], e[i:])
}

// latrd reduces the first nb columns of the m×m lower matrix a and returns
// in w (m×nb) the matrix W for the update A -= V·Wᵀ + W·Vᵀ (dlatrd 'L').
func latrd(m, nb int, a []float64, lda int, e, w []float64, ldw int) {
	bi := blas64.Implementation()
	for i := 0; i < nb; i++ {
		col := a[i+i*lda : m+i*lda]
		if i > 0 {
			// A[i:m, i] -= A[i:m, 0:i]·W[i, 0:i]ᵀ + W[i:m, 0:i]·A[i, 0:i]ᵀ
			bi.Dgemv(blas.Trans, i, m-i, -1, a[i:], lda, w[i:], ldw, 1, col, 1)
			bi.Dgemv(blas.Trans, i, m-i, -1, w[i:], ldw, a[i:], lda, 1, col, 1)
		}
		if i == m-1 {
			break
		}
		// Reflector H(i) annihilating A[i+2:m, i].
		v := a[i+1+i*lda : m+i*lda]
		beta, tau := lapackImpl.Dlarfg(m-i-1, v[0], v[1:], 1)
		e[i] = beta
		v[0] = 1
		mm := m - i - 1
		wi := w[i+1+i*ldw : m+i*ldw]
		symvLower(mm, a[(i+1)*(lda+1):], lda, v, wi)
		if i > 0 {
			tmp := w[i*ldw : i*ldw+i] // W[0:i, i], free until set below
			// tmp = W[i+1:m, 0:i]ᵀ·v ; wi -= A[i+1:m, 0:i]·tmp
			bi.Dgemv(blas.NoTrans, i, mm, 1, w[i+1:], ldw, v, 1, 0, tmp, 1)
			bi.Dgemv(blas.Trans, i, mm, -1, a[i+1:], lda, tmp, 1, 1, wi, 1)
			// tmp = A[i+1:m, 0:i]ᵀ·v ; wi -= W[i+1:m, 0:i]·tmp
			bi.Dgemv(blas.NoTrans, i, mm, 1, a[i+1:], lda, v, 1, 0, tmp, 1)
			bi.Dgemv(blas.Trans, i, mm, -1, w[i+1:], ldw, tmp, 1, 1, wi, 1)
		}
		bi.Dscal(mm, tau, wi, 1)
		alpha := -0.5 * tau * bi.Ddot(mm, wi, 1, v, 1)
		bi.Daxpy(mm, alpha, v, 1, wi, 1)
	}
}

// sytd2 is the unblocked reduction (dsytd2 'L') for the trailing part.
func sytd2(n int, a []float64, lda int, d, e []float64) {
	bi := blas64.Implementation()
	x := make([]float64, n)
	for i := 0; i < n-1; i++ {
		v := a[i+1+i*lda : n+i*lda]
		beta, tau := lapackImpl.Dlarfg(n-i-1, v[0], v[1:], 1)
		e[i] = beta
		if tau != 0 {
			v[0] = 1
			mm := n - i - 1
			xs := x[:mm]
			symvLower(mm, a[(i+1)*(lda+1):], lda, v, xs)
			bi.Dscal(mm, tau, xs, 1)
			alpha := -0.5 * tau * bi.Ddot(mm, xs, 1, v, 1)
			bi.Daxpy(mm, alpha, v, 1, xs, 1)
			// A22 -= v·xᵀ + x·vᵀ (lower)
			a22 := a[(i+1)*(lda+1):]
			for j := 0; j < mm; j++ {
				cj := a22[j+j*lda : mm+j*lda]
				vj, xj := v[j], xs[j]
				for r := range cj {
					cj[r] -= v[j+r]*xj + xs[j+r]*vj
				}
			}
			v[0] = beta
		}
		d[i] = a[i+i*lda]
	}
	d[n-1] = a[(n-1)*(lda+1)]
}

// symvLower sets y = A·x for the symmetric m×m matrix in the lower triangle
// of a, reading each column once. It is memory-bound; the columns are split
// into parts of equal area that run on the pool, each summing into its own
// y, since any column touches y below it.
func symvLower(m int, a []float64, lda int, x, y []float64) {
	parts := min(runtime.GOMAXPROCS(0), 4)
	if m < 384 || parts == 1 {
		clear(y[:m])
		symvCols(0, m, m, a, lda, x, y)
		return
	}
	var bounds [5]int
	var ys [4][]float64
	total := float64(m) * float64(m+1) / 2
	j := 0
	for p := 1; p < parts; p++ {
		for j < m && float64(j)*(2*float64(m)-float64(j)+1)/2 < total*float64(p)/float64(parts) {
			j++
		}
		bounds[p] = j
	}
	bounds[parts] = m
	buf := getBuf((parts - 1) * m)
	defer putBuf(buf)
	ys[0] = y[:m]
	for p := 1; p < parts; p++ {
		ys[p] = (*buf)[(p-1)*m : p*m]
	}
	parallel(parts, func(p int) {
		clear(ys[p][bounds[p]:])
		symvCols(bounds[p], bounds[p+1], m, a, lda, x, ys[p])
	})
	for p := 1; p < parts; p++ {
		yy := y[bounds[p]:m]
		for i, v := range ys[p][bounds[p]:m] {
			yy[i] += v
		}
	}
}

// symvCols adds the contribution of columns j0..j1-1 of the lower triangle
// to y = A·x. A column j touches y[j:m] only.
func symvCols(j0, j1, m int, a []float64, lda int, x, y []float64) {
	for j := j0; j < j1; j++ {
		col := a[j+j*lda : m+j*lda]
		xj := x[j]
		y[j] += col[0] * xj
		y[j] += axpyDot(xj, col[1:], x[j+1:m], y[j+1:m])
	}
}
