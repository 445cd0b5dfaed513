package main

import (
	"bytes"
	"fmt"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/plots"
)

// fakeRun writes a run folder: the resolved config and a metrics.jsonl
// with train losses every 10 steps and an eval record every 20.
func fakeRun(t *testing.T, name string, model string, mollified bool, loss func(step int) string, eval map[string]float64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	c := config.Default()
	c.Run.Name, c.Run.Iterations = name, 40
	c.Data = config.Data{Dataset: "mnist", Root: "datasets", ImageSize: 32, Channels: 1, BatchSize: 8, DropLast: true, Dequantization: "none", Range: "unit"}
	c.Model.Name = model
	c.Mollification.Enabled = mollified
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Save(dir); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for s := 10; s <= 40; s += 10 {
		fmt.Fprintf(&b, `{"kind":"train","step":%d,"loss":%s,"skipped_total":0,"mollified":%v,"time":"x"}`+"\n", s, loss(s), mollified && s <= 20)
		if s%20 == 0 {
			fmt.Fprintf(&b, `{"kind":"eval","step":%d`, s)
			for k, v := range eval {
				fmt.Fprintf(&b, `,%q:%g`, k, v-float64(40-s))
			}
			b.WriteString("}\n")
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "metrics.jsonl"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func falling(s int) string { return fmt.Sprint(100 - s) }

func TestPlotsTwoRunsSideBySide(t *testing.T) {
	a := fakeRun(t, "vae-mollified_false", "vae", false, falling, map[string]float64{"elbo": -900, "bpd": 9})
	b := fakeRun(t, "vae-mollified_true", "vae", true, falling, map[string]float64{"elbo": -890, "bpd": 8.9})
	out := filepath.Join(t.TempDir(), "img", "c.png")
	if err := run([]string{"-out", out, a, b}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Width != 2*cfg.Height {
		t.Errorf("PNG is %d×%d, want two square tiles side by side", cfg.Width, cfg.Height)
	}
	runs := []*runData{{dir: a}, {dir: b}}
	for i := range runs {
		if runs[i], err = load(runs[i].dir); err != nil {
			t.Fatal(err)
		}
	}
	label(runs)
	if runs[0].name != "vanilla" || runs[1].name != "gaussian mollification" || runs[1].molSteps != 20 {
		t.Errorf("labels %q, %q (mollified steps %d), want vanilla and gaussian mollification (20)", runs[0].name, runs[1].name, runs[1].molSteps)
	}
	if m, err := chooseMetric(runs); err != nil || m != "elbo" {
		t.Errorf("metric %q (%v), want elbo, the bound both runs report", m, err)
	}
}

func TestMetricChoiceAndErrors(t *testing.T) {
	iw := fakeRun(t, "iwae", "iwae", false, falling, map[string]float64{"elbo": -900, "iwae_bound": -895})
	va := fakeRun(t, "vae", "vae", false, falling, map[string]float64{"elbo": -900})
	runs := []*runData{}
	for _, d := range []string{iw, va} {
		r, err := load(d)
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, r)
	}
	if m, _ := chooseMetric(runs[:1]); m != "iwae_bound" {
		t.Errorf("IWAE alone: metric %q, want iwae_bound", m)
	}
	if m, _ := chooseMetric(runs); m != "elbo" {
		t.Errorf("IWAE with VAE: metric %q, want elbo", m)
	}
	label(runs)
	if runs[0].name != "iwae, vanilla" || runs[1].name != "vae, vanilla" {
		t.Errorf("labels %q, %q", runs[0].name, runs[1].name)
	}
	out := filepath.Join(t.TempDir(), "c.png")
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "usage"},
		{[]string{"-out", out, t.TempDir()}, "no metrics.jsonl"},
		{[]string{"-out", out, "-metric", "fid", iw, va}, `no fid "fid"`},
		{[]string{"-out", out, "-metric", "nll", iw, va}, `no eval "nll"`},
	} {
		if err := run(c.args, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("curves %v: error %v, want it to mention %q", c.args, err, c.want)
		}
	}
}

func TestTableReportsFinalMetricsAndNaN(t *testing.T) {
	good := fakeRun(t, "vae-mollified_false", "vae", false, falling, map[string]float64{"elbo": -900.25, "bpd": 9.5})
	bad := fakeRun(t, "vae-mollified_true", "vae", true, func(s int) string {
		if s == 30 {
			return `"NaN"`
		}
		return falling(s)
	}, map[string]float64{"elbo": -890, "bpd": 9.4})
	var out bytes.Buffer
	if err := run([]string{"-table", "-tail", "2", good, bad}, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("table has %d lines, want header, rule and 2 rows:\n%s", len(lines), out.String())
	}
	if !strings.Contains(lines[0], "test elbo | test bpd |") {
		t.Errorf("header %q: want elbo before bpd", lines[0])
	}
	// first loss 90, the mean of the last 2 (70, 60) is 65, final eval at step 40.
	if want := "| vae-mollified_false | vae | vanilla | 40 | 90.00 | 65.00 | -900.25 | 9.5000 | 0 | 0 |"; lines[2] != want {
		t.Errorf("row\n%s\nwant\n%s", lines[2], want)
	}
	if !strings.HasSuffix(lines[3], "| 1 | 0 |") || !strings.Contains(lines[3], "gaussian mollification") {
		t.Errorf("the NaN loss is not counted: %s", lines[3])
	}
}

func TestLogScaleOnlyForWidePositiveLosses(t *testing.T) {
	for _, c := range []struct {
		y    []float64
		want bool
	}{
		{[]float64{500, 30, 20}, true}, // a mollified VAE's first losses
		{[]float64{45, 30, 20}, false}, // narrow: linear
		{[]float64{500, 3, -1}, false}, // a flow's NLL can go negative
		{[]float64{500, 3, math.NaN()}, true},
	} {
		if got := wideAndPositive([]plots.Series{{Y: c.y}}); got != c.want {
			t.Errorf("wideAndPositive(%v) = %v, want %v", c.y, got, c.want)
		}
	}
}

// Files among the arguments (a shell glob over run folders and their logs)
// are skipped; nothing but files is an error.
func TestSkipsFilesAmongRunFolders(t *testing.T) {
	run1 := fakeRun(t, "vae-mollified_false", "vae", false, falling, map[string]float64{"elbo": -900})
	log := run1 + ".log"
	if err := os.WriteFile(log, []byte("log"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run([]string{"-table", run1, log}, &out); err != nil || strings.Count(out.String(), "\n") != 3 {
		t.Errorf("table over a run and a log: %v\n%s", err, out.String())
	}
	if err := run([]string{"-table", log}, &out); err == nil || !strings.Contains(err.Error(), "no run folders") {
		t.Errorf("only a log file: error %v", err)
	}
}

// FID/FCD records (their own kind) get a table column, "–" for a run
// without them, and can be plotted with -metric.
func TestSampleQualityColumnAndPlot(t *testing.T) {
	a := fakeRun(t, "vae-mollified_false", "vae", false, falling, map[string]float64{"elbo": -900})
	b := fakeRun(t, "vae-mollified_true", "vae", true, falling, map[string]float64{"elbo": -890})
	f, err := os.OpenFile(filepath.Join(a, "metrics.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, `{"kind":"fcd","step":20,"fcd":300.5,"samples":500,"dims":128}`)
	fmt.Fprintln(f, `{"kind":"fcd","step":40,"fcd":245.4,"samples":500,"dims":128}`)
	f.Close()
	var out bytes.Buffer
	if err := run([]string{"-table", a, b}, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if !strings.Contains(lines[0], "| test elbo | final fcd (samples) | NaN/Inf values |") {
		t.Errorf("header %q lacks the fcd column after the eval metrics", lines[0])
	}
	if !strings.Contains(lines[2], "| 245.40 (500) |") || !strings.Contains(lines[3], "| -890.00 | – |") {
		t.Errorf("rows:\n%s\n%s", lines[2], lines[3])
	}
	png := filepath.Join(t.TempDir(), "fcd.png")
	if err := run([]string{"-out", png, "-metric", "fcd", a}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"-out", png, "-metric", "fcd", a, b}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), `no fcd "fcd"`) {
		t.Errorf("run without fcd records: error %v", err)
	}
}
