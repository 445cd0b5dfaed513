//go:build !amd64

package linalg

func kernel(kb int, a, b, c []float64, ldc int) { kernelGo(kb, a, b, c, ldc) }

func axpyDot(alpha float64, a, x, y []float64) float64 { return axpyDotGo(alpha, a, x, y) }
