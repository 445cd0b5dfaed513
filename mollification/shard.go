package mollification

import (
	"fmt"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Shard makes a mollifier for one rank of a data-parallel run whose
// batches are each rank's contiguous slice of a global batch (rank·n
// onwards, n rows per rank, as data shards them). Its noise is keyed per
// global row: it mollifies the whole global batch (the slice at its place,
// zeros elsewhere) with the same generator draws a one-process run makes,
// and keeps the slice, so one seed gives the same noise for any world
// size. The cost is world× the Gaussian's few elementwise kernels and one
// global batch of memory per step, small beside the model's step. Blur and
// None draw no noise and act per example: they (and world 1) return m
// itself.
func Shard(m Mollifier, rank, world int) (Mollifier, error) {
	if m == nil {
		return nil, fmt.Errorf("mollification: Shard needs a mollifier")
	}
	if world < 1 || rank < 0 || rank >= world {
		return nil, fmt.Errorf("mollification: rank %d of a world of %d processes (want 0 <= rank < world)", rank, world)
	}
	switch m.(type) {
	case None, *Blur:
		return m, nil
	}
	if world == 1 {
		return m, nil
	}
	s := sharded{Mollifier: m, rank: rank, world: world}
	if l, ok := m.(Leveled); ok {
		return leveledShard{s, l}, nil
	}
	return s, nil
}

type sharded struct {
	Mollifier
	rank, world int
}

// global places x (n rows) at rows rank·n.. of a zero batch of world·n
// rows; place takes this rank's rows back out.
func (s sharded) global(x *ts.Tensor) (*ts.Tensor, int64) {
	shape := x.MustSize()
	n := shape[0]
	dev := x.MustDevice()
	parts := make([]*ts.Tensor, 0, 3)
	rest := shape[1:]
	if before := int64(s.rank) * n; before > 0 {
		parts = append(parts, ts.MustZeros(append([]int64{before}, rest...), x.DType(), dev))
	}
	parts = append(parts, x)
	if after := int64(s.world-1-s.rank) * n; after > 0 {
		parts = append(parts, ts.MustZeros(append([]int64{after}, rest...), x.DType(), dev))
	}
	return ts.MustCat(parts, 0), n
}

func (s sharded) place(y *ts.Tensor, n int64) *ts.Tensor {
	return y.MustNarrow(0, int64(s.rank)*n, n, false)
}

// Mollify mollifies this rank's slice with its rows of the global noise.
func (s sharded) Mollify(x *ts.Tensor, step int) (out *ts.Tensor, info Info, err error) {
	if err := checkStep(step); err != nil {
		return nil, Info{}, err
	}
	if info = s.At(step); !info.Active {
		return s.Mollifier.Mollify(x, step)
	}
	defer recoverTorch(&err, "sharded mollification")
	sc := ts.NewScope()
	defer sc.Close()
	g, n := s.global(x)
	y, info, err := s.Mollifier.Mollify(g, step)
	if err != nil {
		return nil, info, err
	}
	out = s.place(y, n)
	sc.Keep(out)
	return out, info, nil
}

// leveledShard is a sharded Leveled mollifier (the captured step).
type leveledShard struct {
	sharded
	leveled Leveled
}

func (l leveledShard) NewLevel(device gotch.Device) (*ts.Tensor, error) {
	return l.leveled.NewLevel(device)
}

func (l leveledShard) SetLevel(lvl *ts.Tensor, step int) (Info, error) {
	return l.leveled.SetLevel(lvl, step)
}

// MollifyLevel is Mollify at the level held in lvl: no host reads, so
// it can be captured.
func (l leveledShard) MollifyLevel(x, lvl *ts.Tensor) (out *ts.Tensor, err error) {
	defer recoverTorch(&err, "sharded mollification")
	sc := ts.NewScope()
	defer sc.Close()
	g, n := l.global(x)
	y, err := l.leveled.MollifyLevel(g, lvl)
	if err != nil {
		return nil, err
	}
	out = l.place(y, n)
	sc.Keep(out)
	return out, nil
}
