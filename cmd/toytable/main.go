// Command toytable summarises 2-D runs (their summary.json files) as a
// markdown table, one row per data set and training: how many seeds ran,
// finished and diverged (with the steps they stopped at), the median and
// interquartile range of MMD² over the finished runs, the test NLL, how
// many seeds mollification improved (paired by seed), next to the paper's
// numbers.
//
//	go run ./cmd/toytable runs/toy/*/
//
// -steps gives the same comparison at every evaluation step of the runs'
// curves, and how many runs had training-loss spikes; -points loads each
// run's last checkpoint and describes its per-point NLL on the training
// and test sets (where a mean NLL of 1e27 comes from).
//
//	go run ./cmd/toytable -steps runs/toy/*/
//	go run ./cmd/toytable -points runs/toy/realnvp_vonmises-mollified_false-seed1
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

type summary struct {
	Dir           string   `json:"-"`
	Dataset       string   `json:"dataset"`
	Seed          uint64   `json:"seed"`
	Mollified     bool     `json:"mollified"`
	Steps         int      `json:"steps"`
	MMD2Paper     float64  `json:"mmd2_paper_kernel"`
	MMD2Unit      float64  `json:"mmd2_unit_kernel"`
	MMD2Swapped   *float64 `json:"mmd2_swapped_kernel"`
	TestNLL       float64  `json:"test_nll_nats"`
	TestNLLMedian *float64 `json:"test_nll_median_nats"`
	TestNLLAbove  *float64 `json:"test_nll_frac_above_bound"`
	TestNLLBound  float64  `json:"test_nll_bound_nats"`
	TrueNLL       *float64 `json:"true_test_nll_nats"`
	ScoreCos      *float64 `json:"score_cosine_grid"`
	Diverged      bool     `json:"diverged"`
	DivergedStep  int      `json:"diverged_step"`
	Curve         struct {
		Steps     []float64 `json:"steps"`
		Loss      []float64 `json:"loss"`
		EvalSteps []float64 `json:"eval_steps"`
		MMD2Paper []float64 `json:"mmd2_paper"`
	} `json:"curve"`
}

// The paper's Fig. 4 and Fig. 6 values (MMD², units not stated).
var paper = map[string][2]string{"mog": {"15.5", "2.5"}, "vonmises": {"383.44", "6.13"}}

// nonFinite is what summary.json holds for NaN or ±Inf (JSON has none).
const nonFinite = -1e300

// value reads a summary number back, mapping the non-finite marker to
// +Inf: for an NLL, as bad as it gets.
func value(v float64) float64 {
	if v <= nonFinite/10 {
		return math.Inf(1)
	}
	return v
}

// quantile of sorted data, interpolating linearly between order
// statistics (numpy's default).
func quantile(sorted []float64, p float64) float64 {
	if len(sorted) == 1 {
		return sorted[0]
	}
	h := p * float64(len(sorted)-1)
	lo := math.Floor(h)
	i := int(lo)
	if i+1 >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	if math.IsInf(sorted[i], 0) || math.IsInf(sorted[i+1], 0) {
		if h == lo {
			return sorted[i]
		}
		return sorted[i+1]
	}
	return sorted[i] + (h-lo)*(sorted[i+1]-sorted[i])
}

func sortedCopy(x []float64) []float64 {
	s := append([]float64(nil), x...)
	sort.Float64s(s)
	return s
}

func num(v float64) string {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return "non-finite"
	}
	return fmt.Sprintf("%.3g", v)
}

// medianIQR formats "median [Q1, Q3]", or "–" without values.
func medianIQR(x []float64) string {
	if len(x) == 0 {
		return "–"
	}
	s := sortedCopy(x)
	return fmt.Sprintf("%s [%s, %s]", num(quantile(s, 0.5)), num(quantile(s, 0.25)), num(quantile(s, 0.75)))
}

func median(x []float64) string {
	if len(x) == 0 {
		return "–"
	}
	return num(quantile(sortedCopy(x), 0.5))
}

type key struct {
	ds   string
	moll bool
}

// load reads the runs' summaries; folders without one (unfinished runs)
// are reported on stderr and left out.
func load(dirs []string, stderr io.Writer) (map[key][]summary, error) {
	groups := map[key][]summary{}
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, "summary.json"))
		if errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(stderr, "toytable: %s has no summary.json (unfinished run?): left out\n", dir)
			continue
		}
		if err != nil {
			return nil, err
		}
		s := summary{Dir: dir}
		if err := json.Unmarshal(b, &s); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "summary.json"), err)
		}
		k := key{s.Dataset, s.Mollified}
		for _, o := range groups[k] {
			if o.Seed == s.Seed {
				return nil, fmt.Errorf("%s: a second %s run with seed %d (mollified %v); give each (data, training, seed) one folder", dir, s.Dataset, s.Seed, s.Mollified)
			}
		}
		groups[k] = append(groups[k], s)
	}
	for _, g := range groups {
		sort.Slice(g, func(i, j int) bool { return g[i].Seed < g[j].Seed })
	}
	return groups, nil
}

// improved compares mollified with vanilla runs of the same seed on the
// paper-kernel MMD²: mollified lower, or vanilla diverged while mollified
// finished (counted in vsDiverged). Seeds where both diverged are left out
// of compared.
func improved(van, moll []summary) (better, compared, vsDiverged int) {
	bySeed := map[uint64]summary{}
	for _, v := range van {
		bySeed[v.Seed] = v
	}
	for _, m := range moll {
		v, ok := bySeed[m.Seed]
		if !ok || v.Diverged && m.Diverged {
			continue
		}
		compared++
		switch {
		case m.Diverged:
		case v.Diverged:
			better++
			vsDiverged++
		case m.MMD2Paper < v.MMD2Paper:
			better++
		}
	}
	return better, compared, vsDiverged
}

func table(groups map[key][]summary, w io.Writer) {
	var keys []key
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].ds != keys[j].ds {
			return keys[i].ds < keys[j].ds
		}
		return !keys[i].moll && keys[j].moll
	})
	bound := 0.0
	for _, g := range groups {
		for _, s := range g {
			bound = math.Max(bound, s.TestNLLBound)
		}
	}
	fmt.Fprintf(w, "| data | training | seeds | finished | diverged (stopped at step) | MMD² ×1e5, paper kernel (l=1, σ²=1e-4) | MMD² ×1e3, unit kernel (l=1, σ²=1) | MMD², swapped kernel (l=1e-4, σ²=1) | mollified better (paired by seed, paper kernel)¹ | test NLL, mean per run | test NLL, median per run | test points with NLL > %g nats | true-density test NLL | score direction (cosine to the true score) | paper's MMD² |\n", bound)
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	anyVsDiverged := 0
	for _, k := range keys {
		g := groups[k]
		var p, u, sw, nll, nllMed, above, truth, cos []float64
		var steps []string
		finished := 0
		for _, s := range g {
			if s.Diverged {
				steps = append(steps, fmt.Sprint(s.DivergedStep))
				continue
			}
			finished++
			p = append(p, s.MMD2Paper*1e5)
			u = append(u, s.MMD2Unit*1e3)
			if s.MMD2Swapped != nil {
				sw = append(sw, value(*s.MMD2Swapped))
			}
			nll = append(nll, value(s.TestNLL))
			if s.TestNLLMedian != nil {
				nllMed = append(nllMed, value(*s.TestNLLMedian))
			}
			if s.TestNLLAbove != nil {
				above = append(above, 100*value(*s.TestNLLAbove))
			}
			if s.TrueNLL != nil {
				truth = append(truth, *s.TrueNLL)
			}
			if s.ScoreCos != nil {
				cos = append(cos, value(*s.ScoreCos))
			}
		}
		div := "0"
		if len(steps) > 0 {
			div = fmt.Sprintf("%d (%s)", len(steps), strings.Join(steps, ", "))
		}
		label, ref, better := "vanilla", paper[k.ds][0], "–"
		if k.moll {
			label, ref = "Gaussian mollification", paper[k.ds][1]
			if van, ok := groups[key{k.ds, false}]; ok {
				b, n, vd := improved(van, g)
				better = fmt.Sprintf("%d of %d", b, n)
				if vd > 0 {
					better += fmt.Sprintf(" (%d against a diverged vanilla run)", vd)
				}
				anyVsDiverged += vd
			}
		}
		if len(sw) != finished {
			sw = nil // older summaries lack it
		}
		if ref == "" {
			ref = "–"
		}
		abovePct := "–"
		if len(above) == finished && finished > 0 {
			abovePct = median(above) + "%"
		}
		fmt.Fprintf(w, "| %s | %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			k.ds, label, len(g), finished, div, medianIQR(p), medianIQR(u), medianIQR(sw), better,
			median(nll), median(nllMed), abovePct, median(truth), medianIQR(cos), ref)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Medians and interquartile ranges [Q1, Q3] over the finished runs; test-NLL columns are medians over runs of each run's mean, median and fraction above the bound. A diverged run stopped early (too many consecutive non-finite steps, or model samples that overflow at an evaluation); its step is listed and its numbers are left out.")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "¹ Seeds where the mollified run's MMD² (paper kernel) is below the vanilla run's with the same seed, of the seeds with both runs. A finished mollified run against a diverged vanilla run counts as better (here %d of the better seeds), a diverged mollified run as not better; seeds where both diverged are left out.\n", anyVsDiverged)
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("toytable", flag.ContinueOnError)
	fs.SetOutput(stderr)
	steps := fs.Bool("steps", false, "compare the trainings at every evaluation step, and count training-loss spikes")
	points := fs.Bool("points", false, "per-point NLL of each run's last checkpoint on the training and test sets")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("usage: toytable [-steps | -points] RUN_DIR...")
	}
	if *points {
		return pointsTable(fs.Args(), stdout)
	}
	groups, err := load(fs.Args(), stderr)
	if err != nil {
		return err
	}
	if len(groups) == 0 {
		return fmt.Errorf("none of the %d folders has a summary.json", fs.NArg())
	}
	if *steps {
		stepsTable(groups, stdout)
		return nil
	}
	table(groups, stdout)
	return nil
}

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "toytable:", err)
		os.Exit(1)
	}
}
