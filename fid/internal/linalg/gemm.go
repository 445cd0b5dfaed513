package linalg

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Micro-tile and cache blocking. A micro-tile of C is mr rows (contiguous in
// a column) by nr columns; mc×kc of packed A stays in L2, kc×nc of packed B
// in L3.
const (
	mr = 8
	nr = 6
	kc = 256
	mc = 144
	nc = 3072
)

// parallelFlops is the work (m·n·k) above which Gemm uses all Ps.
const parallelFlops = 1 << 21

// Gemm computes C += alpha·op(A)·op(B) for column-major matrices, where
// op(X) is X or Xᵀ (transA, transB), op(A) is m×k, op(B) is k×n and C is m×n.
func Gemm(transA, transB bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, c []float64, ldc int) {
	if m == 0 || n == 0 || k == 0 || alpha == 0 {
		return
	}
	workers := 1
	if m*n*k >= parallelFlops {
		workers = runtime.GOMAXPROCS(0)
	}
	nBlocksM := (m + mc - 1) / mc
	if workers > nBlocksM {
		workers = nBlocksM
	}
	bp := getBuf(kc * roundUp(min(n, nc), nr))
	defer putBuf(bp)
	aps := make([]*[]float64, workers)
	for w := range aps {
		aps[w] = getBuf(roundUp(min(m, mc), mr) * kc)
	}
	defer func() {
		for _, ap := range aps {
			putBuf(ap)
		}
	}()
	for jc := 0; jc < n; jc += nc {
		nb := min(nc, n-jc)
		for pc := 0; pc < k; pc += kc {
			kb := min(kc, k-pc)
			packB(transB, kb, nb, b, ldb, pc, jc, *bp)
			block := func(w, ic int) {
				mb := min(mc, m-ic)
				ap := *aps[w]
				packA(transA, mb, kb, alpha, a, lda, ic, pc, ap)
				macroKernel(mb, nb, kb, ap, *bp, c[ic+jc*ldc:], ldc)
			}
			if workers == 1 {
				for ic := 0; ic < m; ic += mc {
					block(0, ic)
				}
				continue
			}
			var next atomic.Int64
			var wg sync.WaitGroup
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					for {
						ic := int(next.Add(1)-1) * mc
						if ic >= m {
							return
						}
						block(w, ic)
					}
				}(w)
			}
			wg.Wait()
		}
	}
}

// macroKernel multiplies packed mb×kb A by packed kb×nb B into C.
func macroKernel(mb, nb, kb int, ap, bp, c []float64, ldc int) {
	var tmp [mr * nr]float64
	for jr := 0; jr < nb; jr += nr {
		nw := min(nr, nb-jr)
		bs := bp[jr*kb:]
		for ir := 0; ir < mb; ir += mr {
			mw := min(mr, mb-ir)
			as := ap[ir*kb:]
			if mw == mr && nw == nr {
				kernel(kb, as, bs, c[ir+jr*ldc:], ldc)
				continue
			}
			clear(tmp[:])
			kernel(kb, as, bs, tmp[:], mr)
			for j := 0; j < nw; j++ {
				col := c[ir+(jr+j)*ldc:]
				for i := 0; i < mw; i++ {
					col[i] += tmp[i+j*mr]
				}
			}
		}
	}
}

// packA copies alpha·op(A)[i0:i0+mb, p0:p0+kb] into strips of mr rows: strip
// s holds, for each p, the mr values of rows s·mr.., zero-padded.
func packA(trans bool, mb, kb int, alpha float64, a []float64, lda, i0, p0 int, dst []float64) {
	for s := 0; s < mb; s += mr {
		w := min(mr, mb-s)
		out := dst[s*kb : s*kb+mr*kb]
		if !trans {
			for p := 0; p < kb; p++ {
				src := a[i0+s+(p0+p)*lda:]
				o := out[p*mr : p*mr+mr]
				for i := 0; i < w; i++ {
					o[i] = alpha * src[i]
				}
				for i := w; i < mr; i++ {
					o[i] = 0
				}
			}
			continue
		}
		if w < mr {
			clear(out)
		}
		for i := 0; i < w; i++ {
			src := a[p0+(i0+s+i)*lda:]
			src = src[:kb]
			for p, v := range src {
				out[p*mr+i] = alpha * v
			}
		}
	}
}

// packB copies op(B)[p0:p0+kb, j0:j0+nb] into strips of nr columns: strip s
// holds, for each p, the nr values of columns s·nr.., zero-padded.
func packB(trans bool, kb, nb int, b []float64, ldb, p0, j0 int, dst []float64) {
	for s := 0; s < nb; s += nr {
		w := min(nr, nb-s)
		out := dst[s*kb : s*kb+nr*kb]
		if trans {
			for p := 0; p < kb; p++ {
				src := b[j0+s+(p0+p)*ldb:]
				o := out[p*nr : p*nr+nr]
				for j := 0; j < w; j++ {
					o[j] = src[j]
				}
				for j := w; j < nr; j++ {
					o[j] = 0
				}
			}
			continue
		}
		if w < nr {
			clear(out)
		}
		for j := 0; j < w; j++ {
			src := b[p0+(j0+s+j)*ldb:]
			src = src[:kb]
			for p, v := range src {
				out[p*nr+j] = v
			}
		}
	}
}

// kernelGo is the portable micro-kernel: C[0:mr, 0:nr] += A·B over kb
// packed steps.
func kernelGo(kb int, a, b, c []float64, ldc int) {
	var acc [mr * nr]float64
	a = a[:kb*mr]
	b = b[:kb*nr]
	for p := 0; p < kb; p++ {
		ap := a[p*mr : p*mr+mr]
		bp := b[p*nr : p*nr+nr]
		for j, bv := range bp {
			col := acc[j*mr : j*mr+mr]
			for i, av := range ap {
				col[i] += av * bv
			}
		}
	}
	for j := 0; j < nr; j++ {
		col := c[j*ldc : j*ldc+mr]
		for i := range col {
			col[i] += acc[j*mr+i]
		}
	}
}

var bufPool sync.Pool

func getBuf(n int) *[]float64 {
	if p, ok := bufPool.Get().(*[]float64); ok && cap(*p) >= n {
		*p = (*p)[:n]
		return p
	}
	s := make([]float64, n)
	return &s
}

func putBuf(p *[]float64) { bufPool.Put(p) }

func roundUp(x, m int) int { return (x + m - 1) / m * m }
