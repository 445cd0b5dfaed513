package dist

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Two processes, each with its half of a fixed batch, run nn.BatchNorm2d
// forward and backward with the batch-norm sync over AllReduceSumAutograd;
// each compares with one process's fused batch norm over the whole batch
// (computed in the same worker): outputs, its input gradients, the weight
// and bias gradients averaged over the ranks, and the running statistics.
// The same halves without the sync must differ (the rows' statistics
// differ), so the comparison can tell.
func TestSyncBatchNormTwoProcesses(t *testing.T) {
	for r, res := range spawn(t, "syncbn", 2) {
		if res.code != 0 {
			t.Errorf("rank %d exited with %d:\n%s", r, res.code, res.stderr)
		}
	}
}

// bnBatch is a fixed (n, 3, 4, 5) batch whose rows drift (so halves have
// different statistics) and the upstream gradient of the output.
func bnBatch(n int64) (x, up *ts.Tensor) {
	shape := []int64{n, 3, 4, 5}
	xv, gv := make([]float32, n*60), make([]float32, n*60)
	for i := range xv {
		row, c := float64(i/60), float64((i/20)%3)
		xv[i] = float32((c+1)*math.Sin(0.37*float64(i)+c) + 2*c - 1 + 0.4*row)
		gv[i] = float32(math.Cos(0.11*float64(i)) + 0.1*c)
	}
	return ts.MustOfSlice(xv).MustReshape(shape, false), ts.MustOfSlice(gv).MustReshape(shape, false)
}

type bnOut struct{ y, xGrad, wGrad, bGrad, runMean, runVar *ts.Tensor }

// bnStep is one training forward and backward of a fresh nn.BatchNorm2d
// (weight and bias set away from 1 and 0) on x, with loss Σ(y·up)/rows.
func bnStep(x, up *ts.Tensor) (bnOut, error) {
	s := nn.NewStore(gotch.CPU)
	bn, err := nn.NewBatchNorm2d(s.Root().Sub("bn"), 3)
	if err != nil {
		return bnOut{}, err
	}
	ts.NoGrad(func() {
		bn.W.Copy_(ts.MustOfSlice([]float32{1.5, 0.5, -2}))
		bn.B.Copy_(ts.MustOfSlice([]float32{0.1, -1, 3}))
	})
	xl := x.MustDetachCopy(false).MustSetRequiresGrad(true, false)
	y := bn.Forward(xl)
	y.MustMul(up, false).MustSum(gotch.Float, false).MustDivScalar(ts.FloatScalar(float64(x.MustSize()[0])), false).MustBackward()
	return bnOut{y.MustDetach(false), xl.MustGrad(false), bn.W.MustGrad(false), bn.B.MustGrad(false),
		bn.RunningMean.MustDetachCopy(false), bn.RunningVar.MustDetachCopy(false)}, nil
}

// relDiff is max|a−b| / max|b|.
func relDiff(a, b *ts.Tensor) float64 {
	d := a.MustSub(b, false).MustAbs(false).MustMax(false).Float64Values()[0]
	return d / b.MustAbs(false).MustMax(false).Float64Values()[0]
}

func syncBNWorker(env Env) error {
	sc := ts.NewScope()
	defer sc.Close()
	g, err := New(env, "gloo", gotch.CPU, time.Minute)
	if err != nil {
		return err
	}
	const n = 3 // rows per rank
	w := float64(env.WorldSize)
	x, up := bnBatch(n * int64(env.WorldSize))
	mine := func(t *ts.Tensor) *ts.Tensor { return t.MustNarrow(0, int64(env.Rank)*n, n, false) }
	ref, err := bnStep(x, up)
	if err != nil {
		return err
	}
	plain, err := bnStep(mine(x), mine(up))
	if err != nil {
		return err
	}
	if d := relDiff(plain.y, mine(ref.y)); d < 1e-2 {
		return fmt.Errorf("without the sync the output differs by only %.3g from one process's: the test cannot tell", d)
	}
	nn.SetBatchNormSync(func(s *ts.Tensor) *ts.Tensor {
		y, err := g.AllReduceSumAutograd(s)
		if err != nil {
			panic(err)
		}
		return y
	})
	synced, err := bnStep(mine(x), mine(up))
	nn.SetBatchNormSync(nil)
	if err != nil {
		return err
	}
	if err := g.AllReduceMean([]*ts.Tensor{synced.wGrad, synced.bGrad}); err != nil {
		return err
	}
	// Each rank's loss is the mean over its rows, the global loss the mean
	// of the ranks': its input gradient is W times the global one.
	for _, c := range []struct {
		name      string
		got, want *ts.Tensor
	}{
		{"output", synced.y, mine(ref.y)},
		{"input gradient", synced.xGrad, mine(ref.xGrad).MustMulScalar(ts.FloatScalar(w), false)},
		{"weight gradient (averaged)", synced.wGrad, ref.wGrad},
		{"bias gradient (averaged)", synced.bGrad, ref.bGrad},
		{"running mean", synced.runMean, ref.runMean},
		{"running var", synced.runVar, ref.runVar},
	} {
		if d := relDiff(c.got, c.want); !(d <= 1e-5) {
			return fmt.Errorf("%s: relative difference %.3g from one process's batch norm over the whole batch", c.name, d)
		}
	}
	return g.Close()
}

// On a one-process group the differentiable sum is a copy that passes
// the gradient through; a nil tensor and a closed group are errors.
func TestAllReduceSumAutogradOneProcess(t *testing.T) {
	g := singleGlooGroup(t)
	x := ts.MustOfSlice([]float64{1, -2, 3}).MustSetRequiresGrad(true, false)
	y, err := g.AllReduceSumAutograd(x)
	if err != nil {
		t.Fatal(err)
	}
	y.MustMul(ts.MustOfSlice([]float64{4, 5, 6}), false).MustSum(gotch.Double, false).MustBackward()
	if got := fmt.Sprint(y.MustDetach(false).Float64Values(), x.MustGrad(false).Float64Values()); got != "[1 -2 3] [4 5 6]" {
		t.Errorf("sum and gradient over one rank: %s, want [1 -2 3] [4 5 6]", got)
	}
	if _, err := g.AllReduceSumAutograd(nil); err == nil || !strings.Contains(err.Error(), "is nil or freed") {
		t.Errorf("nil tensor: error %v", err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := g.AllReduceSumAutograd(x); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("closed group: error %v", err)
	}
}
