package fid

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestAccumulatorBatchingInvariant(t *testing.T) {
	const d, n = 7, 1300                                    // n spans several internal chunks
	set := &goldenSet{Seed: 42, N: n, Decay: 3, Shift: 1e3} // large mean: a cancellation trap
	ref := statsOf(t, set, d, 0)
	for _, batch := range []int{1, 50, 511, 513, 1299} {
		st := statsOf(t, set, d, batch)
		for i := 0; i < d; i++ {
			if math.Abs(st.Mu[i]-ref.Mu[i]) > 1e-12*math.Abs(ref.Mu[i]) {
				t.Fatalf("batch %d: mu[%d] %v vs %v", batch, i, st.Mu[i], ref.Mu[i])
			}
			for j := 0; j < d; j++ {
				if math.Abs(st.Sigma.At(i, j)-ref.Sigma.At(i, j)) > 1e-13 {
					t.Fatalf("batch %d: sigma[%d,%d] %v vs %v", batch, i, j, st.Sigma.At(i, j), ref.Sigma.At(i, j))
				}
			}
		}
	}
	// Two-pass reference in plain loops: the shift of 1e3 must not cost
	// accuracy (a naive Σx² − n·μ² would lose ~6 digits here).
	rows := featureRows(set, d, 0, n)
	mu := make([]float64, d)
	for r := 0; r < n; r++ {
		for j := 0; j < d; j++ {
			mu[j] += rows[r*d+j] / n
		}
	}
	for i := 0; i < d; i++ {
		for j := 0; j < d; j++ {
			var c float64
			for r := 0; r < n; r++ {
				c += (rows[r*d+i] - mu[i]) * (rows[r*d+j] - mu[j])
			}
			c /= n - 1
			if math.Abs(ref.Sigma.At(i, j)-c) > 1e-13 {
				t.Fatalf("sigma[%d,%d] = %v, two-pass %v", i, j, ref.Sigma.At(i, j), c)
			}
		}
	}
}

func TestAccumulatorFloat32(t *testing.T) {
	const d = 5
	rows := featureRows(&goldenSet{Seed: 1, Decay: 1}, d, 0, 600)
	r32 := make([]float32, len(rows))
	r64 := make([]float64, len(rows))
	for i, v := range rows {
		r32[i] = float32(v)
		r64[i] = float64(r32[i])
	}
	a32, _ := NewAccumulator(d)
	a64, _ := NewAccumulator(d)
	if err := a32.AddFloat32(r32); err != nil {
		t.Fatal(err)
	}
	if err := a64.AddFloat64(r64); err != nil {
		t.Fatal(err)
	}
	s32, _ := a32.Stats()
	s64, _ := a64.Stats()
	for i := 0; i < d; i++ {
		for j := 0; j < d; j++ {
			if s32.Sigma.At(i, j) != s64.Sigma.At(i, j) || s32.Mu[i] != s64.Mu[i] {
				t.Fatal("float32 rows differ from the same values as float64")
			}
		}
	}
}

func TestAccumulatorErrors(t *testing.T) {
	if _, err := NewAccumulator(0); err == nil {
		t.Error("NewAccumulator(0) succeeded")
	}
	a, _ := NewAccumulator(3)
	if err := a.AddFloat64([]float64{1, 2}); err == nil || !strings.Contains(err.Error(), "not a whole number of 3-dimensional rows") {
		t.Errorf("short batch: %v", err)
	}
	if err := a.AddFloat32([]float32{1, 2, 3, 4, float32(math.Inf(1)), 6}); err == nil || !strings.Contains(err.Error(), "row 1, column 1 is +Inf") {
		t.Errorf("Inf: %v", err)
	}
	if err := a.AddFloat64([]float64{1, 2, math.NaN()}); err == nil || !strings.Contains(err.Error(), "row 0, column 2 is NaN") {
		t.Errorf("NaN: %v", err)
	}
	if a.Count() != 0 {
		t.Errorf("rejected batches were counted: %d", a.Count())
	}
	a.AddFloat64([]float64{1, 2, 3})
	if _, err := a.Stats(); !errors.Is(err, ErrTooFewSamples) {
		t.Errorf("one row: %v", err)
	}
	a.AddFloat64([]float64{3, 2, 1})
	st, err := a.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Sigma.At(0, 2) != -2 || st.Sigma.At(1, 1) != 0 || st.Mu[0] != 2 {
		t.Errorf("two rows: mu %v sigma %v", st.Mu, st.Sigma.RawMatrix().Data)
	}
	// Still usable after Stats.
	a.AddFloat64([]float64{2, 2, 2})
	if st, _ := a.Stats(); a.Count() != 3 || math.Abs(st.Sigma.At(0, 0)-1) > 1e-15 {
		t.Errorf("after a third row: count %d sigma00 %v", a.Count(), st.Sigma.At(0, 0))
	}
}
