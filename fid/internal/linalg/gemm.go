package linalg

import (
	"runtime"
	"sync"
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

// minChunk is the smallest slice of rows or columns a goroutine takes: below
// it, re-packing the other operand costs more than the parallelism gives.
const minChunk = 192

// Gemm computes C += alpha·op(A)·op(B) for column-major matrices, where
// op(X) is X or Xᵀ (transA, transB), op(A) is m×k, op(B) is k×n and C is m×n.
//
// In parallel, the larger of m and n is cut into chunks that the caller and
// the pool's helpers claim, each running the serial blocked algorithm with
// its own packing buffers: no barriers, and a core slowed by other work
// simply takes fewer chunks.
func Gemm(transA, transB bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, c []float64, ldc int) {
	if m == 0 || n == 0 || k == 0 || alpha == 0 {
		return
	}
	workers := runtime.GOMAXPROCS(0)
	if m*n*k < parallelFlops || workers == 1 || max(m, n) < 2*minChunk {
		gemmSerial(transA, transB, m, n, k, alpha, a, lda, b, ldb, c, ldc)
		return
	}
	splitRows := m >= n
	size, unit := n, nr
	if splitRows {
		size, unit = m, mr
	}
	chunk := roundUp(max(minChunk, size/(2*workers)), unit)
	parallel((size+chunk-1)/chunk, func(task int) {
		i0 := task * chunk
		cnt := min(chunk, size-i0)
		if splitRows {
			off := i0 // row i0 of op(A)
			if transA {
				off = i0 * lda
			}
			gemmSerial(transA, transB, cnt, n, k, alpha, a[off:], lda, b, ldb, c[i0:], ldc)
		} else {
			off := i0 * ldb // column i0 of op(B)
			if transB {
				off = i0
			}
			gemmSerial(transA, transB, m, cnt, k, alpha, a, lda, b[off:], ldb, c[i0*ldc:], ldc)
		}
	})
}

// gemmSerial is the blocked algorithm on one goroutine.
func gemmSerial(transA, transB bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, c []float64, ldc int) {
	bp := getBuf(kc * roundUp(min(n, nc), nr))
	ap := getBuf(roundUp(min(m, mc), mr) * kc)
	defer putBuf(bp)
	defer putBuf(ap)
	for jc := 0; jc < n; jc += nc {
		nb := min(nc, n-jc)
		for pc := 0; pc < k; pc += kc {
			kb := min(kc, k-pc)
			packB(transB, kb, nb, b, ldb, pc, jc, *bp)
			for ic := 0; ic < m; ic += mc {
				mb := min(mc, m-ic)
				packA(transA, mb, kb, alpha, a, lda, ic, pc, *ap)
				macroKernel(mb, nb, kb, *ap, *bp, c[ic+jc*ldc:], ldc)
			}
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
			for i := 0; i < w; i++ {
				src := a[p0+(i0+s+i)*lda:]
				src = src[:kb]
				for p, v := range src {
					out[p*mr+i] = alpha * v
				}
			}
			continue
		}
		// Eight source rows read side by side, one contiguous write stream.
		base := p0 + (i0+s)*lda
		r0, r1, r2, r3 := a[base:base+kb], a[base+lda:base+lda+kb], a[base+2*lda:base+2*lda+kb], a[base+3*lda:base+3*lda+kb]
		r4, r5, r6, r7 := a[base+4*lda:base+4*lda+kb], a[base+5*lda:base+5*lda+kb], a[base+6*lda:base+6*lda+kb], a[base+7*lda:base+7*lda+kb]
		for p := 0; p < kb; p++ {
			o := out[p*mr : p*mr+mr : p*mr+mr]
			o[0], o[1], o[2], o[3] = alpha*r0[p], alpha*r1[p], alpha*r2[p], alpha*r3[p]
			o[4], o[5], o[6], o[7] = alpha*r4[p], alpha*r5[p], alpha*r6[p], alpha*r7[p]
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
			for j := 0; j < w; j++ {
				src := b[p0+(j0+s+j)*ldb:]
				src = src[:kb]
				for p, v := range src {
					out[p*nr+j] = v
				}
			}
			continue
		}
		base := p0 + (j0+s)*ldb
		c0, c1, c2 := b[base:base+kb], b[base+ldb:base+ldb+kb], b[base+2*ldb:base+2*ldb+kb]
		c3, c4, c5 := b[base+3*ldb:base+3*ldb+kb], b[base+4*ldb:base+4*ldb+kb], b[base+5*ldb:base+5*ldb+kb]
		for p := 0; p < kb; p++ {
			o := out[p*nr : p*nr+nr : p*nr+nr]
			o[0], o[1], o[2], o[3], o[4], o[5] = c0[p], c1[p], c2[p], c3[p], c4[p], c5[p]
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
