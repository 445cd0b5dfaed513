package experiments

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// metricName is how tables head a metric.
func metricName(metric string) string { return strings.ToUpper(metric) }

// datasets lists the report's datasets in table order.
func (rep *Report) datasets() []string {
	var out []string
	for _, g := range rep.Groups {
		if !slices.Contains(out, g.Dataset) {
			out = append(out, g.Dataset)
		}
	}
	return out
}

// tableShape is one dataset's rows (model and variant) and columns
// (trainings), each cell a group or nil.
type tableShape struct {
	rows  []string // ModelLabel
	cols  []string // training label
	cells map[[2]string]*ReportGroup
}

func (rep *Report) shape(dataset string) tableShape {
	s := tableShape{cells: map[[2]string]*ReportGroup{}}
	var colGroups []*ReportGroup
	for _, g := range rep.Groups {
		if g.Dataset != dataset {
			continue
		}
		if !slices.Contains(s.rows, g.ModelLabel()) {
			s.rows = append(s.rows, g.ModelLabel())
		}
		if !slices.ContainsFunc(colGroups, func(c *ReportGroup) bool { return c.Label() == g.Label() }) {
			colGroups = append(colGroups, g)
		}
		s.cells[[2]string{g.ModelLabel(), g.Label()}] = g
	}
	slices.SortStableFunc(colGroups, func(a, b *ReportGroup) int {
		return trainingRank(a.Training, a.Schedule) - trainingRank(b.Training, b.Schedule)
	})
	for _, g := range colGroups {
		s.cols = append(s.cols, g.Label())
	}
	return s
}

// notCounted says which runs of a group are not in its mean, and why:
// "1 failed, 1 missing".
func (g *ReportGroup) notCounted(metric string) string {
	counts := map[string]int{}
	var order []string
	for _, r := range g.Runs {
		if r.counted() {
			continue
		}
		why := r.State
		if r.State == ReportDone {
			why = "no " + metricName(metric)
			if r.HasFinal {
				why = metricName(metric) + " not finite"
			}
		}
		if counts[why] == 0 {
			order = append(order, why)
		}
		counts[why]++
	}
	parts := make([]string, len(order))
	for i, w := range order {
		parts[i] = fmt.Sprintf("%d %s", counts[w], w)
	}
	return strings.Join(parts, ", ")
}

// formatStats prints "131.00 ± 1.41 (n=2)", "118.00 (n=1; 1 incomplete)"
// or "— (1 failed)".
func formatStats(s Stats, decimals int, rest string) string {
	if s.N == 0 {
		if rest == "" {
			return "—"
		}
		return "— (" + rest + ")"
	}
	n := fmt.Sprintf("n=%d", s.N)
	if rest != "" {
		n += "; " + rest
	}
	if s.N == 1 {
		return fmt.Sprintf("%.*f (%s)", decimals, s.Mean, n)
	}
	return fmt.Sprintf("%.*f ± %.*f (%s)", decimals, s.Mean, decimals, s.Std, n)
}

// cell is a group's metric as the tables print it, with its change.
func (g *ReportGroup) cell(metric string) string {
	out := formatStats(g.Metric, 2, g.notCounted(metric))
	if g.HasChange {
		out += " " + FormatChange(g.Change)
	}
	return out
}

// paperCell is the published value beside a group: "121.75 ↓ 7.17% (Δ -0.25)".
func (g *ReportGroup) paperCell() string {
	if !g.HasPaper {
		return "—"
	}
	out := fmtValue(g.Paper.Value)
	if g.Paper.PrintedChange != "" {
		out += " " + g.Paper.PrintedChange
	}
	var notes []string
	if g.Metric.N > 0 {
		notes = append(notes, "Δ "+signed(g.Metric.Mean-g.Paper.Value))
	}
	for _, o := range g.PaperOther {
		notes = append(notes, fmt.Sprintf("Table %s prints %s", o.Table, fmtValue(o.Value)))
	}
	if len(g.PaperFlags) > 0 {
		notes = append(notes, "flag "+joinInts(g.PaperFlags))
	}
	if len(notes) > 0 {
		out += " (" + strings.Join(notes, "; ") + ")"
	}
	return out
}

func signed(x float64) string { return fmt.Sprintf("%+.2f", x) }

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ", ")
}

// sampleCounts lists the distinct sample counts of the counted finals.
func (rep *Report) sampleCounts(dataset string) []int {
	var out []int
	for _, r := range rep.Runs {
		if r.Dataset == dataset && r.counted() && r.FinalSamples > 0 && !slices.Contains(out, r.FinalSamples) {
			out = append(out, r.FinalSamples)
		}
	}
	slices.Sort(out)
	return out
}

// paperDatasets are the datasets the paper reports FID on.
func paperDataset(d string) bool { return slices.Contains(datasetOrder, d) }

// Markdown writes the report: per dataset the metric table in the paper's
// shape (with the published values for FID), bits/dim, the figures (file
// names relative to the report), every run with its state, and the
// paper's inconsistencies.
func (rep *Report) Markdown(w io.Writer, figures []string) error {
	m := metricName(rep.Metric)
	var b strings.Builder
	fmt.Fprintf(&b, "# Sweep report: %s\n\n", rep.Dir)
	fmt.Fprintf(&b, "%s of the last %s record of each finished run: mean ± sample std over seeds (n runs). ", m, rep.Metric)
	b.WriteString("↓/↑: change of the mean against the vanilla mean of the same model and dataset, as in the paper's Table 1. ")
	b.WriteString("Runs that are not in a mean are named in its cell and listed under Runs.")
	if rep.Metric == MetricFID {
		b.WriteString(" paper: the published FID (Table 1, then the NVAE sentence of §4.2, then Table 2 for the cosine and linear schedules) with its printed change; Δ = our mean − paper.\n\n")
	} else {
		b.WriteString(" These runs are scored by FCD (the MNIST classifier's features), not FID: the paper reports FID only, so there is nothing to compare with.\n\n")
	}
	for _, d := range rep.datasets() {
		s := rep.shape(d)
		withPaper := rep.Metric == MetricFID && paperDataset(d)
		fmt.Fprintf(&b, "## %s: %s\n\n", d, m)
		if n := rep.sampleCounts(d); len(n) > 0 {
			fmt.Fprintf(&b, "%s from %s samples per run", m, joinInts(n))
			if withPaper {
				b.WriteString(" (the paper: 50000; FID from fewer samples is biased upwards)")
			}
			b.WriteString(".\n\n")
		}
		b.WriteString("| model |")
		sep := "|---|"
		for _, c := range s.cols {
			fmt.Fprintf(&b, " %s |", c)
			sep += "---|"
			if withPaper {
				b.WriteString(" paper |")
				sep += "---|"
			}
		}
		b.WriteString("\n" + sep + "\n")
		for _, row := range s.rows {
			fmt.Fprintf(&b, "| %s |", row)
			for _, c := range s.cols {
				g := s.cells[[2]string{row, c}]
				if g == nil {
					b.WriteString(" not in the sweep |")
					if withPaper {
						b.WriteString(" |")
					}
					continue
				}
				fmt.Fprintf(&b, " %s |", g.cell(rep.Metric))
				if withPaper {
					fmt.Fprintf(&b, " %s |", g.paperCell())
				}
			}
			b.WriteString("\n")
		}
		b.WriteString("\n")
	}
	rep.bpdMarkdown(&b)
	if len(figures) > 0 {
		b.WriteString("## Figures\n\n")
		for _, f := range figures {
			fmt.Fprintf(&b, "![%s](%s)\n\n", f, f)
		}
	}
	rep.runsMarkdown(&b)
	if rep.comparesWithPaper() && len(rep.Flags) > 0 {
		b.WriteString("## Paper inconsistencies\n\nFound by experiments.PaperFlags in the published values (experiments/paper/README.md); the values are shown as printed.\n\n")
		for i, f := range rep.Flags {
			fmt.Fprintf(&b, "%d. %s: %s\n", i+1, f.Kind, f.Message)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// comparesWithPaper reports whether a cell has a published value beside it.
func (rep *Report) comparesWithPaper() bool {
	return slices.ContainsFunc(rep.Groups, func(g *ReportGroup) bool { return g.HasPaper })
}

func (rep *Report) bpdMarkdown(b *strings.Builder) {
	have := false
	for _, g := range rep.Groups {
		have = have || g.BPD.N > 0
	}
	if !have {
		return
	}
	b.WriteString("## Bits/dim\n\nBits/dim of the last eval record (test set) of the runs in the tables above: mean ± sample std; ↓/↑ against vanilla.\n\n")
	for _, d := range rep.datasets() {
		s := rep.shape(d)
		fmt.Fprintf(b, "| %s | %s |\n|---|", d, strings.Join(s.cols, " | "))
		for range s.cols {
			b.WriteString("---|")
		}
		b.WriteString("\n")
		for _, row := range s.rows {
			fmt.Fprintf(b, "| %s |", row)
			for _, c := range s.cols {
				g := s.cells[[2]string{row, c}]
				if g == nil {
					b.WriteString(" not in the sweep |")
					continue
				}
				cell := formatStats(g.BPD, 4, "")
				if g.HasBPDChange {
					cell += " " + FormatChange(g.BPDChange)
				}
				fmt.Fprintf(b, " %s |", cell)
			}
			b.WriteString("\n")
		}
		b.WriteString("\n")
	}
}

func (rep *Report) runsMarkdown(b *strings.Builder) {
	m := metricName(rep.Metric)
	b.WriteString("## Runs\n\n")
	fmt.Fprintf(b, "| # | run | dataset | model | training | seed | state | step | last %s | detail |\n|---|---|---|---|---|---|---|---|---|---|\n", m)
	for _, r := range rep.Runs {
		model, training, seed, dataset := paperModelName(r.Model), trainingLabel(r.Training, r.Schedule), strconv.FormatUint(r.Seed, 10), r.Dataset
		if r.Variant != "" {
			model += " [" + r.Variant + "]"
		}
		detail := r.Detail
		if r.ConfigErr != "" {
			model, training, seed, dataset = "?", "?", "?", "?"
			detail = "config: " + r.ConfigErr
		}
		step := "—"
		if r.State != ReportMissing {
			step = strconv.Itoa(r.LastStep)
			if r.Iterations > 0 {
				step += "/" + strconv.Itoa(r.Iterations)
			}
		}
		last := "—"
		if r.HasFinal {
			last = fmt.Sprintf("%.2f @%d", r.Final, r.FinalStep)
		}
		fmt.Fprintf(b, "| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Index, r.Dir, dataset, model, training, seed, r.State, step, last, mdEscape(detail))
	}
	b.WriteString("\n")
}

// mdEscape keeps a free-text detail inside its table cell.
func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// csvFloat prints a number for the CSV, "" when absent.
func csvFloat(ok bool, x float64, decimals int) string {
	if !ok || math.IsNaN(x) || math.IsInf(x, 0) {
		return ""
	}
	return strconv.FormatFloat(x, 'f', decimals, 64)
}

var reportCSVHeader = []string{"dataset", "model", "variant", "training", "schedule", "metric", "n", "mean", "std",
	"change_pct", "not_counted", "runs", "bpd_n", "bpd_mean", "bpd_std", "bpd_change_pct",
	"paper_value", "paper_change", "paper_source", "diff", "paper_other", "paper_flags"}

// CSV writes one row per setting (dataset, model, variant, training).
func (rep *Report) CSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(reportCSVHeader); err != nil {
		return err
	}
	for _, g := range rep.Groups {
		var runs []string
		for _, r := range g.Runs {
			runs = append(runs, fmt.Sprintf("%s:%s", r.Dir, r.State))
		}
		paperVal, paperChange, paperSrc, diff, other := "", "", "", "", ""
		if g.HasPaper {
			paperVal, paperChange, paperSrc = fmtValue(g.Paper.Value), g.Paper.PrintedChange, g.Paper.Where()
			diff = csvFloat(g.Metric.N > 0, g.Metric.Mean-g.Paper.Value, 4)
			var others []string
			for _, o := range g.PaperOther {
				others = append(others, fmtValue(o.Value)+" ("+o.Where()+")")
			}
			other = strings.Join(others, "; ")
		}
		rec := []string{g.Dataset, g.Model, g.Variant, g.Training, g.Schedule, rep.Metric,
			strconv.Itoa(g.Metric.N), csvFloat(true, g.Metric.Mean, 4), csvFloat(true, g.Metric.Std, 4),
			csvFloat(g.HasChange, g.Change, 4), g.notCounted(rep.Metric), strings.Join(runs, " "),
			strconv.Itoa(g.BPD.N), csvFloat(true, g.BPD.Mean, 6), csvFloat(true, g.BPD.Std, 6), csvFloat(g.HasBPDChange, g.BPDChange, 4),
			paperVal, paperChange, paperSrc, diff, other, joinInts(g.PaperFlags)}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
