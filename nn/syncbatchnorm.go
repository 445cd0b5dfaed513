package nn

import (
	"fmt"
	"sync/atomic"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// batchNormSum is the differentiable sum over the ranks that synchronises
// batch norm during a data-parallel training step (torch's SyncBatchNorm);
// nil is off. Process-wide, like the row shard, because a process is one
// rank.
var batchNormSum atomic.Pointer[func(*ts.Tensor) *ts.Tensor]

// SetBatchNormSync makes batch norms in training mode normalise with the
// statistics of the global batch: sum returns its argument summed over the
// ranks, recorded in the autograd graph so that its backward sums the
// gradient over the ranks (dist.Group.AllReduceSumAutograd). Like gotch's
// Must ops it panics when the collective fails. The trainer sets it around
// a data-parallel training step (distributed.sync_batchnorm) and sets nil,
// off, before hooks run.
func SetBatchNormSync(sum func(*ts.Tensor) *ts.Tensor) {
	if sum == nil {
		batchNormSum.Store(nil)
		return
	}
	batchNormSum.Store(&sum)
}

// BatchNormSynced reports whether SetBatchNormSync is on.
func BatchNormSynced() bool { return batchNormSum.Load() != nil }

// BatchNorm is the batch norm of BatchNorm2d and nvae.BatchNorm over x
// (N, C, H, W; or any (N, C, ...), as torch's) with per-channel weight w
// and bias b and running statistics moved by momentum. Without a sync, or not training, it is exactly
// ts.MustBatchNorm. With one (SetBatchNormSync) and training, it is
// torch's SyncBatchNorm: the per-channel Σx, Σx² and count are summed over
// the ranks in one collective, in float64; the global mean and biased
// variance normalise x in its dtype, and the running statistics move by
// momentum towards the mean and the unbiased variance, as torch does.
func BatchNorm(x, w, b, runMean, runVar *ts.Tensor, training bool, momentum, eps float64) *ts.Tensor {
	if p := batchNormSum.Load(); p != nil && training {
		return syncedBatchNorm(*p, x, w, b, runMean, runVar, momentum, eps)
	}
	return ts.MustBatchNorm(x, w, b, runMean, runVar, training, momentum, eps, true)
}

func syncedBatchNorm(sum func(*ts.Tensor) *ts.Tensor, x, w, b, runMean, runVar *ts.Tensor, momentum, eps float64) *ts.Tensor {
	shape := x.MustSize()
	if len(shape) < 2 {
		panic(fmt.Errorf("nn: batch norm needs (N, C, ...) input, got shape %v", shape))
	}
	c := shape[1]
	// Statistics over every dimension but the channels'.
	dims := []int64{0}
	perChannel := []int64{1, c}
	for i := 2; i < len(shape); i++ {
		dims = append(dims, int64(i))
		perChannel = append(perChannel, 1)
	}
	// This rank's Σx and Σx² in float64, from sums in x's dtype of x
	// shifted by its own (constant) channel means, so that Σ(x−k)² does
	// not cancel the way Σx² − (Σx)²/n would; no float64 copy of x.
	rows := float64(x.Numel() / uint(c))
	k := x.MustDetach(false).MustMeanDim(dims, true, x.DType(), false)
	d := x.MustSub(k, false)
	d1 := d.MustSumDimIntlist(dims, false, x.DType(), false).MustTotype(gotch.Double, false)
	d2 := d.MustSquare(false).MustSumDimIntlist(dims, false, x.DType(), false).MustTotype(gotch.Double, false)
	k64 := k.MustReshape([]int64{c}, false).MustTotype(gotch.Double, false)
	// Σx = n·k + Σd, Σx² = Σd² + 2k·Σd + n·k².
	s1 := k64.MustMulScalar(ts.FloatScalar(rows), false).MustAdd(d1, false)
	s2 := d2.MustAdd(k64.MustMul(d1, false).MustMulScalar(ts.FloatScalar(2), false), false).
		MustAdd(k64.MustSquare(false).MustMulScalar(ts.FloatScalar(rows), false), false)
	// Filled on x's device: no host-to-device copy per layer and step.
	count := ts.MustFull([]int64{1}, ts.FloatScalar(rows), gotch.Double, x.MustDevice())
	// One collective for all three: each is a round trip per layer.
	all := sum(ts.MustCat([]*ts.Tensor{s1, s2, count}, 0))
	n := all.MustNarrow(0, 2*c, 1, false)
	mean := all.MustNarrow(0, 0, c, false).MustDiv(n, false)
	meanSq := all.MustNarrow(0, c, c, false).MustDiv(n, false)
	variance := meanSq.MustSub(mean.MustSquare(false), false)

	// y = (x − mean)·scale + b with scale = w/√(var+ε): three passes
	// over x. (x·scale + shift would be one fewer, but its weight gradient
	// Σg·x − mean·Σg cancels in float32 when |mean| ≫ std.)
	scale := variance.MustAddScalar(ts.FloatScalar(eps), false).MustRsqrt(false)
	if w != nil {
		scale = scale.MustMul(w.MustTotype(gotch.Double, false), false)
	}
	dt := x.DType()
	y := x.MustSub(mean.MustTotype(dt, false).MustView(perChannel, false), false).
		MustMul(scale.MustTotype(dt, false).MustView(perChannel, false), false)
	if b != nil {
		y = y.MustAdd(b.MustView(perChannel, false), false)
	}
	if runMean != nil && runVar != nil {
		ts.NoGrad(func() {
			// torch: running = (1 - momentum)·running + momentum·batch,
			// with the unbiased variance (·N/(N−1)).
			unbiased := variance.MustMul(n, false).MustDiv(n.MustSubScalar(ts.FloatScalar(1), false), false)
			moveTowards(runMean, mean, momentum)
			moveTowards(runVar, unbiased, momentum)
		})
	}
	return y
}

// moveTowards sets running to (1 − momentum)·running + momentum·batch in
// place.
func moveTowards(running, batch *ts.Tensor, momentum float64) {
	step := batch.MustDetach(false).MustTotype(running.DType(), false).MustMulScalar(ts.FloatScalar(momentum), false)
	running.MustMulScalar_(ts.FloatScalar(1 - momentum))
	running.MustAdd_(step)
}
