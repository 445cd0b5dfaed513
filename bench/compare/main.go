// Command compare runs the Go and PyTorch versions of a benchmark side by
// side, alternating them for several rounds with the same thread settings,
// and prints steps/s (median), its ratio to PyTorch eager, CPU time, peak
// RSS and, when the programs report them, the CUDA caching allocator's
// peaks, as a markdown table (under -title, when given). Each run prints
// one JSON line; -final-key names its final-quality number (final_nll for
// the flows, final_loss for the VAE).
//
// The rows are Go, PyTorch eager, PyTorch with foreach (unless
// -foreach=false), then one row per -go-also and -py-also argument set
// (ablations, or -cuda-graph / --cuda-graph). With -keep-going a failed run
// is recorded, with the end of its error, and the others go on; -append
// adds every run to a JSON-lines file under -name, and -summarize prints
// one table of every benchmark in such a file. -require states a
// criterion on the medians, "[NAME:] IMPL/IMPL >= X", printed as MET or
// NOT MET with its numbers, or UNMEASURED when either row has fewer than
// -min-rounds successful runs.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"
)

// result is one run: the fields of its JSON line, and where it belongs.
type result struct {
	Bench     string  `json:"bench,omitempty"`
	Round     int     `json:"round"`
	Row       int     `json:"row"`             // index of the command in the round
	Label     string  `json:"label"`           // the row's name when its runs fail
	Error     string  `json:"error,omitempty"` // the run failed: the end of its error
	Impl      string  `json:"impl"`
	StepsPerS float64 `json:"steps_per_s"`
	PeakRSSMB float64 `json:"peak_rss_mb"`
	PeakAlloc float64 `json:"peak_alloc_mb"`    // CUDA caching allocator peaks, MiB; 0 if not reported
	PeakResv  float64 `json:"peak_reserved_mb"` //
	CPUMs     float64 `json:"cpu_ms_per_step"`  // user+system CPU per step; 0 if not reported
	Final     float64 `json:"final"`            // the -final-key value
	FinalKey  string  `json:"final_key"`
	Threads   int     `json:"threads"`
	Torch     string  `json:"torch"`
	MollUS    float64 `json:"mollify_us"`
	MollShare float64 `json:"mollify_share_of_step"`
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, "; ") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	goBin := flag.String("go", "", "Go benchmark binary")
	py := flag.String("py", "", "PyTorch benchmark script")
	python := flag.String("python", "/usr/bin/python3", "Python with torch")
	rounds := flag.Int("rounds", 3, "alternating rounds")
	args := flag.String("args", "", "arguments passed to both")
	title := flag.String("title", "", "heading printed above the table")
	finalKey := flag.String("final-key", "final_nll", "JSON key of the final-quality number")
	finalLabel := flag.String("final-label", "final NLL", "its column header")
	goAlso := flag.String("go-also", "", "extra Go arguments for more Go rows (ablations), one set per row, separated by ';'")
	pyAlso := flag.String("py-also", "", "extra PyTorch arguments for more PyTorch rows, one set per row, separated by ';'")
	foreach := flag.Bool("foreach", true, "a PyTorch row with --foreach")
	name := flag.String("name", "", "the benchmark's name in -append records, -summarize tables and -require")
	appendTo := flag.String("append", "", "append every run as a JSON line to this file (for -summarize)")
	keepGoing := flag.Bool("keep-going", false, "record a failed run and go on (exit status 1 at the end)")
	runTimeout := flag.Duration("run-timeout", 0, "stop a run after this long (0: never)")
	summarize := flag.String("summarize", "", "run nothing: print one table of the runs -append wrote to this file")
	minRounds := flag.Int("min-rounds", 3, "successful runs a -require criterion needs on each side")
	var require listFlag
	flag.Var(&require, "require", "criterion on the medians, \"[NAME:] IMPL/IMPL >= X\" (repeatable)")
	flag.Parse()
	var crit []criterion
	for _, r := range require {
		c, err := parseCriterion(r)
		if err != nil {
			fmt.Fprintln(os.Stderr, "compare:", err)
			os.Exit(2)
		}
		crit = append(crit, c)
	}
	if *summarize != "" {
		runs, err := readRecords(*summarize)
		if err != nil {
			fmt.Fprintln(os.Stderr, "compare:", err)
			os.Exit(1)
		}
		if *title != "" {
			fmt.Printf("\n%s\n", *title)
		}
		printTable(os.Stdout, runs, true, *finalLabel)
		failed := printFailures(os.Stdout, runs)
		printCriteria(os.Stdout, runs, crit, *minRounds)
		if failed {
			os.Exit(1)
		}
		return
	}
	if *goBin == "" || *py == "" {
		fmt.Fprintln(os.Stderr, "usage: compare -go BIN -py SCRIPT [-rounds N] [-args '...'], or compare -summarize FILE")
		os.Exit(2)
	}
	type command struct {
		label string
		argv  []string
	}
	goArgs, pyBase := strings.Fields(*args), append([]string{*python, *py}, pyArgs(*args)...)
	cmds := []command{
		{"go", append([]string{*goBin}, goArgs...)},
		{"pytorch", pyBase},
	}
	if *foreach {
		cmds = append(cmds, command{"pytorch --foreach", append(append([]string{}, pyBase...), "--foreach")})
	}
	for _, extra := range strings.Split(*goAlso, ";") {
		if e := strings.Fields(extra); len(e) > 0 {
			cmds = append(cmds, command{"go " + strings.Join(e, " "), append(append([]string{*goBin}, goArgs...), e...)})
		}
	}
	for _, extra := range strings.Split(*pyAlso, ";") {
		if e := pyArgs(extra); len(e) > 0 {
			cmds = append(cmds, command{"pytorch " + strings.Join(e, " "), append(append([]string{}, pyBase...), e...)})
		}
	}
	var out *os.File
	if *appendTo != "" {
		f, err := os.OpenFile(*appendTo, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, "compare:", err)
			os.Exit(1)
		}
		defer f.Close()
		out = f
	}
	var runs []result
	failed := false
	for r := 0; r < *rounds; r++ {
		for i, c := range cmds {
			res, err := run(c.argv, *finalKey, *runTimeout)
			res.Bench, res.Round, res.Row, res.Label = *name, r+1, i, c.label
			if err != nil {
				if !*keepGoing {
					fmt.Fprintln(os.Stderr, "compare:", err)
					os.Exit(1)
				}
				failed = true
				res.Error = lastLine(err.Error())
				fmt.Fprintf(os.Stderr, "round %d %-16s FAILED: %s\n", r+1, c.label, res.Error)
			} else {
				fmt.Fprintf(os.Stderr, "round %d %-16s %7.2f steps/s  %7.1f CPU ms/step  peak RSS %6.1f MB%s\n", r+1, res.Impl, res.StepsPerS, res.CPUMs, res.PeakRSSMB, gpuNote(res))
			}
			runs = append(runs, res)
			if out != nil {
				b, _ := json.Marshal(res)
				if _, err := out.Write(append(b, '\n')); err != nil {
					fmt.Fprintln(os.Stderr, "compare:", err)
					os.Exit(1)
				}
			}
		}
	}
	if *title != "" {
		fmt.Printf("\n%s\n", *title)
	}
	printTable(os.Stdout, runs, false, *finalLabel)
	printFailures(os.Stdout, runs)
	if g := rowRuns(runs, *name, "go"); len(g) > 0 && g[0].MollUS > 0 {
		us := median(g, func(r result) float64 { return r.MollUS })
		share := median(g, func(r result) float64 { return r.MollShare })
		fmt.Printf("\nGaussian mollification of one batch (Go, median of %d): %.1f µs = %.2f%% of a Go training step (limit 1%%)\n", len(g), us, 100*share)
	}
	printCriteria(os.Stdout, runs, crit, *minRounds)
	if failed {
		os.Exit(1)
	}
}

func gpuNote(r result) string {
	if r.PeakAlloc == 0 {
		return ""
	}
	return fmt.Sprintf("  peak GPU %.0f MiB allocated, %.0f reserved", r.PeakAlloc, r.PeakResv)
}

// pyArgs turns Go-style -flag value into --flag value.
func pyArgs(s string) []string {
	var out []string
	for _, f := range strings.Fields(s) {
		if strings.HasPrefix(f, "-") && !strings.HasPrefix(f, "--") {
			f = "-" + f
		}
		out = append(out, f)
	}
	return out
}

func run(c []string, finalKey string, timeout time.Duration) (result, error) {
	var out, errb bytes.Buffer
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, c[0], c[1:]...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("timed out after %v (-run-timeout)", timeout)
		}
		return result{}, fmt.Errorf("%s: %v\n%s", strings.Join(c, " "), err, strings.TrimSpace(errb.String()))
	}
	var r result
	var all map[string]any
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	last := []byte(lines[len(lines)-1])
	if err := json.Unmarshal(last, &r); err != nil {
		return result{}, fmt.Errorf("%s printed no JSON result: %v\n%s", strings.Join(c, " "), err, out.String())
	}
	if err := json.Unmarshal(last, &all); err != nil {
		return result{}, err
	}
	f, ok := all[finalKey].(float64)
	if !ok {
		return result{}, fmt.Errorf("%s printed no number %q (-final-key):\n%s", strings.Join(c, " "), finalKey, last)
	}
	r.Final, r.FinalKey = f, finalKey
	return r, nil
}

// lastLine is the last non-empty line of s: a failed program's reason.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return l
		}
	}
	return s
}

func readRecords(path string) ([]result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var runs []result
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var r result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		runs = append(runs, r)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("%s holds no runs", path)
	}
	return runs, nil
}

// row is one table row: a benchmark's command, over the rounds.
type row struct {
	bench, name string
	runs, ok    []result // all runs; the successful ones
}

// rows groups runs by benchmark and command, in the order first seen. A
// row is named by the impl its programs report, or by its label when
// every run failed.
func rows(runs []result) []*row {
	var out []*row
	seen := map[string]*row{}
	for _, r := range runs {
		key := r.Bench + "\x00" + strconv.Itoa(r.Row)
		w := seen[key]
		if w == nil {
			w = &row{bench: r.Bench, name: r.Label}
			seen[key] = w
			out = append(out, w)
		}
		w.runs = append(w.runs, r)
		if r.Error == "" {
			if len(w.ok) == 0 {
				w.name = r.Impl
			}
			w.ok = append(w.ok, r)
		}
	}
	return out
}

// rowRuns are the successful runs of a benchmark's row named impl.
func rowRuns(runs []result, bench, impl string) []result {
	for _, w := range rows(runs) {
		if w.bench == bench && w.name == impl {
			return w.ok
		}
	}
	return nil
}

func printTable(w io.Writer, runs []result, withBench bool, finalLabel string) {
	all := rows(runs)
	gpu := false
	for _, r := range runs {
		gpu = gpu || r.PeakAlloc > 0
	}
	head := []string{"implementation", "steps/s (median)", "rounds", "vs PyTorch eager", "CPU ms/step (median)", "peak RSS MB (max)"}
	if gpu {
		head = append(head, "peak GPU MiB allocated (max)", "reserved (max)")
	}
	head = append(head, finalLabel+" (median)", "threads", "libtorch")
	if withBench {
		head = append([]string{"model"}, head...)
	}
	fmt.Fprintf(w, "\n| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat("---|", len(head)))
	for _, r := range all {
		var cells []string
		if withBench {
			cells = append(cells, r.bench)
		}
		cells = append(cells, r.name)
		rounds := fmt.Sprintf("%d", len(r.ok))
		if len(r.ok) < len(r.runs) {
			rounds = fmt.Sprintf("%d of %d", len(r.ok), len(r.runs))
		}
		if len(r.ok) == 0 {
			cells = append(cells, "FAILED", rounds)
			for len(cells) < len(head) {
				cells = append(cells, "–")
			}
			fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
			continue
		}
		sps := median(r.ok, func(x result) float64 { return x.StepsPerS })
		ratio := "–"
		if base := rowRuns(runs, r.bench, "pytorch"); len(base) > 0 {
			ratio = fmt.Sprintf("%.2f×", sps/median(base, func(x result) float64 { return x.StepsPerS }))
		}
		cpu := "–"
		if c := median(r.ok, func(x result) float64 { return x.CPUMs }); c > 0 {
			cpu = fmt.Sprintf("%.1f", c)
		}
		cells = append(cells, fmt.Sprintf("%.2f", sps), rounds, ratio, cpu, fmt.Sprintf("%.1f", maxOf(r.ok, func(x result) float64 { return x.PeakRSSMB })))
		if gpu {
			a, v := maxOf(r.ok, func(x result) float64 { return x.PeakAlloc }), maxOf(r.ok, func(x result) float64 { return x.PeakResv })
			if a > 0 {
				cells = append(cells, fmt.Sprintf("%.0f", a), fmt.Sprintf("%.0f", v))
			} else {
				cells = append(cells, "–", "–")
			}
		}
		cells = append(cells, fmt.Sprintf("%.4f", median(r.ok, func(x result) float64 { return x.Final })), fmt.Sprint(r.ok[0].Threads), r.ok[0].Torch)
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
}

// printFailures lists each failed run's reason once per row and reason;
// it reports whether any run failed.
func printFailures(w io.Writer, runs []result) bool {
	failed := false
	for _, r := range rows(runs) {
		seen := map[string]int{}
		var order []string
		for _, x := range r.runs {
			if x.Error != "" {
				if seen[x.Error] == 0 {
					order = append(order, x.Error)
				}
				seen[x.Error]++
			}
		}
		for _, e := range order {
			if !failed {
				fmt.Fprintln(w, "\nFailed runs:")
				failed = true
			}
			name := r.name
			if r.name != r.runs[0].Label {
				name += " (" + r.runs[0].Label + ")"
			}
			if r.bench != "" {
				name = r.bench + " " + name
			}
			fmt.Fprintf(w, "- %s, %d of %d rounds: %s\n", name, seen[e], len(r.runs), e)
		}
	}
	return failed
}

// criterion is "[bench:] num/den >= min" on median steps/s.
type criterion struct {
	text, bench, num, den string
	min                   float64
}

func parseCriterion(s string) (criterion, error) {
	c := criterion{text: strings.TrimSpace(s)}
	rest := c.text
	if b, r, ok := strings.Cut(rest, ":"); ok {
		c.bench, rest = strings.TrimSpace(b), r
	}
	ratio, min, ok := strings.Cut(rest, ">=")
	num, den, ok2 := strings.Cut(ratio, "/")
	v, err := strconv.ParseFloat(strings.TrimSpace(min), 64)
	c.num, c.den, c.min = strings.TrimSpace(num), strings.TrimSpace(den), v
	if !ok || !ok2 || err != nil || c.num == "" || c.den == "" {
		return c, fmt.Errorf("-require %q: want \"[NAME:] IMPL/IMPL >= X\", e.g. \"Glow: go-graph/pytorch >= 4\"", s)
	}
	return c, nil
}

// printCriteria prints each criterion as MET, NOT MET or UNMEASURED (a
// side with fewer than minRounds successful runs), with its numbers.
func printCriteria(w io.Writer, runs []result, crit []criterion, minRounds int) {
	if len(crit) == 0 {
		return
	}
	fmt.Fprintf(w, "\nCriteria (median steps/s, at least %d successful rounds each):\n", minRounds)
	for _, c := range crit {
		fmt.Fprintf(w, "- %s: %s\n", c.text, verdict(runs, c, minRounds))
	}
}

func verdict(runs []result, c criterion, minRounds int) string {
	var why []string
	var meds [2]float64
	for i, impl := range []string{c.num, c.den} {
		ok := rowRuns(runs, c.bench, impl)
		if len(ok) < minRounds {
			why = append(why, fmt.Sprintf("%s has %d successful runs", impl, len(ok)))
			continue
		}
		meds[i] = median(ok, func(x result) float64 { return x.StepsPerS })
	}
	if len(why) > 0 {
		return "UNMEASURED (" + strings.Join(why, ", ") + ")"
	}
	ratio := meds[0] / meds[1]
	status := "NOT MET"
	if ratio >= c.min {
		status = "MET"
	}
	return fmt.Sprintf("%s (%.2f / %.2f steps/s = %.2f×)", status, meds[0], meds[1], ratio)
}

func median(rs []result, f func(result) float64) float64 {
	if len(rs) == 0 {
		return 0
	}
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	sort.Float64s(v)
	if len(v)%2 == 0 {
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return v[len(v)/2]
}

func maxOf(rs []result, f func(result) float64) float64 {
	m := 0.0
	for _, r := range rs {
		m = max(m, f(r))
	}
	return m
}
