package data

import (
	"bytes"
	"slices"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// The shards of every rank, side by side, are the one-process batch:
// pixels, labels and flips, across epochs and after the short last batch.
func TestLoaderShardsConcatenate(t *testing.T) {
	ds := indexImages(t, 46) // batches of 8: 5 full and one of 6
	for _, world := range []int{2, 4} {
		if world == 4 {
			ds = indexImages(t, 44) // the last batch has 4 rows
		}
		cfg := LoaderConfig{BatchSize: 8, Shuffle: true, HFlip: true, Seed: 5}
		whole, err := NewLoader(ds, cfg)
		if err != nil {
			t.Fatal(err)
		}
		for step := 0; step < 2*whole.BatchesPerEpoch(); step++ {
			e, i := whole.Position(step)
			ref, err := whole.BatchAt(e, i)
			if err != nil {
				t.Fatal(err)
			}
			var pix []uint8
			var labels []int32
			for r := 0; r < world; r++ {
				c := cfg
				c.Rank, c.World = r, world
				l, err := NewLoader(ds, c)
				if err != nil {
					t.Fatal(err)
				}
				b, err := l.BatchAt(e, i)
				if err != nil {
					t.Fatal(err)
				}
				if b.Total != ref.Len() || b.Offset != r*ref.Len()/world || b.Len() != ref.Len()/world {
					t.Fatalf("world %d rank %d step %d: offset %d, %d of %d rows; want a slice of %d", world, r, step, b.Offset, b.Len(), b.Total, ref.Len())
				}
				pix = append(pix, b.Pixels...)
				labels = append(labels, b.Labels...)
			}
			if !bytes.Equal(pix, ref.Pixels) || !slices.Equal(labels, ref.Labels) {
				t.Fatalf("world %d step %d: the shards differ from the whole batch", world, step)
			}
		}
	}
}

func TestShardErrorsNameTheKeys(t *testing.T) {
	ds := indexImages(t, 46)
	for _, tc := range []struct {
		cfg  LoaderConfig
		want string
	}{
		{LoaderConfig{BatchSize: 9, Rank: 0, World: 2}, "data.batch_size 9 (the global batch) does not split over 2 processes"},
		{LoaderConfig{BatchSize: 8, Rank: 1, World: 4}, "partial batch of 6 rows"},
		{LoaderConfig{BatchSize: 8, Rank: 2, World: 2}, "rank 2 of a world of 2"},
	} {
		_, err := NewLoader(ds, tc.cfg)
		mustContain(t, err, tc.want)
	}
	if _, err := NewLoader(ds, LoaderConfig{BatchSize: 8, DropLast: true, Rank: 1, World: 4}); err != nil {
		t.Errorf("drop_last drops the partial batch, but: %v", err)
	}
	pts, err := NewPoints(MoG, 20, 4, 0)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := NewPointBatches(pts.Train, 6, false, 1, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, pb.Shard(0, 4), "data.batch_size 6 (the global batch) does not split over 4 processes")
	mustContain(t, pb.Shard(0, 3), "partial batch of 2 rows", "data.drop_last=true")
}

// The dequantisation noise of a shard is its rows of the whole batch's
// noise under the same seed.
func TestTransformNoiseKeyedByGlobalRow(t *testing.T) {
	ds := indexImages(t, 16)
	cfg := LoaderConfig{BatchSize: 8, Seed: 3}
	tensor := func(rank, world int) []float64 {
		c := cfg
		c.Rank, c.World = rank, world
		l, err := NewLoader(ds, c)
		if err != nil {
			t.Fatal(err)
		}
		b, err := l.BatchAt(0, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := ts.ManualSeed(11); err != nil {
			t.Fatal(err)
		}
		sc := ts.NewScope()
		defer sc.Close()
		x, err := b.Tensor(gotch.CPU, FlowTransform)
		if err != nil {
			t.Fatal(err)
		}
		return x.Float64Values()
	}
	whole := tensor(0, 1)
	split := append(tensor(0, 2), tensor(1, 2)...)
	if !slices.Equal(whole, split) {
		t.Fatal("the two shards' dequantised pixels differ from the whole batch's")
	}
	if slices.Equal(tensor(0, 2), tensor(1, 2)[:len(whole)/2]) {
		t.Fatal("both shards got the same values")
	}
}

func TestPointBatchesShardsConcatenate(t *testing.T) {
	pts, err := NewPoints(MoG, 50, 4, 0)
	if err != nil {
		t.Fatal(err)
	}
	whole, err := NewPointBatches(pts.Train, 8, false, 9, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	shards := make([]*PointBatches, 2)
	for r := range shards {
		if shards[r], err = NewPointBatches(pts.Train, 8, false, 9, gotch.CPU); err != nil {
			t.Fatal(err)
		}
		if err := shards[r].Shard(r, 2); err != nil {
			t.Fatal(err)
		}
	}
	sc := ts.NewScope()
	defer sc.Close()
	for step := 0; step < 15; step++ { // two epochs of 7, the last short (2 rows)
		ref, err := whole.Batch(step)
		if err != nil {
			t.Fatal(err)
		}
		var got []float64
		for _, s := range shards {
			b, err := s.Batch(step)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, b.Float64Values()...)
		}
		if !slices.Equal(got, ref.Float64Values()) {
			t.Fatalf("step %d: shards %v, whole %v", step, got, ref.Float64Values())
		}
	}
}
