package nn

import (
	"slices"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// offAfter turns the row shard off when the test ends.
func offAfter(t *testing.T) {
	t.Helper()
	t.Cleanup(func() {
		if err := SetRowShard(0, 1); err != nil {
			t.Error(err)
		}
	})
}

func reseed(t *testing.T) {
	t.Helper()
	if err := ts.ManualSeed(1234); err != nil {
		t.Fatal(err)
	}
}

// Under a shard each rank gets its rows of the one-process draw of the
// global batch, and the generator ends where the one-process draw leaves
// it (the next draw is the same): RandnRows (float32) and RandnRowsLike
// (the input's dtype), for several world sizes.
func TestRandnRowsAreTheRanksRowsOfTheGlobalDraw(t *testing.T) {
	offAfter(t)
	sc := ts.NewScope()
	defer sc.Close()
	rest := []int64{3, 2}
	for _, world := range []int{2, 3} {
		const n = 2
		global := append([]int64{int64(world) * n}, rest...)
		local := append([]int64{n}, rest...)
		reseed(t)
		wantRows := ts.MustRandn(global, gotch.Float, gotch.CPU).Float64Values()
		wantLike := ts.MustZeros(global, gotch.Double, gotch.CPU).MustRandnLike(false).Float64Values()
		wantNext := ts.MustRandn([]int64{5}, gotch.Float, gotch.CPU).Float64Values()
		per := n * 3 * 2
		var firsts [][]float64
		for rank := range world {
			if err := SetRowShard(rank, world); err != nil {
				t.Fatal(err)
			}
			if r, w := RowShard(); r != rank || w != world {
				t.Fatalf("RowShard() = %d, %d after SetRowShard(%d, %d)", r, w, rank, world)
			}
			reseed(t)
			rows := RandnRows(local, gotch.CPU)
			like := RandnRowsLike(ts.MustZeros(local, gotch.Double, gotch.CPU))
			next := ts.MustRandn([]int64{5}, gotch.Float, gotch.CPU).Float64Values()
			if !slices.Equal(rows.MustSize(), local) || rows.DType() != gotch.Float {
				t.Fatalf("world %d: RandnRows gave %v %v, want %v float32", world, rows.MustSize(), rows.DType(), local)
			}
			if !slices.Equal(like.MustSize(), local) || like.DType() != gotch.Double {
				t.Fatalf("world %d: RandnRowsLike gave %v %v, want %v float64", world, like.MustSize(), like.DType(), local)
			}
			lo, hi := rank*per, (rank+1)*per
			if got := rows.Float64Values(); !slices.Equal(got, wantRows[lo:hi]) {
				t.Errorf("world %d rank %d: RandnRows = %v, want rows of the global draw %v", world, rank, got, wantRows[lo:hi])
			}
			if got := like.Float64Values(); !slices.Equal(got, wantLike[lo:hi]) {
				t.Errorf("world %d rank %d: RandnRowsLike = %v, want %v", world, rank, got, wantLike[lo:hi])
			}
			if !slices.Equal(next, wantNext) {
				t.Errorf("world %d rank %d: the next draw is %v, want %v (where the one-process draws leave the generator)", world, rank, next, wantNext)
			}
			firsts = append(firsts, rows.Float64Values())
		}
		if slices.Equal(firsts[0], firsts[1]) {
			t.Errorf("world %d: ranks 0 and 1 drew the same noise", world)
		}
	}
}

// World 1 (off) draws exactly what Randn and MustRandnLike draw, so every
// one-process result is unchanged.
func TestRandnRowsWorldOneIsRandn(t *testing.T) {
	offAfter(t)
	sc := ts.NewScope()
	defer sc.Close()
	if err := SetRowShard(1, 2); err != nil {
		t.Fatal(err)
	}
	if err := SetRowShard(0, 1); err != nil {
		t.Fatal(err)
	}
	if r, w := RowShard(); r != 0 || w != 1 {
		t.Fatalf("RowShard() = %d, %d after SetRowShard(0, 1), want 0, 1", r, w)
	}
	shape := []int64{4, 3}
	x := ts.MustZeros(shape, gotch.Double, gotch.CPU)
	reseed(t)
	want := ts.MustRandn(shape, gotch.Float, gotch.CPU).Float64Values()
	wantLike := x.MustRandnLike(false).Float64Values()
	reseed(t)
	got := RandnRows(shape, gotch.CPU).Float64Values()
	gotLike := RandnRowsLike(x).Float64Values()
	if !slices.Equal(got, want) {
		t.Errorf("RandnRows = %v, want Randn's %v", got, want)
	}
	if !slices.Equal(gotLike, wantLike) {
		t.Errorf("RandnRowsLike = %v, want MustRandnLike's %v", gotLike, wantLike)
	}
}

func TestSetRowShardRejectsBadRanks(t *testing.T) {
	offAfter(t)
	if err := SetRowShard(1, 3); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ rank, world int }{{0, 0}, {-1, 2}, {2, 2}, {5, 3}, {0, -1}} {
		err := SetRowShard(c.rank, c.world)
		if err == nil || !strings.Contains(err.Error(), "want world >= 1 and 0 <= rank < world") {
			t.Errorf("SetRowShard(%d, %d) = %v, want an error naming the valid range", c.rank, c.world, err)
		}
		if r, w := RowShard(); r != 1 || w != 3 {
			t.Errorf("a refused SetRowShard(%d, %d) changed the shard to %d of %d", c.rank, c.world, r, w)
		}
	}
}

// A 0-d draw has no rows: under a shard it panics as a Must op does, and
// Recover turns that into an error.
func TestRandnRowsScalarUnderShard(t *testing.T) {
	offAfter(t)
	if err := SetRowShard(0, 2); err != nil {
		t.Fatal(err)
	}
	err := func() (err error) {
		defer Recover(&err)
		sc := ts.NewScope()
		defer sc.Close()
		RandnRows(nil, gotch.CPU)
		return nil
	}()
	if err == nil || !strings.Contains(err.Error(), "0-d tensor has no rows") {
		t.Errorf("RandnRows of a 0-d shape under a shard = %v, want the 0-d error", err)
	}
}
