package experiments

import (
	"bytes"
	_ "embed"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// publishedCSV is the paper's FID values as printed (experiments/paper).
//
//go:embed paper/published.csv
var publishedCSV []byte

// Trainings as the report and published.csv name them.
const (
	TrainingVanilla  = "vanilla"
	TrainingGaussian = "gaussian"
	TrainingBlur     = "blur"
)

// PaperValue is one number the paper prints.
type PaperValue struct {
	Table    string // "1", "2", "3" or "text" (a number in the prose)
	Row      string // the row label as printed, "REAL-NVP [14]"
	Model    string // config model name: realnvp, glow, vae, vae_iaf, iwae, beta_vae, hvae, nvae
	Dataset  string // cifar10 | celeba
	Training string // vanilla | gaussian | blur | two_step_* (Table 3's baselines)
	Schedule string // the Gaussian schedule (sigmoid | cosine | linear); "" otherwise
	Metric   string // fid
	Value    float64
	// PrintedChange is the change against vanilla as printed ("↓ 7.17%"),
	// "" where the paper prints none.
	PrintedChange string
	SourceLine    int // line of the paper text (paper/README.md)
}

// Where says where the value is printed: "Table 1, line 162".
func (v PaperValue) Where() string {
	if v.Table == "text" {
		return fmt.Sprintf("text, line %d", v.SourceLine)
	}
	return fmt.Sprintf("Table %s, line %d", v.Table, v.SourceLine)
}

var paperHeader = []string{"table", "row", "model", "dataset", "training", "schedule", "metric", "value", "printed_change", "source_line"}

var (
	paperOnce sync.Once
	paperVals []PaperValue
	paperErr  error
)

// PaperValues returns the embedded published values, in file order.
func PaperValues() ([]PaperValue, error) {
	paperOnce.Do(func() { paperVals, paperErr = ParsePaperValues(bytes.NewReader(publishedCSV)) })
	return slices.Clone(paperVals), paperErr
}

// ParsePaperValues reads a file in published.csv's format ('#' lines are
// comments) and checks every field, reporting all problems at once.
func ParsePaperValues(r io.Reader) ([]PaperValue, error) {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.FieldsPerRecord = len(paperHeader)
	recs, err := cr.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("published values: %w (columns: %s)", err, strings.Join(paperHeader, ","))
	}
	if len(recs) == 0 || !slices.Equal(recs[0], paperHeader) {
		return nil, fmt.Errorf("published values: the first row must be the header %s", strings.Join(paperHeader, ","))
	}
	var out []PaperValue
	var errs []error
	for i, rec := range recs[1:] {
		v := PaperValue{Table: rec[0], Row: rec[1], Model: rec[2], Dataset: rec[3], Training: rec[4],
			Schedule: rec[5], Metric: rec[6], PrintedChange: rec[8]}
		bad := func(format string, a ...any) {
			errs = append(errs, fmt.Errorf("published values, row %d (%s): %s", i+2, strings.Join(rec[:5], ","), fmt.Sprintf(format, a...)))
		}
		var err error
		if v.Value, err = strconv.ParseFloat(rec[7], 64); err != nil || !(v.Value > 0) {
			bad("value %q must be a positive number", rec[7])
		}
		if v.SourceLine, err = strconv.Atoi(rec[9]); err != nil || v.SourceLine <= 0 {
			bad("source_line %q must be a line number", rec[9])
		}
		if v.PrintedChange != "" {
			if _, err := parseChange(v.PrintedChange); err != nil {
				bad("%v", err)
			}
		}
		switch {
		case v.Training == TrainingGaussian && !slices.Contains([]string{"sigmoid", "cosine", "linear"}, v.Schedule):
			bad("a gaussian value needs schedule sigmoid, cosine or linear, got %q", v.Schedule)
		case v.Training != TrainingGaussian && v.Schedule != "":
			bad("schedule %q is only for training gaussian", v.Schedule)
		}
		if v.Table == "" || v.Model == "" || v.Dataset == "" || v.Training == "" || v.Metric == "" {
			bad("table, model, dataset, training and metric must be set")
		}
		out = append(out, v)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// parseChange reads a printed change, "↓ 7.17%" (−7.17) or "↑ 5.11%".
func parseChange(s string) (float64, error) {
	var sign float64
	rest, ok := strings.CutPrefix(s, "↓ ")
	if ok {
		sign = -1
	} else if rest, ok = strings.CutPrefix(s, "↑ "); ok {
		sign = 1
	}
	num, pct := strings.CutSuffix(rest, "%")
	x, err := strconv.ParseFloat(num, 64)
	if sign == 0 || !pct || err != nil || x < 0 {
		return 0, fmt.Errorf("printed_change %q must read \"↓ 7.17%%\" or \"↑ 5.11%%\"", s)
	}
	return sign * x, nil
}

// ChangePercent is the paper's "↓/↑ x%": (value − vanilla)/vanilla·100.
func ChangePercent(value, vanilla float64) float64 { return (value - vanilla) / vanilla * 100 }

// FormatChange prints a change as the paper does: "↓ 7.17%", "↑ 5.11%".
func FormatChange(pct float64) string {
	r := math.Round(pct*100) / 100
	switch {
	case r < 0:
		return fmt.Sprintf("↓ %.2f%%", -r)
	case r > 0:
		return fmt.Sprintf("↑ %.2f%%", r)
	}
	return "0.00%"
}

// PaperFlag is an inconsistency found among the published values.
type PaperFlag struct {
	// Kind: "percentage" (a printed change that does not follow from the
	// printed values), "cross-table" (one setting printed with two values),
	// "duplicate" (two models printed with the same value in one column)
	// or "text-vs-table" (a claim of the prose the tables contradict).
	Kind    string
	Message string
	Values  []PaperValue // the values involved
}

// Involves reports whether the flag concerns a published value.
func (f PaperFlag) Involves(v PaperValue) bool { return slices.Contains(f.Values, v) }

// paperClaimLine is §4.2's "consistently improves model performance
// compared to vanilla training across all datasets and models".
const paperClaimLine = 178

// PaperFlags checks the published values against each other: printed
// percentages recomputed from the values, settings printed twice with
// different values, one value printed for two models in the same column,
// and §4.2's claim that mollification improves every Table 1 entry.
func PaperFlags(vals []PaperValue) []PaperFlag {
	var flags []PaperFlag
	type key struct{ table, dataset, model, training, schedule, metric string }
	keyOf := func(v PaperValue) key {
		return key{v.Table, v.Dataset, v.Model, v.Training, v.Schedule, v.Metric}
	}
	byKey := map[key]PaperValue{}
	for _, v := range vals {
		byKey[keyOf(v)] = v
	}
	for _, v := range vals {
		if v.PrintedChange == "" {
			continue
		}
		printed, err := parseChange(v.PrintedChange)
		if err != nil {
			continue // ParsePaperValues refuses it
		}
		k := keyOf(v)
		k.training, k.schedule = TrainingVanilla, ""
		van, ok := byKey[k]
		if !ok {
			flags = append(flags, PaperFlag{Kind: "percentage", Values: []PaperValue{v},
				Message: fmt.Sprintf("%s %s %s %s prints %s, but the table has no vanilla value to compare with (%s)", v.Row, v.Dataset, trainingLabel(v.Training, v.Schedule), fmtValue(v.Value), v.PrintedChange, v.Where())})
			continue
		}
		got := ChangePercent(v.Value, van.Value)
		if math.Abs(math.Round(got*100)/100-printed) > 0.005 {
			flags = append(flags, PaperFlag{Kind: "percentage", Values: []PaperValue{v, van},
				Message: fmt.Sprintf("%s %s %s: %s against vanilla %s is %s, but the paper prints %s (%s)",
					v.Row, v.Dataset, trainingLabel(v.Training, v.Schedule), fmtValue(v.Value), fmtValue(van.Value), FormatChange(got), v.PrintedChange, v.Where())})
		}
	}
	// The same setting in two tables.
	type setting struct{ dataset, model, training, schedule, metric string }
	seen := map[setting][]PaperValue{}
	var order []setting
	for _, v := range vals {
		s := setting{v.Dataset, v.Model, v.Training, v.Schedule, v.Metric}
		if len(seen[s]) == 0 {
			order = append(order, s)
		}
		seen[s] = append(seen[s], v)
	}
	for _, s := range order {
		vs := seen[s]
		for _, v := range vs[1:] {
			if v.Value != vs[0].Value {
				flags = append(flags, PaperFlag{Kind: "cross-table", Values: []PaperValue{vs[0], v},
					Message: fmt.Sprintf("%s %s %s is %s (%s) but %s (%s)", paperModelName(s.model), s.dataset, trainingLabel(s.training, s.schedule),
						fmtValue(vs[0].Value), vs[0].Where(), fmtValue(v.Value), v.Where())})
			}
		}
	}
	// One value for two models in the same column of a table: a copy error
	// (Table 2's REAL-NVP vanilla is the VAE's).
	type column struct{ table, dataset, training, schedule, metric string }
	cols := map[column][]PaperValue{}
	for _, v := range vals {
		c := column{v.Table, v.Dataset, v.Training, v.Schedule, v.Metric}
		for _, w := range cols[c] {
			if w.Value == v.Value && w.Model != v.Model {
				msg := fmt.Sprintf("Table %s prints %s for both %s (line %d) and %s (line %d), %s %s: one is probably copied from the other",
					v.Table, fmtValue(v.Value), w.Row, w.SourceLine, v.Row, v.SourceLine, v.Dataset, trainingLabel(v.Training, v.Schedule))
				if o, ok := otherTableValue(vals, v.Table, w); ok && o.Value != w.Value {
					msg += fmt.Sprintf("; %s prints %s for %s", o.Where(), fmtValue(o.Value), w.Row)
				}
				flags = append(flags, PaperFlag{Kind: "duplicate", Values: []PaperValue{w, v}, Message: msg})
			}
		}
		cols[c] = append(cols[c], v)
	}
	// §4.2 claims an improvement everywhere; Table 1 prints its degradations.
	var worse []PaperValue
	var names []string
	for _, v := range vals {
		if v.Table == "1" && strings.HasPrefix(v.PrintedChange, "↑") {
			worse = append(worse, v)
			names = append(names, fmt.Sprintf("%s %s %s %s", v.Row, v.Dataset, v.Training, v.PrintedChange))
		}
	}
	if len(worse) > 0 {
		flags = append(flags, PaperFlag{Kind: "text-vs-table", Values: worse,
			Message: fmt.Sprintf("the text (line %d) says mollification \"consistently improves model performance compared to vanilla training across all datasets and models\", but Table 1 prints %d degradation(s): %s",
				paperClaimLine, len(worse), strings.Join(names, "; "))})
	}
	return flags
}

// otherTableValue is w's setting as printed in a table other than table.
func otherTableValue(vals []PaperValue, table string, w PaperValue) (PaperValue, bool) {
	for _, o := range vals {
		if o.Table != table && o.Dataset == w.Dataset && o.Model == w.Model && o.Training == w.Training && o.Schedule == w.Schedule && o.Metric == w.Metric {
			return o, true
		}
	}
	return PaperValue{}, false
}

// paperTablePreference orders the sources of a setting printed more than
// once: Table 1 is the paper's main result, Table 2 its schedule ablation.
var paperTablePreference = []string{"1", "text", "2", "3"}

// PaperLookup returns the published value of a setting: the one of the
// most authoritative table (Table 1, the prose, Table 2, Table 3), and the
// other printings of the same setting that disagree with it. schedule is
// only read for the gaussian training ("" means sigmoid, the paper's
// default).
func PaperLookup(vals []PaperValue, metric, dataset, model, training, schedule string) (PaperValue, []PaperValue, bool) {
	if training != TrainingGaussian {
		schedule = ""
	} else if schedule == "" {
		schedule = "sigmoid"
	}
	var found []PaperValue
	for _, v := range vals {
		if v.Metric == metric && v.Dataset == dataset && v.Model == model && v.Training == training && v.Schedule == schedule {
			found = append(found, v)
		}
	}
	if len(found) == 0 {
		return PaperValue{}, nil, false
	}
	rank := func(v PaperValue) int {
		if i := slices.Index(paperTablePreference, v.Table); i >= 0 {
			return i
		}
		return len(paperTablePreference)
	}
	slices.SortStableFunc(found, func(a, b PaperValue) int { return rank(a) - rank(b) })
	var other []PaperValue
	for _, v := range found[1:] {
		if v.Value != found[0].Value {
			other = append(other, v)
		}
	}
	return found[0], other, true
}

// paperModelNames are the paper's names of the models.
var paperModelNames = map[string]string{
	"realnvp": "REAL-NVP", "glow": "GLOW", "vae": "VAE", "vae_iaf": "VAE-IAF",
	"iwae": "IWAE", "beta_vae": "β-VAE", "hvae": "HVAE", "nvae": "NVAE",
}

// paperModelOrder is the row order of the paper's tables.
var paperModelOrder = []string{"realnvp", "glow", "vae", "vae_iaf", "iwae", "beta_vae", "hvae", "nvae"}

// paperModelName is the paper's name of a config model, or the name itself.
func paperModelName(model string) string {
	if n, ok := paperModelNames[model]; ok {
		return n
	}
	return model
}

// trainingLabel names a training in tables: "vanilla", "gaussian" (the
// sigmoid schedule, the paper's default), "gaussian cosine", "blur".
func trainingLabel(training, schedule string) string {
	if training == TrainingGaussian && schedule != "" && schedule != "sigmoid" {
		return training + " " + schedule
	}
	return training
}

// fmtValue prints a published value as the paper does, to 2 decimals.
func fmtValue(x float64) string { return strconv.FormatFloat(x, 'f', 2, 64) }
