package experiments

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/experiments/sweep"
)

// States of a sweep's run in a report.
const (
	ReportDone       = "done"       // done.json
	ReportFailed     = "failed"     // no done.json; train.log ends with "train: ..."
	ReportIncomplete = "incomplete" // a folder, no done.json, no error: running or interrupted
	ReportMissing    = "missing"    // no folder
)

// ReportRun is one run of a sweep folder as the report reads it.
type ReportRun struct {
	Index     int
	ID        string
	Dir       string // as the manifest names it, relative to the sweep folder
	Base      string
	Overrides []string
	Labels    map[string]string

	State  string // ReportDone, ReportFailed, ReportIncomplete or ReportMissing
	Detail string // the error line of a failed run, what a missing value means

	// From the resolved config (config.yaml, or base + overrides).
	Dataset, Model     string
	Training, Schedule string // Schedule only for gaussian
	Variant            string // the labels other than training and seed: "optim.lr=0.001"
	Seed               uint64
	Iterations         int
	ConfigErr          string // why the config could not be resolved; the run is then listed but not grouped

	LastStep int // last step logged in metrics.jsonl (done.json's steps when finished)

	// The last record of the report's metric (fid or fcd): Final is NaN
	// when that evaluation failed. FinalSamples is its sample count.
	HasFinal     bool
	Final        float64
	FinalStep    int
	FinalSamples int
	Curve        []CurvePoint // the metric over training

	HasBPD bool
	BPD    float64 // bits/dim of the last eval record

	SamplePNG string // the last samples/step-*.png, "" if none
}

// CurvePoint is a metric at a training step.
type CurvePoint struct {
	Step  int
	Value float64
}

// counted reports whether the run's final value enters its group's mean:
// finished, with a finite value.
func (r *ReportRun) counted() bool {
	return r.State == ReportDone && r.HasFinal && !math.IsNaN(r.Final) && !math.IsInf(r.Final, 0)
}

// Stats is a mean and sample standard deviation over N values.
type Stats struct {
	N         int
	Mean, Std float64 // Std is NaN for N < 2
}

func statsOf(xs []float64) Stats {
	s := Stats{N: len(xs), Mean: math.NaN(), Std: math.NaN()}
	if s.N == 0 {
		return s
	}
	sum := 0.0
	for _, x := range xs {
		sum += x
	}
	s.Mean = sum / float64(s.N)
	if s.N > 1 {
		ss := 0.0
		for _, x := range xs {
			ss += (x - s.Mean) * (x - s.Mean)
		}
		s.Std = math.Sqrt(ss / float64(s.N-1))
	}
	return s
}

// ReportGroup is the seeds of one setting: a cell of the paper's tables.
type ReportGroup struct {
	Dataset, Model, Variant, Training, Schedule string
	Runs                                        []*ReportRun

	Metric Stats // final metric over the finished runs with a finite value
	BPD    Stats // last bits/dim over the same runs
	// Change is the metric mean's change in % against the vanilla mean of
	// the same dataset, model and variant (HasChange false for vanilla or
	// without a vanilla mean). BPDChange likewise.
	HasChange, HasBPDChange bool
	Change, BPDChange       float64

	HasPaper   bool
	Paper      PaperValue   // the published value of the setting (FID only)
	PaperOther []PaperValue // other printings of it that disagree
	PaperFlags []int        // 1-based indexes into Report.Flags that concern it
}

// Label is the training as tables name it: vanilla, gaussian, gaussian cosine, blur.
func (g *ReportGroup) Label() string { return trainingLabel(g.Training, g.Schedule) }

// ModelLabel is the model as the paper names it, with the variant.
func (g *ReportGroup) ModelLabel() string {
	if g.Variant != "" {
		return paperModelName(g.Model) + " [" + g.Variant + "]"
	}
	return paperModelName(g.Model)
}

// Report is what cmd/report prints about a sweep folder.
type Report struct {
	Dir    string
	Metric string // fid or fcd
	Runs   []*ReportRun
	Groups []*ReportGroup // paper order: dataset, model, variant, training
	Flags  []PaperFlag    // the paper's inconsistencies (PaperFlags)
}

// Report metrics: FID (Inception features) or FCD (the MNIST classifier's).
const (
	MetricFID = "fid"
	MetricFCD = "fcd"
)

// ReadReport reads a sweep folder (manifest.jsonl and a cmd/train run
// folder per run) into a report of metric: "fid", "fcd", or "" for the
// one the runs logged (fid if any run has it).
func ReadReport(dir, metric string) (*Report, error) {
	if metric != "" && metric != MetricFID && metric != MetricFCD {
		return nil, fmt.Errorf("metric %q: want fid or fcd (flag -metric)", metric)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("sweep folder: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s is a file, not a sweep folder: pass the folder cmd/sweep ran the sweep into (it holds manifest.jsonl)", dir)
	}
	entries, err := readReportManifest(dir)
	if err != nil {
		return nil, err
	}
	vals, err := PaperValues()
	if err != nil {
		return nil, err
	}
	rep := &Report{Dir: dir, Flags: PaperFlags(vals)}
	for _, e := range entries {
		rep.Runs = append(rep.Runs, readReportRun(dir, e))
	}
	rep.Metric = metric
	if metric == "" {
		rep.Metric = MetricFID
		if !rep.anyRecords(MetricFID) && rep.anyRecords(MetricFCD) {
			rep.Metric = MetricFCD
		}
	}
	for _, r := range rep.Runs {
		if err := r.readMetrics(filepath.Join(dir, r.Dir), rep.Metric); err != nil {
			return nil, err
		}
	}
	if metric != "" && !rep.anyRecords(metric) {
		other := MetricFCD
		if metric == MetricFCD {
			other = MetricFID
		}
		if rep.anyRecords(other) {
			return nil, fmt.Errorf("no run of %s logged %s records, but they logged %s: use -metric %s", dir, metric, other, other)
		}
	}
	rep.group(vals)
	return rep, nil
}

// anyRecords reports whether a run folder's metrics.jsonl has a record of kind.
func (rep *Report) anyRecords(kind string) bool {
	for _, r := range rep.Runs {
		if r.State == ReportMissing {
			continue
		}
		if n, _ := scanMetrics(filepath.Join(rep.Dir, r.Dir), func(rec map[string]any) bool { return rec["kind"] == kind }); n > 0 {
			return true
		}
	}
	return false
}

func readReportManifest(dir string) ([]sweep.ManifestEntry, error) {
	path := filepath.Join(dir, sweep.ManifestName)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s is not a sweep folder: it has no manifest.jsonl (pass the folder a sweep ran into; `go run ./cmd/sweep plan FILE` shows where that is)", dir)
	}
	out, lines, err := sweep.ReadManifestLines(dir)
	errs := []error{err}
	dirs := map[string]int{}
	for i, e := range out {
		switch {
		case e.Dir == "":
			errs = append(errs, fmt.Errorf("%s line %d: run %d has no \"dir\"", path, lines[i], e.Index))
		case dirs[e.Dir] > 0:
			errs = append(errs, fmt.Errorf("%s line %d: run %d has the folder %q of line %d", path, lines[i], e.Index, e.Dir, dirs[e.Dir]))
		default:
			dirs[e.Dir] = lines[i]
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s lists no runs: nothing to report (re-plan the sweep with `go run ./cmd/sweep plan FILE`)", path)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out, nil
}

// readReportRun reads a run's state and config (not yet its metrics).
func readReportRun(sweepDir string, e sweep.ManifestEntry) *ReportRun {
	r := &ReportRun{Index: e.Index, ID: e.ID, Dir: e.Dir, Base: e.Base, Overrides: e.Overrides, Labels: e.Labels}
	dir := filepath.Join(sweepDir, e.Dir)
	var c *config.Config
	var err error
	if st, serr := os.Stat(dir); serr != nil || !st.IsDir() {
		r.State, r.Detail = ReportMissing, "no run folder "+e.Dir
		c, err = config.Load(e.Base, e.Overrides)
	} else {
		path := filepath.Join(dir, config.ResolvedName)
		if _, serr := os.Stat(path); serr == nil {
			c, err = config.Load(path, nil)
		} else {
			c, err = config.Load(e.Base, e.Overrides)
		}
		// The sweep's own reading of the folder (done.json, a live worker's
		// lock, train.log's last attempt); running, interrupted and pending
		// runs are incomplete here.
		switch st := sweep.StatusOf(dir); st.State {
		case sweep.StateDone:
			r.State, r.LastStep = ReportDone, st.Step
		case sweep.StateFailed:
			r.State, r.Detail = ReportFailed, st.Detail
		default:
			r.State = ReportIncomplete
		}
		r.SamplePNG = lastSamplePNG(dir)
	}
	if err != nil {
		r.ConfigErr = err.Error()
		return r
	}
	r.Dataset, r.Model, r.Seed, r.Iterations = c.Data.Dataset, c.Model.Name, c.Run.Seed, c.Run.Iterations
	r.Training = TrainingVanilla
	if c.Mollification.Enabled {
		r.Training = c.Mollification.Kind
		if r.Training == TrainingGaussian {
			r.Schedule = c.Mollification.Schedule
		}
	}
	r.Variant = variantOf(e.Labels)
	return r
}

// trainingKeys are the mollification keys the training column shows.
var trainingKeys = []string{"enabled", "kind", "schedule"}

// variantOf is the manifest labels that are neither the seed nor the
// training: runs that differ in them are different rows.
func variantOf(labels map[string]string) string {
	var parts []string
	for k, v := range labels {
		switch {
		case k == "run.seed":
		case k == "mollification":
			// A map axis: "kind=blur,fraction=0.3".
			for _, p := range strings.Split(v, ",") {
				sub, _, _ := strings.Cut(strings.TrimSpace(p), "=")
				if !slices.Contains(trainingKeys, sub) {
					parts = append(parts, "mollification."+strings.TrimSpace(p))
				}
			}
		case strings.HasPrefix(k, "mollification.") && slices.Contains(trainingKeys, strings.TrimPrefix(k, "mollification.")):
		default:
			parts = append(parts, k+"="+v)
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// lastSamplePNG is the samples/step-*.png of the highest step (the names
// are zero-padded, so the last in order).
func lastSamplePNG(dir string) string {
	m, _ := filepath.Glob(filepath.Join(dir, "samples", "step-*.png"))
	if len(m) == 0 {
		return ""
	}
	sort.Strings(m)
	return m[len(m)-1]
}

// scanMetrics calls keep on each record of dir/metrics.jsonl and counts
// those it keeps. A torn last line (a killed run) is skipped.
func scanMetrics(dir string, keep func(map[string]any) bool) (int, error) {
	f, err := os.Open(filepath.Join(dir, "metrics.jsonl"))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) != nil {
			continue
		}
		if keep(rec) {
			n++
		}
	}
	if err := sc.Err(); err != nil {
		return n, fmt.Errorf("reading %s/metrics.jsonl: %w", dir, err)
	}
	return n, nil
}

// number reads a metrics.jsonl value: a JSON number, or the "NaN"/"±Inf"
// strings train.Trainer.Metric writes for non-finite values.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case string:
		if f, err := strconv.ParseFloat(x, 64); err == nil && (math.IsNaN(f) || math.IsInf(f, 0)) {
			return f, true
		}
	}
	return 0, false
}

// readMetrics reads the run's curve and final value of metric, its last
// bits/dim and its last step.
func (r *ReportRun) readMetrics(dir, metric string) error {
	if r.State == ReportMissing {
		return nil
	}
	var finalErr string
	_, err := scanMetrics(dir, func(rec map[string]any) bool {
		step, _ := number(rec["step"])
		if r.State != ReportDone || r.LastStep == 0 {
			r.LastStep = max(r.LastStep, int(step))
		}
		switch rec["kind"] {
		case metric:
			v, ok := number(rec[metric])
			if !ok {
				v = math.NaN()
			}
			r.HasFinal, r.Final, r.FinalStep = true, v, int(step)
			s, _ := number(rec["samples"])
			r.FinalSamples = int(s)
			finalErr, _ = rec["error"].(string)
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				r.Curve = append(r.Curve, CurvePoint{Step: int(step), Value: v})
			}
		case "eval":
			if v, ok := number(rec["bpd"]); ok {
				r.HasBPD, r.BPD = true, v
			}
		}
		return false
	})
	if err != nil {
		return err
	}
	if r.Detail != "" {
		return nil
	}
	switch {
	case r.State == ReportDone && !r.HasFinal:
		r.Detail = fmt.Sprintf("finished without a %s record (eval.fid_samples is 0?)", metric)
	case r.HasFinal && (math.IsNaN(r.Final) || math.IsInf(r.Final, 0)):
		r.Detail = fmt.Sprintf("last %s not finite", metric)
		if finalErr != "" {
			r.Detail += ": " + finalErr
		}
	case r.State == ReportIncomplete:
		r.Detail = fmt.Sprintf("no done.json; last step logged %d of %d", r.LastStep, r.Iterations)
	}
	return nil
}

// datasetOrder puts the paper's datasets first.
var datasetOrder = []string{config.DatasetCIFAR10, config.DatasetCelebA}

// trainingOrder is the column order: the paper's Table 1, then Table 2's
// schedules before blur.
func trainingRank(training, schedule string) int {
	switch {
	case training == TrainingVanilla:
		return 0
	case training == TrainingGaussian && (schedule == "" || schedule == "sigmoid"):
		return 1
	case training == TrainingGaussian && schedule == "cosine":
		return 2
	case training == TrainingGaussian:
		return 3
	case training == TrainingBlur:
		return 4
	}
	return 5
}

func rankIn(order []string, s string) int {
	if i := slices.Index(order, s); i >= 0 {
		return i
	}
	return len(order)
}

// group collects the runs into settings, computes the statistics and the
// changes against vanilla, and looks up the published values.
func (rep *Report) group(vals []PaperValue) {
	type key struct{ dataset, model, variant, training, schedule string }
	byKey := map[key]*ReportGroup{}
	for _, r := range rep.Runs {
		if r.ConfigErr != "" {
			continue // listed in the run table with its error
		}
		k := key{r.Dataset, r.Model, r.Variant, r.Training, r.Schedule}
		g := byKey[k]
		if g == nil {
			g = &ReportGroup{Dataset: r.Dataset, Model: r.Model, Variant: r.Variant, Training: r.Training, Schedule: r.Schedule}
			byKey[k] = g
			rep.Groups = append(rep.Groups, g)
		}
		g.Runs = append(g.Runs, r)
	}
	slices.SortStableFunc(rep.Groups, func(a, b *ReportGroup) int {
		if c := rankIn(datasetOrder, a.Dataset) - rankIn(datasetOrder, b.Dataset); c != 0 {
			return c
		}
		if c := strings.Compare(a.Dataset, b.Dataset); c != 0 {
			return c
		}
		if c := rankIn(paperModelOrder, a.Model) - rankIn(paperModelOrder, b.Model); c != 0 {
			return c
		}
		if c := strings.Compare(a.Model, b.Model); c != 0 {
			return c
		}
		if c := strings.Compare(a.Variant, b.Variant); c != 0 {
			return c
		}
		return trainingRank(a.Training, a.Schedule) - trainingRank(b.Training, b.Schedule)
	})
	for _, g := range rep.Groups {
		var xs, bpd []float64
		for _, r := range g.Runs {
			if r.counted() {
				xs = append(xs, r.Final)
				if r.HasBPD {
					bpd = append(bpd, r.BPD)
				}
			}
		}
		g.Metric, g.BPD = statsOf(xs), statsOf(bpd)
		if rep.Metric == MetricFID {
			g.Paper, g.PaperOther, g.HasPaper = PaperLookup(vals, MetricFID, g.Dataset, g.Model, g.Training, g.Schedule)
		}
		if g.HasPaper {
			for i, f := range rep.Flags {
				involved := f.Involves(g.Paper)
				for _, o := range g.PaperOther {
					involved = involved || f.Involves(o)
				}
				if involved {
					g.PaperFlags = append(g.PaperFlags, i+1)
				}
			}
		}
	}
	for _, g := range rep.Groups {
		if g.Training == TrainingVanilla {
			continue
		}
		van := byKey[key{g.Dataset, g.Model, g.Variant, TrainingVanilla, ""}]
		if van == nil {
			continue
		}
		if g.Metric.N > 0 && van.Metric.N > 0 {
			g.HasChange, g.Change = true, ChangePercent(g.Metric.Mean, van.Metric.Mean)
		}
		if g.BPD.N > 0 && van.BPD.N > 0 {
			g.HasBPDChange, g.BPDChange = true, ChangePercent(g.BPD.Mean, van.BPD.Mean)
		}
	}
}
