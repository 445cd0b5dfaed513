package linalg

// axpyDotGo does y += alpha·a and returns a·x, reading a once.
func axpyDotGo(alpha float64, a, x, y []float64) float64 {
	n := len(a)
	x, y = x[:n], y[:n]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= n; i += 4 {
		a0, a1, a2, a3 := a[i], a[i+1], a[i+2], a[i+3]
		y[i] += alpha * a0
		y[i+1] += alpha * a1
		y[i+2] += alpha * a2
		y[i+3] += alpha * a3
		s0 += a0 * x[i]
		s1 += a1 * x[i+1]
		s2 += a2 * x[i+2]
		s3 += a3 * x[i+3]
	}
	for ; i < n; i++ {
		y[i] += alpha * a[i]
		s0 += a[i] * x[i]
	}
	return (s0 + s1) + (s2 + s3)
}
