// Command curves compares training runs from their metrics.jsonl: one PNG
// with the train loss and an eval metric against the step, one line per
// run, or (-table) a markdown table of each run's final metrics.
//
//	go run ./cmd/curves -out docs/img/vae_mnist_vae.png runs/vae_mnist/vae-mollified_false runs/vae_mnist/vae-mollified_true
//	go run ./cmd/curves -table runs/vae_mnist/*/
//
// The eval metric is -metric, or the first of iwae_bound, elbo, nll and bpd
// that every run has; -metric fid or fcd plots the sample-quality records
// instead, and the table has a column for each of those that a run logged.
// Runs are named by model and training (vanilla or the mollification kind)
// from their config.yaml, or by folder name.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/plots"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "curves:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("curves", flag.ContinueOnError)
	out := fs.String("out", "curves.png", "PNG to write")
	title := fs.String("title", "", "figure title (default: the model names)")
	metric := fs.String("metric", "", "eval metric to plot (default: iwae_bound, elbo, nll or bpd, the first every run has)")
	table := fs.Bool("table", false, "print a markdown table of final metrics instead of plotting")
	tail := fs.Int("tail", 5, "final train loss: mean of the last N train records")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("usage: curves [-out FILE.png] [-title T] [-metric NAME] [-table] RUN_DIR...")
	}
	var runs []*runData
	for _, dir := range fs.Args() {
		if st, err := os.Stat(dir); err == nil && !st.IsDir() {
			fmt.Fprintf(os.Stderr, "curves: %s is not a run folder: skipped\n", dir)
			continue
		}
		r, err := load(dir)
		if err != nil {
			return err
		}
		runs = append(runs, r)
	}
	if len(runs) == 0 {
		return errors.New("no run folders among the arguments")
	}
	label(runs)
	if *table {
		return writeTable(stdout, runs, max(*tail, 1))
	}
	if len(runs) < 2 {
		fmt.Fprintln(os.Stderr, "curves: one run only; pass two or more run folders to compare them")
	}
	return plotRuns(*out, *title, *metric, runs)
}

// record is one line of metrics.jsonl.
type record struct {
	kind string
	step float64
	vals map[string]float64 // numbers; "NaN" and "±Inf" strings become non-finite numbers
}

type runData struct {
	dir      string
	name     string // label in legends and tables
	model    string
	train    string // "vanilla" or the mollification kind
	molSteps int    // mollified steps; 0 for vanilla or an unknown config
	steps    int    // run.iterations; 0 if unknown
	records  []record
}

// load reads a run folder's metrics.jsonl and, if present, its config.yaml.
func load(dir string) (*runData, error) {
	r := &runData{dir: dir}
	f, err := os.Open(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		return nil, fmt.Errorf("%s has no metrics.jsonl (not a run folder, or the run has not logged yet): %w", dir, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			// A run killed while writing leaves a torn last line.
			fmt.Fprintf(os.Stderr, "curves: %s/metrics.jsonl line %d: %v: skipped\n", dir, line, err)
			continue
		}
		rec := record{vals: map[string]float64{}}
		rec.kind, _ = m["kind"].(string)
		for k, v := range m {
			switch x := v.(type) {
			case float64:
				rec.vals[k] = x
			case string:
				if f, err := strconv.ParseFloat(x, 64); err == nil && (math.IsNaN(f) || math.IsInf(f, 0)) {
					rec.vals[k] = f
				}
			}
		}
		rec.step = rec.vals["step"]
		delete(rec.vals, "step")
		r.records = append(r.records, rec)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s/metrics.jsonl: %w", dir, err)
	}
	if c, err := config.Load(filepath.Join(dir, config.ResolvedName), nil); err == nil {
		r.model, r.steps = c.Model.Name, c.Run.Iterations
		r.train = "vanilla"
		if c.Mollification.Enabled {
			r.train = c.Mollification.Kind + " mollification"
			r.molSteps = c.Mollification.Steps(c.Run.Iterations)
		}
	}
	return r, nil
}

// label names runs "vanilla" / "gaussian mollification" when they share a
// model, "model, training" otherwise, and by folder when names collide or
// a config is missing.
func label(runs []*runData) {
	models := map[string]bool{}
	for _, r := range runs {
		models[r.model] = true
	}
	seen := map[string]int{}
	for _, r := range runs {
		switch {
		case r.model == "":
			r.name = filepath.Base(filepath.Clean(r.dir))
		case len(models) == 1:
			r.name = r.train
		default:
			r.name = r.model + ", " + r.train
		}
		seen[r.name]++
	}
	for _, r := range runs {
		if seen[r.name] > 1 {
			r.name = filepath.Base(filepath.Clean(r.dir))
		}
	}
}

// series returns (step, value) of key over the records of a kind.
func (r *runData) series(kind, key string) (x, y []float64) {
	for _, rec := range r.records {
		if v, ok := rec.vals[key]; ok && rec.kind == kind {
			x, y = append(x, rec.step), append(y, v)
		}
	}
	return x, y
}

// last returns the values of the last record of a kind.
func (r *runData) last(kind string) (record, bool) {
	for i := len(r.records) - 1; i >= 0; i-- {
		if r.records[i].kind == kind {
			return r.records[i], true
		}
	}
	return record{}, false
}

var metricOrder = []string{"iwae_bound", "elbo", "nll", "bpd"}

// sampleMetrics are logged as records of their own kind (experiments/fid.go),
// not inside "eval" records.
var sampleMetrics = []string{"fid", "fcd"}

// metricKind is the record kind that carries metric m.
func metricKind(m string) string {
	if slices.Contains(sampleMetrics, m) {
		return m
	}
	return "eval"
}

// chooseMetric is the first of metricOrder that every run reports.
func chooseMetric(runs []*runData) (string, error) {
	for _, m := range metricOrder {
		all := true
		for _, r := range runs {
			if x, _ := r.series("eval", m); len(x) == 0 {
				all = false
				break
			}
		}
		if all {
			return m, nil
		}
	}
	return "", fmt.Errorf("the runs share no eval metric among %v; name one with -metric", metricOrder)
}

func plotRuns(out, title, metric string, runs []*runData) error {
	var err error
	if metric == "" {
		if metric, err = chooseMetric(runs); err != nil {
			return err
		}
	}
	if title == "" {
		var names []string
		for _, r := range runs {
			if r.model != "" && !slices.Contains(names, r.model) {
				names = append(names, r.model)
			}
		}
		title = strings.Join(names, ", ")
	}
	var loss, eval []plots.Series
	var molNote []string
	for _, r := range runs {
		x, y := r.series("train", "loss")
		if len(x) == 0 {
			return fmt.Errorf("%s: metrics.jsonl has no train loss", r.dir)
		}
		loss = append(loss, plots.Series{Name: r.name, X: x, Y: y})
		x, y = r.series(metricKind(metric), metric)
		if len(x) == 0 {
			return fmt.Errorf("%s: metrics.jsonl has no %s %q", r.dir, metricKind(metric), metric)
		}
		eval = append(eval, plots.Series{Name: r.name, X: x, Y: y})
		if r.molSteps > 0 {
			molNote = append(molNote, fmt.Sprintf("%d", r.molSteps))
		}
	}
	lossTitle := title + ": train loss"
	if len(molNote) > 0 {
		lossTitle += " (mollified data until step " + strings.Join(molNote, ", ") + ")"
	}
	lp, err := plots.Curves(lossTitle, "step", "loss (nats per example)", wideAndPositive(loss), loss...)
	if err != nil {
		return err
	}
	evalTitle := title + ": test " + metric
	if metricKind(metric) != "eval" {
		evalTitle = title + ": " + metric + " of samples"
	}
	ep, err := plots.Curves(evalTitle, "step", metricUnit(metric), false, eval...)
	if err != nil {
		return err
	}
	// Bounds rise towards the top right: keep their legend out of the way.
	ep.Legend.Top = metric != "elbo" && metric != "iwae_bound"
	marked := map[int]bool{}
	for _, r := range runs {
		if r.molSteps > 0 && !marked[r.molSteps] {
			marked[r.molSteps] = true
			if err := markStep(lp, r.molSteps); err != nil {
				return err
			}
			if err := markStep(ep, r.molSteps); err != nil {
				return err
			}
		}
	}
	if err := plots.SaveTiles(out, [][]*plot.Plot{{lp, ep}}, 4.5*vg.Inch); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "curves: wrote %s (train loss, %s)\n", out, metric)
	return nil
}

// wideAndPositive reports whether the values are all positive and span more
// than a factor 20 (a mollified run's first losses), so a log scale shows
// both ends.
func wideAndPositive(ss []plots.Series) bool {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range ss {
		for _, y := range s.Y {
			if math.IsNaN(y) || math.IsInf(y, 0) {
				continue
			}
			lo, hi = min(lo, y), max(hi, y)
		}
	}
	return lo > 0 && hi > 20*lo
}

// markStep draws a dashed vertical line at step x across the plot's data
// range: where mollification ends.
func markStep(p *plot.Plot, x int) error {
	l, err := plotter.NewLine(plotter.XYs{{X: float64(x), Y: p.Y.Min}, {X: float64(x), Y: p.Y.Max}})
	if err != nil {
		return err
	}
	l.Color = color.Gray{Y: 150}
	l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(l)
	return nil
}

func metricUnit(m string) string {
	switch m {
	case "bpd":
		return "bits/dim"
	case "fid":
		return "FID (Inception features)"
	case "fcd":
		return "FCD (MNIST classifier features)"
	}
	return m + " (nats per example)"
}

// writeTable prints, per run, the train loss at the start and at the end
// (mean of the last tail records), the final eval metrics and the count of
// non-finite values among the train losses and those metrics.
func writeTable(w io.Writer, runs []*runData, tail int) error {
	keys := map[string]bool{}
	for _, r := range runs {
		if e, ok := r.last("eval"); ok {
			for k := range e.vals {
				keys[k] = true
			}
		}
	}
	var cols []string
	for _, m := range metricOrder {
		if keys[m] {
			cols = append(cols, m)
			delete(keys, m)
		}
	}
	rest := make([]string, 0, len(keys))
	for k := range keys {
		rest = append(rest, k)
	}
	sort.Strings(rest)
	cols = append(cols, rest...)
	var sampleCols []string
	for _, m := range sampleMetrics {
		for _, r := range runs {
			if _, ok := r.last(m); ok {
				sampleCols = append(sampleCols, m)
				break
			}
		}
	}

	fmt.Fprintf(w, "| run | model | training | steps | first train loss | final train loss (mean of last %d logs) |", tail)
	for _, c := range cols {
		fmt.Fprintf(w, " test %s |", c)
	}
	for _, c := range sampleCols {
		fmt.Fprintf(w, " final %s (samples) |", c)
	}
	fmt.Fprintln(w, " NaN/Inf values | skipped steps |")
	fmt.Fprint(w, "|---|---|---|---|---|---|")
	for range len(cols) + len(sampleCols) {
		fmt.Fprint(w, "---|")
	}
	fmt.Fprintln(w, "---|---|")
	for _, r := range runs {
		steps, loss := r.series("train", "loss")
		nonFinite := 0
		for _, v := range loss {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				nonFinite++
			}
		}
		first, final, lastStep := "–", "–", "–"
		if len(loss) > 0 {
			first = fmt.Sprintf("%.2f", loss[0])
			final = fmt.Sprintf("%.2f", meanOf(loss[max(0, len(loss)-tail):]))
			lastStep = fmt.Sprintf("%.0f", steps[len(steps)-1])
			if r.steps > 0 && int(steps[len(steps)-1]) < r.steps {
				lastStep += fmt.Sprintf(" of %d (unfinished)", r.steps)
			}
		}
		skipped := "–"
		if t, ok := r.last("train"); ok {
			if v, ok := t.vals["skipped_total"]; ok {
				skipped = fmt.Sprintf("%.0f", v)
			}
		}
		model, train := r.model, r.train
		if model == "" {
			model, train = "?", "?"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |", filepath.Base(filepath.Clean(r.dir)), model, train, lastStep, first, final)
		e, ok := r.last("eval")
		for _, c := range cols {
			if v, has := e.vals[c]; ok && has {
				fmt.Fprintf(w, " %s |", format(c, v))
			} else {
				fmt.Fprint(w, " – |")
			}
			if v := e.vals[c]; math.IsNaN(v) || math.IsInf(v, 0) {
				nonFinite++
			}
		}
		for _, c := range sampleCols {
			q, ok := r.last(c)
			v, has := q.vals[c]
			if !ok || !has {
				fmt.Fprint(w, " – |")
				continue
			}
			fmt.Fprintf(w, " %.2f (%.0f) |", v, q.vals["samples"])
			if math.IsNaN(v) || math.IsInf(v, 0) {
				nonFinite++
			}
		}
		fmt.Fprintf(w, " %d | %s |\n", nonFinite, skipped)
	}
	return nil
}

// format prints bits/dim to 4 decimals and nats to 2.
func format(metric string, v float64) string {
	if metric == "bpd" {
		return fmt.Sprintf("%.4f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// meanOf is the mean of xs (NaN if any is NaN).
func meanOf(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}
