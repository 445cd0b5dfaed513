package linalg

import "golang.org/x/sys/cpu"

var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// kernelAVX2 is kernelGo in AVX2/FMA assembly; c must hold a full mr×nr
// tile with column stride ldc.
//
//go:noescape
func kernelAVX2(kb int, a, b, c *float64, ldc int)

func kernel(kb int, a, b, c []float64, ldc int) {
	if !useAVX2 || kb == 0 {
		kernelGo(kb, a, b, c, ldc)
		return
	}
	_ = a[kb*mr-1]
	_ = b[kb*nr-1]
	_ = c[(nr-1)*ldc+mr-1]
	kernelAVX2(kb, &a[0], &b[0], &c[0], ldc)
}

//go:noescape
func axpyDotAVX2(alpha float64, a, x, y *float64, n int) float64

func axpyDot(alpha float64, a, x, y []float64) float64 {
	n := len(a)
	if !useAVX2 || n == 0 {
		return axpyDotGo(alpha, a, x, y)
	}
	_, _ = x[n-1], y[n-1]
	return axpyDotAVX2(alpha, &a[0], &x[0], &y[0], n)
}
