package linalg

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// randPSD returns a column-major n×n B·Bᵀ/k with B n×k (rank min(n,k)).
func randPSD(r *rand.Rand, n, k int) []float64 {
	b := randSlice(r, n*k)
	c := make([]float64, n*n)
	Gemm(false, true, n, n, k, 1/float64(k), b, n, b, n, c, n)
	return c
}

func TestSymEigvalsMatchesGonum(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{1, 2, 3, 17, 129, 161, 300, 611} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			a := randSlice(r, n*n)
			sym := mat.NewSymDense(n, nil)
			for j := 0; j < n; j++ {
				for i := j; i < n; i++ {
					sym.SetSym(i, j, a[i+j*n])
				}
			}
			// Garbage in the strict upper triangle must be ignored.
			for j := 0; j < n; j++ {
				for i := 0; i < j; i++ {
					a[i+j*n] = math.NaN()
				}
			}
			got, err := SymEigvals(n, a, n)
			if err != nil {
				t.Fatal(err)
			}
			var es mat.EigenSym
			if !es.Factorize(sym, false) {
				t.Fatal("gonum failed")
			}
			want := es.Values(nil)
			slices.Sort(got)
			for i := range want {
				if math.Abs(got[i]-want[i]) > 1e-12*math.Sqrt(float64(n)) {
					t.Fatalf("eigenvalue %d = %v, want %v", i, got[i], want[i])
				}
			}
		})
	}
}

func TestPstrfReconstructs(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	cases := []struct{ n, k, rank int }{{1, 1, 1}, {5, 9, 5}, {70, 200, 70}, {150, 40, 40}, {300, 299, 299}, {300, 900, 300}}
	for _, c := range cases {
		t.Run(fmt.Sprintf("n%d_k%d", c.n, c.k), func(t *testing.T) {
			n := c.n
			orig := randPSD(r, n, c.k)
			a := append([]float64(nil), orig...)
			piv, rank, res := Pstrf(n, a, n, -1)
			if rank != c.rank {
				t.Fatalf("rank %d, want %d", rank, c.rank)
			}
			if res > 1e-12 {
				t.Fatalf("residual %v on a PSD matrix", res)
			}
			l := make([]float64, n*rank)
			for j := 0; j < rank; j++ {
				for i := j; i < n; i++ {
					l[i+j*n] = a[i+j*n]
				}
			}
			llt := make([]float64, n*n)
			Gemm(false, true, n, n, rank, 1, l, n, l, n, llt, n)
			for j := 0; j < n; j++ {
				for i := j; i < n; i++ {
					want := orig[piv[i]+piv[j]*n]
					if math.Abs(llt[i+j*n]-want) > 1e-12 {
						t.Fatalf("(PᵀAP)[%d,%d]: LLᵀ %v, want %v", i, j, llt[i+j*n], want)
					}
				}
			}
		})
	}
}

func TestPstrfReportsIndefinite(t *testing.T) {
	cases := []struct {
		name     string
		n        int
		a        []float64
		rank     int
		residual float64
	}{
		{"negative pivot", 2, []float64{1, 0, 0, -2}, 1, 2},
		{"zero diagonal", 2, []float64{0, 1, 1, 0}, 0, 1},
		// [[1,1,0],[1,1,2],[0,2,1]]: after one step the complement is [[0,2],[2,1]]:
		// the second pivot (1) is fine, then [0 − 2·2/1] = [−4] remains.
		{"coupled", 3, []float64{1, 1, 0, 1, 1, 2, 0, 2, 1}, 2, 4},
		{"zero", 2, []float64{0, 0, 0, 0}, 0, 0},
	}
	for _, c := range cases {
		_, rank, res := Pstrf(c.n, c.a, c.n, -1)
		if rank != c.rank || math.Abs(res-c.residual) > 1e-15 {
			t.Errorf("%s: rank %d residual %v; want %d, %v", c.name, rank, res, c.rank, c.residual)
		}
	}
}

func BenchmarkSymEigvals2048(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	n := 2048
	src := randPSD(r, n, n)
	a := make([]float64, n*n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		copy(a, src)
		if _, err := SymEigvals(n, a, n); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPstrf2048(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	n := 2048
	src := randPSD(r, n, n)
	a := make([]float64, n*n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		copy(a, src)
		Pstrf(n, a, n, -1)
	}
}
