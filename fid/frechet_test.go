package fid

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/gonum/mat"
)

// statsOf streams a golden set through an Accumulator in batches of batch
// rows (0: one batch).
func statsOf(t testing.TB, s *goldenSet, d, batch int) *Stats {
	t.Helper()
	acc, err := NewAccumulator(d)
	if err != nil {
		t.Fatal(err)
	}
	if batch == 0 {
		batch = s.N
	}
	for r := 0; r < s.N; r += batch {
		if err := acc.AddFloat64(featureRows(s, d, r, min(batch, s.N-r))); err != nil {
			t.Fatal(err)
		}
	}
	if acc.Count() != s.N {
		t.Fatalf("Count %d, want %d", acc.Count(), s.N)
	}
	st, err := acc.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// checkStats compares streamed statistics with numpy's np.mean/np.cov.
func checkStats(t *testing.T, name string, st *Stats, c goldenChecks) {
	t.Helper()
	d := st.Dim()
	var muSum, tr, sum, frob float64
	for i := 0; i < d; i++ {
		muSum += st.Mu[i]
		tr += st.Sigma.At(i, i)
		for j := 0; j < d; j++ {
			v := st.Sigma.At(i, j)
			sum += v
			frob += v * v
			if v != st.Sigma.At(j, i) {
				t.Fatalf("%s: sigma not symmetric at (%d,%d)", name, i, j)
			}
		}
	}
	muScale := math.Abs(c.MuSum) + float64(d)
	if math.Abs(muSum-c.MuSum) > 1e-12*muScale {
		t.Errorf("%s: sum(mu) = %.17g, numpy %.17g", name, muSum, c.MuSum)
	}
	for i, w := range c.MuHead {
		if math.Abs(st.Mu[i]-w) > 1e-13*(1+math.Abs(w)) {
			t.Errorf("%s: mu[%d] = %.17g, numpy %.17g", name, i, st.Mu[i], w)
		}
	}
	scale := c.SigmaMaxAbs
	if relErr(tr, c.SigmaTrace) > 1e-12 || relErr(math.Sqrt(frob), c.SigmaFrob) > 1e-12 ||
		math.Abs(sum-c.SigmaSum) > 1e-12*scale*float64(d*d) {
		t.Errorf("%s: trace %.17g sum %.17g frob %.17g; numpy %.17g %.17g %.17g",
			name, tr, sum, math.Sqrt(frob), c.SigmaTrace, c.SigmaSum, c.SigmaFrob)
	}
	for k, p := range samplePositions(d) {
		if got, w := st.Sigma.At(p[0], p[1]), c.SigmaSamples[k]; math.Abs(got-w) > 1e-13*scale {
			t.Errorf("%s: sigma[%d,%d] = %.17g, numpy %.17g", name, p[0], p[1], got, w)
		}
	}
}

// TestGoldenSynthetic: statistics match numpy and the distance matches
// pytorch-fid's scipy formula from d = 8 to 2048, full and low rank.
func TestGoldenSynthetic(t *testing.T) {
	for _, c := range loadGolden(t).Synthetic {
		t.Run(c.Name, func(t *testing.T) {
			if testing.Short() && c.D > 512 {
				t.Skip("d = 2048 in -short mode")
			}
			// pytorch-fid's batch size is 50; stream one set that way.
			s1 := statsOf(t, c.A, c.D, 50)
			s2 := statsOf(t, c.B, c.D, 0)
			checkStats(t, "a", s1, c.A.Checks)
			checkStats(t, "b", s2, c.B.Checks)
			start := time.Now()
			res, err := FrechetDistance(s1, s2, nil)
			if err != nil {
				t.Fatal(err)
			}
			rel := relErr(res.Distance, *c.FID)
			t.Logf("symmetric: FID %.12g, pytorch-fid %.12g, rel err %.1e, ranks %d/%d, imag %.1e, %v",
				res.Distance, *c.FID, rel, res.Rank1, res.Rank2, res.Imag, time.Since(start).Round(time.Millisecond))
			if rel > 1e-6 {
				t.Errorf("symmetric FID %.15g, pytorch-fid %.15g (rel err %.2e)", res.Distance, *c.FID, rel)
			}
			if wantRank := min(c.A.N-1, c.D); res.Rank1 != wantRank {
				t.Errorf("rank of Σ1 = %d, want %d", res.Rank1, wantRank)
			}
			if res.Offset != 0 {
				t.Errorf("ε fallback used (%v), pytorch-fid did not need it", res.Offset)
			}
			if c.D > 128 {
				return
			}
			res, err = FrechetDistance(s1, s2, &Options{Method: Scipy})
			if err != nil {
				t.Fatal(err)
			}
			if rel := relErr(res.Distance, *c.FID); rel > scipyTol(c) {
				t.Errorf("scipy-method FID %.15g, pytorch-fid %.15g (rel err %.2e)", res.Distance, *c.FID, rel)
			}
		})
	}
}

// TestGoldenNumpy: SPD pairs from numpy's RNG and pytorch-fid's failure.
func TestGoldenNumpy(t *testing.T) {
	arrays := readArrays(t, "testdata/frechet_np.npz")
	stats := func(name, i string) *Stats {
		mu, sigma := arrays[name+"_mu"+i], arrays[name+"_sigma"+i]
		d := len(mu)
		return &Stats{Mu: mu, Sigma: mat.NewDense(d, d, sigma)}
	}
	for _, c := range loadGolden(t).Numpy {
		t.Run(c.Name, func(t *testing.T) {
			s1, s2 := stats(c.Name, "1"), stats(c.Name, "2")
			sym, symErr := FrechetDistance(s1, s2, nil)
			sp, spErr := FrechetDistance(s1, s2, &Options{Method: Scipy})
			if c.Error != "" {
				// pytorch-fid: sqrtm fails, ε is added, then "Imaginary component".
				var ie *ImaginaryComponentError
				if !errors.As(spErr, &ie) {
					t.Fatalf("scipy method: error %v, want ImaginaryComponentError (pytorch-fid: %s)", spErr, c.Error)
				}
				var want float64
				fmt.Sscanf(c.Error, "Imaginary component %g", &want)
				if relErr(ie.MaxImag, want) > 1e-6 || !strings.Contains(spErr.Error(), "Imaginary component") {
					t.Errorf("scipy method: %v; pytorch-fid: %s", spErr, c.Error)
				}
				// Σ2 is not a covariance; the symmetric method says so.
				if symErr == nil || !strings.Contains(symErr.Error(), "second sigma is not positive semidefinite") {
					t.Errorf("symmetric method: error %v, want a not-PSD error", symErr)
				}
				return
			}
			if symErr != nil || spErr != nil {
				t.Fatalf("errors: symmetric %v, scipy %v", symErr, spErr)
			}
			if rel := relErr(sym.Distance, *c.FID); rel > 1e-6 {
				t.Errorf("symmetric FID %.15g, pytorch-fid %.15g (rel err %.2e)", sym.Distance, *c.FID, rel)
			}
			if rel := relErr(sp.Distance, *c.FID); rel > scipyTol(c) {
				t.Errorf("scipy-method FID %.15g, pytorch-fid %.15g (rel err %.2e)", sp.Distance, *c.FID, rel)
			}
			// Complex sqrtm with a negligible imaginary part: both report it small.
			if c.SqrtmComplex && !(sp.Imag > 0 && sp.Imag < 1e-6) {
				t.Errorf("scipy method: Imag %v, scipy's max|Im diag| %v", sp.Imag, c.MaxImagDiag)
			}
			t.Logf("symmetric %.15g scipy %.15g pytorch-fid %.15g (scipy imag %.1e, ours %.1e)", sym.Distance, sp.Distance, *c.FID, c.MaxImagDiag, sp.Imag)
		})
	}
}

// scipyTol is the Scipy method's agreement with scipy itself: rounding
// alone when the square root is real, rounding amplified by the near-zero
// eigenvalues when it is complex (rank-deficient products).
func scipyTol(c goldenCase) float64 {
	if c.SqrtmComplex {
		return 1e-8
	}
	return 1e-10
}

func diagStats(mu []float64, diag ...float64) *Stats {
	d := len(diag)
	s := mat.NewDense(d, d, nil)
	for i, v := range diag {
		s.Set(i, i, v)
	}
	return &Stats{Mu: mu, Sigma: s}
}

func TestFrechetClosedForm(t *testing.T) {
	// Commuting covariances: FID = ‖Δμ‖² + Σ (√a − √b)².
	s1 := diagStats([]float64{0, 1, 2}, 1, 4, 9)
	s2 := diagStats([]float64{1, 1, 0}, 4, 4, 0)
	want := 1.0 + 4 + (1 + 0 + 9)
	for _, m := range []Method{Symmetric, Scipy} {
		res, err := FrechetDistance(s1, s2, &Options{Method: m})
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(res.Distance-want) > 1e-12 || res.MeanTerm != 5 || res.Trace1 != 14 || res.Trace2 != 8 {
			t.Errorf("%v: %+v, want distance %v", m, res, want)
		}
	}
}

func TestFrechetRejects(t *testing.T) {
	ok := diagStats([]float64{0, 0}, 1, 1)
	asym := diagStats([]float64{0, 0}, 1, 1)
	asym.Sigma.Set(0, 1, 0.5)
	nan := diagStats([]float64{0, math.NaN()}, 1, 1)
	indef := diagStats([]float64{0, 0}, 1, -1)
	cases := []struct {
		name   string
		s1, s2 *Stats
		want   string
	}{
		{"nil", nil, ok, "first statistics are missing"},
		{"dims", ok, diagStats([]float64{0, 0, 0}, 1, 1, 1), "different lengths (2 and 3)"},
		{"shape", &Stats{Mu: []float64{0, 0}, Sigma: mat.NewDense(3, 3, nil)}, ok, "first sigma is 3×3 but its mean has 2 entries"},
		{"nan", ok, nan, "second mean[1] is NaN"},
		{"asymmetric", asym, ok, "first sigma is not symmetric"},
		{"indefinite", indef, ok, "first sigma is not positive semidefinite"},
	}
	for _, c := range cases {
		_, err := FrechetDistance(c.s1, c.s2, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to mention %q", c.name, err, c.want)
		}
	}
	if _, err := FrechetDistance(ok, ok, &Options{Method: 7}); err == nil || !strings.Contains(err.Error(), "unknown method") {
		t.Errorf("bad method: %v", err)
	}
}

// TestFrechetOverflowFallback: a non-finite first attempt goes through the
// ε fallback and, still not finite, fails with ErrNotFinite.
func TestFrechetOverflowFallback(t *testing.T) {
	big := diagStats([]float64{0, 0}, 1e300, 1e300)
	big.Sigma.Set(0, 1, 1e299)
	big.Sigma.Set(1, 0, 1e299)
	for _, m := range []Method{Symmetric, Scipy} {
		_, err := FrechetDistance(big, big, &Options{Method: m})
		if !errors.Is(err, ErrNotFinite) {
			t.Errorf("%v: error %v, want ErrNotFinite", m, err)
		}
	}
}

func ExampleFrechetDistance() {
	// N(0, I) against N((1,0), 4I) in 2-d: 1 + 2 + 8 − 2·tr(2I) = 3.
	s1 := &Stats{Mu: []float64{0, 0}, Sigma: mat.NewDense(2, 2, []float64{1, 0, 0, 1})}
	s2 := &Stats{Mu: []float64{1, 0}, Sigma: mat.NewDense(2, 2, []float64{4, 0, 0, 4})}
	res, err := FrechetDistance(s1, s2, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("FID %.6f = %.0f + %.0f + %.0f - 2*%.0f\n", res.Distance, res.MeanTerm, res.Trace1, res.Trace2, res.TraceCovmean)
	// Output: FID 3.000000 = 1 + 2 + 8 - 2*4
}
