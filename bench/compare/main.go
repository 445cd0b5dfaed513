// Command compare runs the Go and PyTorch versions of a benchmark side by
// side, alternating them for several rounds with the same thread settings,
// and prints steps/s, their ratio and peak RSS as a markdown table (under
// -title, when given). Each run prints one JSON line; -final-key names its
// final-quality number (final_nll for the flows, final_loss for the VAE).
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
)

type result struct {
	Impl      string  `json:"impl"`
	StepsPerS float64 `json:"steps_per_s"`
	PeakRSSMB float64 `json:"peak_rss_mb"`
	CPUMs     float64 `json:"cpu_ms_per_step"` // user+system CPU per step; 0 if not reported
	Final     float64 `json:"-"`               // the -final-key value
	Threads   int     `json:"threads"`
	Torch     string  `json:"torch"`
	MollUS    float64 `json:"mollify_us"`
	MollShare float64 `json:"mollify_share_of_step"`
}

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
	flag.Parse()
	if *goBin == "" || *py == "" {
		fmt.Fprintln(os.Stderr, "usage: compare -go BIN -py SCRIPT [-rounds N] [-args '...']")
		os.Exit(2)
	}
	runs := map[string][]result{}
	var order []string
	cmds := [][]string{
		append([]string{*goBin}, strings.Fields(*args)...),
		append([]string{*python, *py}, pyArgs(*args)...),
		append(append([]string{*python, *py}, pyArgs(*args)...), "--foreach"),
	}
	for _, extra := range strings.Split(*goAlso, ";") {
		if strings.TrimSpace(extra) != "" {
			cmds = append(cmds, append(append([]string{*goBin}, strings.Fields(*args)...), strings.Fields(extra)...))
		}
	}
	for r := 0; r < *rounds; r++ {
		for _, c := range cmds {
			res, err := run(c, *finalKey)
			if err != nil {
				fmt.Fprintln(os.Stderr, "compare:", err)
				os.Exit(1)
			}
			if _, ok := runs[res.Impl]; !ok {
				order = append(order, res.Impl)
			}
			runs[res.Impl] = append(runs[res.Impl], res)
			fmt.Fprintf(os.Stderr, "round %d %-16s %7.2f steps/s  %7.1f CPU ms/step  peak RSS %6.1f MB\n", r+1, res.Impl, res.StepsPerS, res.CPUMs, res.PeakRSSMB)
		}
	}
	base := median(runs["pytorch"], func(r result) float64 { return r.StepsPerS })
	if *title != "" {
		fmt.Printf("\n%s\n", *title)
	}
	fmt.Printf("\n| implementation | steps/s (median of %d) | vs PyTorch eager | CPU ms/step (median) | peak RSS MB (max) | %s | threads | libtorch |\n|---|---|---|---|---|---|---|---|\n", *rounds, *finalLabel)
	for _, impl := range order {
		rs := runs[impl]
		sps := median(rs, func(r result) float64 { return r.StepsPerS })
		rss := 0.0
		for _, r := range rs {
			rss = max(rss, r.PeakRSSMB)
		}
		cpu := "–"
		if c := median(rs, func(r result) float64 { return r.CPUMs }); c > 0 {
			cpu = fmt.Sprintf("%.1f", c)
		}
		fmt.Printf("| %s | %.2f | %.2f× | %s | %.1f | %.4f | %d | %s |\n", impl, sps, sps/base, cpu, rss, rs[0].Final, rs[0].Threads, rs[0].Torch)
	}
	if g := runs["go"]; len(g) > 0 && g[0].MollUS > 0 {
		us := median(g, func(r result) float64 { return r.MollUS })
		share := median(g, func(r result) float64 { return r.MollShare })
		fmt.Printf("\nGaussian mollification of one batch (Go, median of %d): %.1f µs = %.2f%% of a Go training step (limit 1%%)\n", len(g), us, 100*share)
	}
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

func run(c []string, finalKey string) (result, error) {
	var out, errb bytes.Buffer
	cmd := exec.Command(c[0], c[1:]...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return result{}, fmt.Errorf("%s: %v\n%s", strings.Join(c, " "), err, errb.String())
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
	r.Final = f
	return r, nil
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
	return v[len(v)/2]
}
