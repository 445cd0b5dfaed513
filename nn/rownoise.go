package nn

import (
	"fmt"
	"sync/atomic"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// rowShard is this process's place in a data-parallel training step: its
// rows are rank·n .. rank·n+n of a global batch of world·n. Process-wide
// because one process is one rank; nil (or world 1) is off.
type rowShard struct{ rank, world int }

var currentShard atomic.Pointer[rowShard]

// SetRowShard keys the models' own noise (RandnRows, RandnRowsLike) per
// global row: the trainer sets (rank, world) around a data-parallel
// training step and (0, 1), off, before hooks run. It is process-wide
// state, which is sound because a process is one rank.
func SetRowShard(rank, world int) error {
	if world < 1 || rank < 0 || rank >= world {
		return fmt.Errorf("nn: row shard: rank %d of a world of %d processes (want world >= 1 and 0 <= rank < world)", rank, world)
	}
	if world == 1 {
		currentShard.Store(nil)
		return nil
	}
	currentShard.Store(&rowShard{rank: rank, world: world})
	return nil
}

// RowShard returns the current (rank, world); (0, 1) when off.
func RowShard() (rank, world int) {
	if s := currentShard.Load(); s != nil {
		return s.rank, s.world
	}
	return 0, 1
}

// RandnRows is Randn (float32 standard normals of shape, rows first) keyed
// per global row: with a row shard of world W > 1 set it draws
// (W·n, rest...) and returns this rank's rows rank·n .. rank·n+n, which
// are the values a one-process run on the global batch draws for them.
// Off, it draws exactly what Randn draws. Like gotch's Must ops it panics
// on a 0-d shape under a shard (nothing to shard).
func RandnRows(shape []int64, device gotch.Device) *ts.Tensor {
	s := currentShard.Load()
	if s == nil {
		return Randn(shape, device)
	}
	return shardRows(s, shape, func(global []int64) *ts.Tensor {
		return ts.MustRandn(global, gotch.Float, device)
	})
}

// RandnRowsLike is RandnRows for x's shape, dtype and device; off, it is
// exactly x.MustRandnLike.
func RandnRowsLike(x *ts.Tensor) *ts.Tensor {
	s := currentShard.Load()
	if s == nil {
		return x.MustRandnLike(false)
	}
	return shardRows(s, x.MustSize(), func(global []int64) *ts.Tensor {
		return ts.MustRandn(global, x.DType(), x.MustDevice())
	})
}

// shardRows draws the global tensor and narrows it to the rank's rows.
func shardRows(s *rowShard, shape []int64, draw func(global []int64) *ts.Tensor) *ts.Tensor {
	if len(shape) == 0 {
		panic(fmt.Errorf("nn: RandnRows: a 0-d tensor has no rows to key per global row (rank %d of %d)", s.rank, s.world))
	}
	n := shape[0]
	global := append([]int64{int64(s.world) * n}, shape[1:]...)
	return draw(global).MustNarrow(0, int64(s.rank)*n, n, false)
}
