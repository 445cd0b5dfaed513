package fid

import (
	"testing"

	"github.com/mollify/mollify/nn"
)

// benchStats returns the statistics of golden case name (gen_golden.py).
func benchStats(b *testing.B, name string) (*Stats, *Stats) {
	b.Helper()
	for _, c := range loadGolden(b).Synthetic {
		if c.Name == name {
			return statsOf(b, c.A, c.D, 0), statsOf(b, c.B, c.D, 0)
		}
	}
	b.Fatalf("no golden case %s", name)
	return nil, nil
}

// BenchmarkFrechetDistance2048 times the whole default method on the
// full-rank d = 2048 golden pair; bench/fid/scipy_frechet.py times
// pytorch-fid's whole scipy formula on the same matrices. Run both with the
// same OMP_NUM_THREADS and OPENBLAS_NUM_THREADS (`make bench`: 1); the
// threads metric is libtorch's.
func BenchmarkFrechetDistance2048(b *testing.B) {
	s1, s2 := benchStats(b, "d2048")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := FrechetDistance(s1, s2, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/op")
	b.ReportMetric(float64(nn.Threads()), "threads")
}

// BenchmarkFrechetDistance2048Rank499 is the fewer-samples-than-dims case.
func BenchmarkFrechetDistance2048Rank499(b *testing.B) {
	s1, s2 := benchStats(b, "d2048_rank499")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := FrechetDistance(s1, s2, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAccumulator2048 streams 4096 rows of 2048 float32 features in
// pytorch-fid's batches of 50.
func BenchmarkAccumulator2048(b *testing.B) {
	const d, n, batch = 2048, 4096, 50
	rows := make([]float32, n*d)
	for i := range rows {
		rows[i] = float32(splitmixUniform(1, uint64(i)))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		acc, _ := NewAccumulator(d)
		for r := 0; r < n; r += batch {
			if err := acc.AddFloat32(rows[r*d : min(r+batch, n)*d]); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := acc.Stats(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
}
