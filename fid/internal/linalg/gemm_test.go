package linalg

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func randSlice(r *rand.Rand, n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = r.Float64()*2 - 1
	}
	return s
}

// naiveGemm is the reference: C += alpha·op(A)·op(B), column-major.
func naiveGemm(transA, transB bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, c []float64, ldc int) {
	at := func(i, p int) float64 {
		if transA {
			return a[p+i*lda]
		}
		return a[i+p*lda]
	}
	bt := func(p, j int) float64 {
		if transB {
			return b[j+p*ldb]
		}
		return b[p+j*ldb]
	}
	for j := 0; j < n; j++ {
		for i := 0; i < m; i++ {
			var s float64
			for p := 0; p < k; p++ {
				s += at(i, p) * bt(p, j)
			}
			c[i+j*ldc] += alpha * s
		}
	}
}

func TestGemmMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	shapes := [][3]int{{1, 1, 1}, {8, 6, 1}, {7, 5, 3}, {9, 13, 17}, {144, 6, 256}, {145, 7, 257}, {300, 200, 520}, {3, 3100, 5},
		{811, 10, 300}, {10, 811, 300}} // the last two run in parallel, split by rows and by columns
	for _, sh := range shapes {
		for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
			m, n, k := sh[0], sh[1], sh[2]
			t.Run(fmt.Sprintf("%dx%dx%d_tA%v_tB%v", m, n, k, tr[0], tr[1]), func(t *testing.T) {
				lda, ldb, ldc := m+3, k+1, m+2
				if tr[0] {
					lda = k + 3
				}
				if tr[1] {
					ldb = n + 1
				}
				acols, bcols := k, n
				if tr[0] {
					acols = m
				}
				if tr[1] {
					bcols = k
				}
				a := randSlice(r, lda*acols)
				b := randSlice(r, ldb*bcols)
				c := randSlice(r, ldc*n)
				want := append([]float64(nil), c...)
				naiveGemm(tr[0], tr[1], m, n, k, -0.75, a, lda, b, ldb, want, ldc)
				Gemm(tr[0], tr[1], m, n, k, -0.75, a, lda, b, ldb, c, ldc)
				for j := 0; j < n; j++ {
					for i := 0; i < ldc; i++ {
						got, w := c[i+j*ldc], want[i+j*ldc]
						if math.Abs(got-w) > 1e-12*float64(k+1) {
							t.Fatalf("C[%d,%d] = %v, want %v", i, j, got, w)
						}
					}
				}
			})
		}
	}
}

func TestKernelGoMatchesAssembly(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	kb := 37
	a, b := randSlice(r, kb*mr), randSlice(r, kb*nr)
	c1 := randSlice(r, 10*nr)
	c2 := append([]float64(nil), c1...)
	kernelGo(kb, a, b, c1, 10)
	kernel(kb, a, b, c2, 10)
	for i := range c1 {
		if math.Abs(c1[i]-c2[i]) > 1e-13 {
			t.Fatalf("element %d: go %v, kernel %v", i, c1[i], c2[i])
		}
	}
}

func BenchmarkGemm2048(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	n := 2048
	x, y, c := randSlice(r, n*n), randSlice(r, n*n), make([]float64, n*n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		Gemm(false, false, n, n, n, 1, x, n, y, n, c, n)
	}
	b.ReportMetric(2*float64(n*n*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
}

func TestAxpyDotMatchesGo(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, n := range []int{1, 3, 4, 5, 16, 17, 35, 64, 1000} {
		a, x := randSlice(r, n), randSlice(r, n)
		y1 := randSlice(r, n)
		y2 := append([]float64(nil), y1...)
		d1 := axpyDotGo(0.3, a, x, y1)
		d2 := axpyDot(0.3, a, x, y2)
		if math.Abs(d1-d2) > 1e-13*float64(n) {
			t.Fatalf("n=%d: dot %v, want %v", n, d2, d1)
		}
		for i := range y1 {
			if math.Abs(y1[i]-y2[i]) > 1e-15 {
				t.Fatalf("n=%d: y[%d] = %v, want %v", n, i, y2[i], y1[i])
			}
		}
	}
}
