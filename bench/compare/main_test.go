package main

import (
	"bytes"
	"strings"
	"testing"
)

// runsOf makes the records -append writes: for each impl of a bench, one
// run per steps/s value; a negative value is a failed run.
func runsOf(bench string, rows map[string][]float64, order ...string) []result {
	var out []result
	for i, impl := range order {
		for r, v := range rows[impl] {
			x := result{Bench: bench, Round: r + 1, Row: i, Label: impl, Impl: impl, StepsPerS: v, Final: 1, Threads: 1, Torch: "t"}
			if v < 0 {
				x.Impl, x.StepsPerS, x.Error = "", 0, "train: CUDA graphs need patch 0008"
			}
			if strings.HasPrefix(impl, "go") && v > 0 {
				x.PeakAlloc, x.PeakResv = 100*v, 200*v
			}
			out = append(out, x)
		}
	}
	return out
}

func TestCriteria(t *testing.T) {
	runs := append(runsOf("Glow", map[string][]float64{
		"go": {6, 5.8, 6.1}, "pytorch": {5, 4.4, 5.6}, "go-graph": {23, 22, 24}, "pytorch-graph": {23, 22.8, 24.5},
	}, "go", "pytorch", "go-graph", "pytorch-graph"), runsOf("VAE", map[string][]float64{
		"go": {103, 100, 101}, "pytorch": {103, 104, 102}, "go-graph": {-1, -1, -1}, "pytorch-graph": {300, 310},
	}, "go", "pytorch", "go-graph", "pytorch-graph")...)
	for _, c := range []struct{ crit, want string }{
		{"Glow: go-graph/pytorch >= 4", "MET (23.00 / 5.00 steps/s = 4.60×)"},
		{"Glow: go-graph/pytorch-graph >= 0.95", "MET (23.00 / 23.00 steps/s = 1.00×)"},
		{"Glow: go/pytorch >= 1.5", "NOT MET (6.00 / 5.00 steps/s = 1.20×)"},
		{"VAE: go-graph/pytorch >= 2", "UNMEASURED (go-graph has 0 successful runs)"},
		{"VAE: pytorch-graph/pytorch >= 2", "UNMEASURED (pytorch-graph has 2 successful runs)"},
	} {
		cr, err := parseCriterion(c.crit)
		if err != nil {
			t.Fatal(err)
		}
		if got := verdict(runs, cr, 3); got != c.want {
			t.Errorf("%s: got %q, want %q", c.crit, got, c.want)
		}
	}
	for _, bad := range []string{"go-graph/pytorch > 4", "Glow: go-graph >= 4", "a/b >= x"} {
		if _, err := parseCriterion(bad); err == nil || !strings.Contains(err.Error(), "IMPL/IMPL >= X") {
			t.Errorf("%q: got %v", bad, err)
		}
	}

	var b bytes.Buffer
	printTable(&b, runs, true, "final")
	if !printFailures(&b, runs) {
		t.Error("printFailures saw no failure")
	}
	out := b.String()
	for _, want := range []string{
		"| model | implementation | steps/s (median) | rounds | vs PyTorch eager |",
		"| Glow | go-graph | 23.00 | 3 | 4.60× | – | 0.0 | 2400 | 4800 |", // GPU peaks: the max over rounds
		"| Glow | pytorch-graph | 23.00 | 3 | 4.60× | – | 0.0 | – | – |",
		"| VAE | go-graph | FAILED | 0 of 3 |",
		"| VAE | pytorch-graph | 305.00 | 2 |", // an even count: the mean of the middle two
		"- VAE go-graph, 3 of 3 rounds: train: CUDA graphs need patch 0008",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the table lacks %q:\n%s", want, out)
		}
	}
}

func TestPyArgs(t *testing.T) {
	got := strings.Join(pyArgs("-steps 20 -cuda-graph --foreach -1"), " ")
	if want := "--steps 20 --cuda-graph --foreach --1"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
