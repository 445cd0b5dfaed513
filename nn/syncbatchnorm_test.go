package nn

import (
	"fmt"
	"math"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// bnInput is a fixed (n, 3, 4, 5) batch whose channels have different
// means and spreads, plus offset, and the upstream gradient of its output.
func bnInput(n int64, offset float64) (x, g *ts.Tensor) {
	shape := []int64{n, 3, 4, 5}
	size := n * 60
	xv, gv := make([]float32, size), make([]float32, size)
	for i := range xv {
		c := float64((i / 20) % 3)
		xv[i] = float32((c+1)*math.Sin(0.37*float64(i)+c) + 2*c - 1 + offset)
		gv[i] = float32(math.Cos(0.11*float64(i)) + 0.1*c)
	}
	return ts.MustOfSlice(xv).MustReshape(shape, false), ts.MustOfSlice(gv).MustReshape(shape, false)
}

type bnResult struct{ y, xGrad, wGrad, bGrad, runMean, runVar []float64 }

// runBN is one training forward and backward of a batch norm with weight
// and bias set away from 1 and 0, loss Σ(y·g)/N; running stats start at
// torch's zeros and ones.
func runBN(x, g *ts.Tensor, momentum, eps float64) bnResult {
	c := x.MustSize()[1]
	w := ts.MustOfSlice([]float32{1.5, 0.5, -2}).MustSetRequiresGrad(true, false)
	b := ts.MustOfSlice([]float32{0.1, -1, 3}).MustSetRequiresGrad(true, false)
	rm, rv := Zeros([]int64{c}, gotch.CPU), Ones([]int64{c}, gotch.CPU)
	xl := x.MustDetachCopy(false).MustSetRequiresGrad(true, false)
	y := BatchNorm(xl, w, b, rm, rv, true, momentum, eps)
	y.MustMul(g, false).MustSum(gotch.Float, false).MustDivScalar(ts.FloatScalar(float64(x.MustSize()[0])), false).MustBackward()
	v := func(t *ts.Tensor) []float64 {
		return t.MustDetach(false).MustTotype(gotch.Double, false).MustReshape([]int64{-1}, false).Float64Values()
	}
	return bnResult{v(y), v(xl.MustGrad(false)), v(w.MustGrad(false)), v(b.MustGrad(false)), v(rm), v(rv)}
}

// relDiffValues is max|a−b| / max|b|.
func relDiffValues(a, b []float64) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var d, m float64
	for i := range a {
		d = max(d, math.Abs(a[i]-b[i]))
		m = max(m, math.Abs(b[i]))
	}
	return d / m
}

// The synchronised path against torch's fused batch norm, without a
// process group: a sum over one rank is the identity, and over two ranks
// that hold the same rows it doubles (forward and, as the all-reduce's
// backward, the gradient), which is one process's batch norm over the two
// copies stacked. Outputs, gradients and running statistics (with the
// unbiased variance of the global count) agree, for nn.BatchNorm2d's
// momentum and NVAE's.
func TestSyncedBatchNormMatchesFused(t *testing.T) {
	sc := ts.NewScope()
	defer sc.Close()
	for _, c := range []struct {
		name          string
		ranks         int64
		momentum, eps float64
		offset        float64
		flat          bool // (N·H·W, C) input instead of NCHW
	}{
		{"one rank", 1, 0.1, 1e-5, 0, false},
		{"two equal ranks", 2, 0.1, 1e-5, 0, false},
		{"two equal ranks, NVAE's momentum", 2, 0.05, 1e-3, 0, false},
		// Means 100× the spread: Σx² − (Σx)²/n in float32 would cancel.
		{"two equal ranks, offset 300", 2, 0.1, 1e-5, 300, false},
		{"two equal ranks, (N, C) input", 2, 0.1, 1e-5, 0, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			x, g := bnInput(4, c.offset)
			if c.flat {
				x = x.MustPermute([]int64{0, 2, 3, 1}, false).MustReshape([]int64{-1, 3}, false)
				g = g.MustPermute([]int64{0, 2, 3, 1}, false).MustReshape([]int64{-1, 3}, false)
			}
			xs, gs := make([]*ts.Tensor, c.ranks), make([]*ts.Tensor, c.ranks)
			for i := range xs {
				xs[i], gs[i] = x, g
			}
			want := runBN(ts.MustCat(xs, 0), ts.MustCat(gs, 0), c.momentum, c.eps)
			SetBatchNormSync(func(s *ts.Tensor) *ts.Tensor { return s.MustMulScalar(ts.FloatScalar(float64(c.ranks)), false) })
			defer SetBatchNormSync(nil)
			if !BatchNormSynced() {
				t.Fatal("BatchNormSynced is false after SetBatchNormSync")
			}
			got := runBN(x, g, c.momentum, c.eps)
			rows := len(got.y)
			for _, f := range []struct {
				name      string
				got, want []float64
			}{
				{"output", got.y, want.y[:rows]},
				// Each rank's loss is its own rows' mean: its input
				// gradient is ranks × the global mean's.
				{"input grad", got.xGrad, scaled(want.xGrad[:rows], float64(c.ranks))},
				// Equal ranks: the average over ranks is each one's.
				{"weight grad", got.wGrad, want.wGrad},
				{"bias grad", got.bGrad, want.bGrad},
				{"running mean", got.runMean, want.runMean},
				{"running var", got.runVar, want.runVar},
			} {
				if d := relDiffValues(f.got, f.want); d > 1e-5 {
					t.Errorf("%s: relative difference %.3g\n got %v\nwant %v", f.name, d, head(f.got), head(f.want))
				}
			}
		})
	}
	if BatchNormSynced() {
		t.Error("SetBatchNormSync(nil) left the sync on")
	}
}

func scaled(v []float64, k float64) []float64 {
	out := make([]float64, len(v))
	for i := range v {
		out[i] = k * v[i]
	}
	return out
}

func head(v []float64) string { return fmt.Sprint(v[:min(len(v), 6)]) }

// Without a sync, and in evaluation mode with one, BatchNorm is exactly
// ts.MustBatchNorm (the goldens of the models rest on it).
func TestBatchNormUnsyncedIsFused(t *testing.T) {
	sc := ts.NewScope()
	defer sc.Close()
	x, _ := bnInput(2, 0)
	rm, rv := Zeros([]int64{3}, gotch.CPU), Ones([]int64{3}, gotch.CPU)
	w, b := Ones([]int64{3}, gotch.CPU), Zeros([]int64{3}, gotch.CPU)
	for _, training := range []bool{true, false} {
		for _, synced := range []bool{false, true} {
			if synced && training {
				continue
			}
			if synced {
				SetBatchNormSync(func(s *ts.Tensor) *ts.Tensor { panic("the sync ran in evaluation mode") })
			}
			rm2, rv2 := rm.MustDetachCopy(false), rv.MustDetachCopy(false)
			got := BatchNorm(x, w, b, rm, rv, training, 0.1, 1e-5).MustTotype(gotch.Double, false).Float64Values()
			want := ts.MustBatchNorm(x, w, b, rm2, rv2, training, 0.1, 1e-5, true).MustTotype(gotch.Double, false).Float64Values()
			SetBatchNormSync(nil)
			if fmt.Sprint(got) != fmt.Sprint(want) || fmt.Sprint(rm.MustTotype(gotch.Double, false).Float64Values()) != fmt.Sprint(rm2.MustTotype(gotch.Double, false).Float64Values()) {
				t.Errorf("training=%v synced=%v: not bit-identical to ts.MustBatchNorm", training, synced)
			}
		}
	}
}

// One training forward and backward of a batch norm over (32, 64, 14, 14):
// fused, and the synchronised path with a stand-in sum (the collective
// left out). `OMP_NUM_THREADS=1 go test ./nn -run X -bench BatchNorm`.
func benchBN(b *testing.B, synced bool) {
	x := Randn([]int64{32, 64, 14, 14}, gotch.CPU).MustSetRequiresGrad(true, false)
	w, bb := Ones([]int64{64}, gotch.CPU).MustSetRequiresGrad(true, false), Zeros([]int64{64}, gotch.CPU).MustSetRequiresGrad(true, false)
	rm, rv := Zeros([]int64{64}, gotch.CPU), Ones([]int64{64}, gotch.CPU)
	if synced {
		SetBatchNormSync(func(s *ts.Tensor) *ts.Tensor { return s.MustMulScalar(ts.FloatScalar(1), false) })
		defer SetBatchNormSync(nil)
	}
	for i := 0; i < b.N; i++ {
		sc := ts.NewScope()
		BatchNorm(x, w, bb, rm, rv, true, 0.1, 1e-5).MustSum(gotch.Float, false).MustBackward()
		sc.Close()
	}
}
func BenchmarkBatchNormFused(b *testing.B)  { benchBN(b, false) }
func BenchmarkBatchNormSynced(b *testing.B) { benchBN(b, true) }
