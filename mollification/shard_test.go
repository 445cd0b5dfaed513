package mollification

import (
	"slices"
	"testing"

	"github.com/mollify/mollify/config"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Each rank's sharded mollification is its rows of the one-process
// mollification under the same seed, eager (Mollify) and captured
// (MollifyLevel) alike; after the phase the slice comes back unchanged.
func TestShardKeysNoiseByGlobalRow(t *testing.T) {
	c := config.Default()
	c.Run.Iterations, c.Mollification.Fraction = 20, 0.5 // 10 mollified steps
	g, err := FromConfig(&c, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	sc := ts.NewScope()
	defer sc.Close()
	whole := ts.MustArange(ts.IntScalar(24), gotch.Float, gotch.CPU).MustReshape([]int64{6, 2, 2}, true)
	const seed = 3
	run := func(m Mollifier, x *ts.Tensor, step int, leveled bool) []float64 {
		t.Helper()
		if err := ts.ManualSeed(seed); err != nil {
			t.Fatal(err)
		}
		var y *ts.Tensor
		if leveled {
			l := m.(Leveled)
			lvl, err := l.NewLevel(gotch.CPU)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := l.SetLevel(lvl, step); err != nil {
				t.Fatal(err)
			}
			if y, err = l.MollifyLevel(x, lvl); err != nil {
				t.Fatal(err)
			}
		} else if y, _, err = m.Mollify(x, step); err != nil {
			t.Fatal(err)
		}
		if got := y.MustSize(); !slices.Equal(got, x.MustSize()) {
			t.Fatalf("shape %v, want %v", got, x.MustSize())
		}
		return y.Float64Values()
	}
	for _, leveled := range []bool{false, true} {
		for _, step := range []int{0, 4, 12} {
			ref := run(g, whole, step, leveled)
			var got []float64
			for r := 0; r < 3; r++ {
				m, err := Shard(g, r, 3)
				if err != nil {
					t.Fatal(err)
				}
				if _, ok := m.(Leveled); !ok {
					t.Fatal("a sharded Gaussian is not Leveled")
				}
				got = append(got, run(m, whole.MustNarrow(0, int64(2*r), 2, false), step, leveled)...)
			}
			if !slices.Equal(got, ref) {
				t.Errorf("leveled %v, step %d: shards %v\nwhole %v", leveled, step, got, ref)
			}
			if step < 10 && slices.Equal(ref, whole.Float64Values()) {
				t.Errorf("step %d is not mollified", step)
			}
		}
	}
}

func TestShardErrorsAndPassThrough(t *testing.T) {
	if _, err := Shard(None{}, 2, 2); err == nil {
		t.Error("rank 2 of 2 accepted")
	}
	if _, err := Shard(nil, 0, 2); err == nil {
		t.Error("nil mollifier accepted")
	}
	b, err := NewBlur(BlurOptions{Height: 4, Width: 4, Steps: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if m, _ := Shard(b, 1, 2); m != Mollifier(b) {
		t.Error("blur draws no noise, but Shard wrapped it")
	}
}
