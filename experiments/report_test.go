package experiments

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/internal/testenv"
	"github.com/mollify/mollify/plots"
)

// -update rewrites the report fixture (testdata/report_sweep) and its
// golden report (testdata/report_sweep.md, .csv). Another test file of the
// package may define the same flag; then this one reads it.
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files under testdata")
	}
}

func reportUpdate() bool { return flag.Lookup("update").Value.String() == "true" }

const (
	reportFixture = "testdata/report_sweep"
	reportGolden  = "testdata/report_sweep.md"
	reportCSV     = "testdata/report_sweep.csv"
)

// fixtureRun is a hand-made run of the fixture sweep: its preset, its
// mollification axis value, seed, final FID and bits/dim, and its state.
type fixtureRun struct {
	base, mollification string
	seed                int
	fid, bpd            float64 // at step 1000 (a failed or incomplete run stops at 500 with fid500)
	fid500              float64
	state               string
}

// reportFixtureRuns: three CIFAR-10 presets × vanilla/gaussian/blur × 2
// seeds and REAL-NVP with the cosine schedule; glow blur seed 1 failed,
// vae blur seed 1 never started (no folder), the second cosine run is
// still running.
var reportFixtureRuns = []fixtureRun{
	{"realnvp_cifar10", "enabled=false", 0, 130, 3.60, 150, ReportDone},
	{"realnvp_cifar10", "enabled=false", 1, 132, 3.62, 151, ReportDone},
	{"realnvp_cifar10", "kind=gaussian", 0, 121, 3.58, 160, ReportDone},
	{"realnvp_cifar10", "kind=gaussian", 1, 122, 3.59, 161, ReportDone},
	{"realnvp_cifar10", "kind=blur", 0, 120, 3.61, 155, ReportDone},
	{"realnvp_cifar10", "kind=blur", 1, 121, 3.63, 156, ReportDone},
	{"glow_cifar10", "enabled=false", 0, 74, 3.40, 90, ReportDone},
	{"glow_cifar10", "enabled=false", 1, 75, 3.42, 91, ReportDone},
	{"glow_cifar10", "kind=gaussian", 0, 64, 3.39, 95, ReportDone},
	{"glow_cifar10", "kind=gaussian", 1, 65, 3.40, 96, ReportDone},
	{"glow_cifar10", "kind=blur", 0, 67, 3.41, 92, ReportDone},
	{"glow_cifar10", "kind=blur", 1, 0, 0, 80, ReportFailed},
	{"vae_cifar10", "enabled=false", 0, 190, 5.10, 210, ReportDone},
	{"vae_cifar10", "enabled=false", 1, 194, 5.14, 212, ReportDone},
	{"vae_cifar10", "kind=gaussian", 0, 155, 5.00, 230, ReportDone},
	{"vae_cifar10", "kind=gaussian", 1, 156, 5.02, 231, ReportDone},
	{"vae_cifar10", "kind=blur", 0, 176, 5.08, 220, ReportDone},
	{"vae_cifar10", "kind=blur", 1, 0, 0, 0, ReportMissing},
	{"realnvp_cifar10", "kind=gaussian,schedule=cosine", 0, 118, 3.57, 158, ReportDone},
	{"realnvp_cifar10", "kind=gaussian,schedule=cosine", 1, 0, 0, 140, ReportIncomplete},
}

const fixtureFailure = "train: step 812: 20 consecutive steps with a non-finite loss (run.max_nonfinite=20): the run diverged"

// writeReportFixture writes the fixture sweep folder: manifest.jsonl,
// sweep.yaml and per run config.yaml (from the real preset via config),
// metrics.jsonl, samples, train.log and done.json as its state implies.
func writeReportFixture(t *testing.T, dir string) {
	t.Helper()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	var manifest bytes.Buffer
	for i, f := range reportFixtureRuns {
		var overrides []string
		for _, kv := range strings.Split(f.mollification, ",") {
			overrides = append(overrides, "mollification."+kv)
		}
		overrides = append(overrides, "run.iterations=1000", "eval.fid_samples=5000", fmt.Sprintf("run.seed=%d", f.seed))
		c, err := config.Load(f.base, overrides)
		if err != nil {
			t.Fatal(err)
		}
		y, err := c.YAML()
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(y) // stands in for the sweep's run id
		id := hex.EncodeToString(sum[:])[:12]
		line, _ := json.Marshal(map[string]any{"index": i, "id": id, "dir": id, "base": f.base, "overrides": overrides,
			"labels": map[string]string{"mollification": f.mollification, "run.seed": fmt.Sprint(f.seed)}})
		manifest.Write(append(line, '\n'))
		if f.state == ReportMissing {
			continue
		}
		run := filepath.Join(dir, id)
		if _, err := c.Save(run); err != nil {
			t.Fatal(err)
		}
		var metrics bytes.Buffer
		rec := func(m map[string]any) {
			b, _ := json.Marshal(m)
			metrics.Write(append(b, '\n'))
		}
		steps := []int{500}
		if f.state == ReportDone {
			steps = append(steps, 1000)
		}
		for _, s := range steps {
			fid := f.fid500
			if s == 1000 {
				fid = f.fid
			}
			rec(map[string]any{"kind": "train", "step": s, "loss": 7000 - float64(s), "lr": 1e-3})
			rec(map[string]any{"kind": "fid", "step": s, "fid": fid, "samples": 5000, "dims": 2048, "seconds": 12.5})
			writeFixtureSamples(t, run, s, i)
		}
		if f.state == ReportDone {
			rec(map[string]any{"kind": "eval", "step": 1000, "bpd": f.bpd, "nll": f.bpd * 3072 * math.Ln2})
			if err := os.WriteFile(filepath.Join(run, "done.json"), []byte(`{"steps":1000,"wall_s":61.5,"finished":"2024-05-01T12:00:00Z"}`+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		log := "==> attempt 1\nstep 500/1000 loss 6500\n"
		if f.state == ReportFailed {
			log += fixtureFailure + "\n"
		}
		if err := os.WriteFile(filepath.Join(run, "train.log"), []byte(log), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(run, "metrics.jsonl"), metrics.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.jsonl"), manifest.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	sweep := "# Fixture for experiments/report_test.go (go test ./experiments -run TestReportGolden -update).\nbase: [realnvp_cifar10, glow_cifar10, vae_cifar10]\n"
	if err := os.WriteFile(filepath.Join(dir, "sweep.yaml"), []byte(sweep), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeFixtureSamples writes a 2×2 grid of flat 8×8 colours, one colour
// per run and step, as samples/step-*.png.
func writeFixtureSamples(t *testing.T, run string, step, index int) {
	t.Helper()
	const n, c, h, w = 4, 3, 8, 8
	pix := make([]uint8, n*c*h*w)
	for k := range n {
		for ch := range c {
			v := uint8((index*37 + k*50 + ch*80 + step/10) % 256)
			for p := range h * w {
				pix[(k*c+ch)*h*w+p] = v
			}
		}
	}
	img, err := plots.ImageGrid(pix, n, c, h, w, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := plots.SavePNG(filepath.Join(run, "samples", fmt.Sprintf("step-%09d.png", step)), img); err != nil {
		t.Fatal(err)
	}
}

func readFixtureReport(t *testing.T) *Report {
	t.Helper()
	rep, err := ReadReport(reportFixture, "")
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// The fixture sweep gives the committed report (Markdown and CSV).
func TestReportGolden(t *testing.T) {
	if reportUpdate() {
		writeReportFixture(t, reportFixture)
	}
	rep := readFixtureReport(t)
	var md, csv bytes.Buffer
	if err := rep.Markdown(&md, []string{"fid_cifar10.png", "samples_cifar10.png"}); err != nil {
		t.Fatal(err)
	}
	if err := rep.CSV(&csv); err != nil {
		t.Fatal(err)
	}
	for _, g := range []struct {
		path string
		got  []byte
	}{{reportGolden, md.Bytes()}, {reportCSV, csv.Bytes()}} {
		if reportUpdate() {
			if err := os.WriteFile(g.path, g.got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(g.path)
		if err != nil {
			t.Fatalf("%v (regenerate with go test ./experiments -run TestReportGolden -update)", err)
		}
		if !bytes.Equal(g.got, want) {
			t.Errorf("%s differs from the report of %s (if the change is meant, -update):\n%s", g.path, reportFixture, g.got)
		}
	}
}

// The cells of the fixture report, computed by hand from the fixture's
// values (reportFixtureRuns) and Table 1/2 of the paper: the ↓% column,
// the std, the paper's values and the differences.
func TestReportCellsByHand(t *testing.T) {
	rep := readFixtureReport(t)
	var md bytes.Buffer
	if err := rep.Markdown(&md, nil); err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, l := range strings.Split(md.String(), "\n") {
		if c := mdCells(l); len(c) > 1 && strings.HasPrefix(l, "| ") {
			if _, seen := rows[c[0]]; !seen {
				rows[c[0]] = l
			}
		}
	}
	for _, c := range []struct{ row, want string }{
		{"model", "| model | vanilla | paper | gaussian | paper | gaussian cosine | paper | blur | paper |"},
		// 130, 132: mean 131, std √2; 121.5 vs 131 = −7.25%; 118 vs 131 = −9.92%; 120.5 vs 131 = −8.02%.
		{"REAL-NVP", "| REAL-NVP | 131.00 ± 1.41 (n=2) | 131.15 (Δ -0.15; Table 2 prints 191.98; flag 1, 2) " +
			"| 121.50 ± 0.71 (n=2) ↓ 7.25% | 121.75 ↓ 7.17% (Δ -0.25) " +
			"| 118.00 (n=1; 1 incomplete) ↓ 9.92% | 118.71 (Δ -0.71) " +
			"| 120.50 ± 0.71 (n=2) ↓ 8.02% | 120.88 ↓ 7.83% (Δ -0.38) |"},
		// 64.5 vs 74.5 = −13.42%; 67 vs 74.5 = −10.07%.
		{"GLOW", "| GLOW | 74.50 ± 0.71 (n=2) | 74.62 (Δ -0.12) | 64.50 ± 0.71 (n=2) ↓ 13.42% | 64.87 ↓ 13.07% (Δ -0.37) " +
			"| not in the sweep | | 67.00 (n=1; 1 failed) ↓ 10.07% | 66.70 ↓ 10.61% (Δ +0.30) |"},
		// 190, 194: mean 192, std 2√2; 155.5 vs 192 = −19.01%; 176 vs 192 = −8.33%.
		{"VAE", "| VAE | 192.00 ± 2.83 (n=2) | 191.98 (Δ +0.02) | 155.50 ± 0.71 (n=2) ↓ 19.01% | 155.13 ↓ 19.19% (Δ +0.37) " +
			"| not in the sweep | | 176.00 (n=1; 1 missing) ↓ 8.33% | 175.40 ↓ 8.64% (Δ +0.60) |"},
	} {
		if got := rows[c.row]; got != c.want {
			t.Errorf("row %s:\n got %s\nwant %s", c.row, got, c.want)
		}
	}
	for _, w := range []string{
		"FID from 5000 samples per run (the paper: 50000",
		"1. cross-table: REAL-NVP cifar10 vanilla is 131.15 (Table 1, line 162) but 191.98 (Table 2, line 200)",
		"2. duplicate: Table 2 prints 191.98 for both REAL-NVP",
		"3. text-vs-table:",
		// Bits/dim: 3.58, 3.59 vs 3.60, 3.62: 3.585 vs 3.61 = −0.69%.
		"| REAL-NVP | 3.6100 ± 0.0141 (n=2) | 3.5850 ± 0.0071 (n=2) ↓ 0.69% |",
	} {
		if !strings.Contains(md.String(), w) {
			t.Errorf("report lacks %q:\n%s", w, md.String())
		}
	}
}

// Every run of the manifest is listed with its state; none is dropped.
func TestReportRunStates(t *testing.T) {
	rep := readFixtureReport(t)
	if len(rep.Runs) != len(reportFixtureRuns) {
		t.Fatalf("%d runs, want %d", len(rep.Runs), len(reportFixtureRuns))
	}
	for i, f := range reportFixtureRuns {
		r := rep.Runs[i]
		if r.Index != i || r.State != f.state || r.Seed != uint64(f.seed) {
			t.Errorf("run %d: index %d state %s seed %d, want %s seed %d", i, r.Index, r.State, r.Seed, f.state, f.seed)
		}
	}
	for _, c := range []struct {
		index          int
		detail         string
		final          float64
		lastStep, samp int
	}{
		{11, fixtureFailure, 80, 500, 5000},
		{17, "no run folder ", 0, 0, 0},
		{19, "no done.json; last step logged 500 of 1000", 140, 500, 5000},
		{0, "", 130, 1000, 5000},
	} {
		r := rep.Runs[c.index]
		if !strings.HasPrefix(r.Detail, c.detail) || r.Final != c.final || r.LastStep != c.lastStep || r.FinalSamples != c.samp {
			t.Errorf("run %d: detail %q final %v step %d samples %d, want %q %v %d %d", c.index, r.Detail, r.Final, r.LastStep, r.FinalSamples, c.detail, c.final, c.lastStep, c.samp)
		}
	}
	// The missing run's config comes from base + overrides.
	if r := rep.Runs[17]; r.Model != "vae" || r.Training != TrainingBlur || r.Dataset != "cifar10" {
		t.Errorf("missing run resolved as %s %s %s, want cifar10 vae blur", r.Dataset, r.Model, r.Training)
	}
	if got := filepath.Base(rep.Runs[0].SamplePNG); got != "step-000001000.png" {
		t.Errorf("last samples of run 0: %s, want step-000001000.png", got)
	}
	var md bytes.Buffer
	if err := rep.Markdown(&md, nil); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{
		"| 11 | " + rep.Runs[11].Dir + " | cifar10 | GLOW | blur | 1 | failed | 500/1000 | 80.00 @500 | " + fixtureFailure + " |",
		"| 17 | " + rep.Runs[17].Dir + " | cifar10 | VAE | blur | 1 | missing | — | — | no run folder " + rep.Runs[17].Dir + " |",
		"| 19 | " + rep.Runs[19].Dir + " | cifar10 | REAL-NVP | gaussian cosine | 1 | incomplete | 500/1000 | 140.00 @500 |",
	} {
		if !strings.Contains(md.String(), w) {
			t.Errorf("run list lacks %q", w)
		}
	}
}

func TestReportFigures(t *testing.T) {
	rep := readFixtureReport(t)
	out := t.TempDir()
	names, err := rep.WriteFigures(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"fid_cifar10.png", "samples_cifar10.png"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("figures %v, want %v", names, want)
	}
	// Three models side by side; 3 models × 4 trainings of samples.
	for _, c := range []struct {
		name       string
		cols, rows int
	}{{"fid_cifar10.png", 3, 1}, {"samples_cifar10.png", 4, 3}} {
		f, err := os.Open(filepath.Join(out, c.name))
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := png.DecodeConfig(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if cfg.Width*c.rows != cfg.Height*c.cols {
			t.Errorf("%s is %d×%d, want tiles of %d×%d", c.name, cfg.Width, cfg.Height, c.cols, c.rows)
		}
	}
}

func TestMeanCurve(t *testing.T) {
	a := &ReportRun{Curve: []CurvePoint{{500, 10}, {1000, 6}}}
	b := &ReportRun{Curve: []CurvePoint{{500, 12}}}
	none := &ReportRun{}
	steps, mean, n := MeanCurve([]*ReportRun{a, b, none})
	if fmt.Sprint(steps, mean, n) != "[500 1000] [11 6] 2" {
		t.Errorf("MeanCurve: %v %v %d, want [500 1000] [11 6] 2", steps, mean, n)
	}
}

func TestVariantOf(t *testing.T) {
	for _, c := range []struct {
		labels map[string]string
		want   string
	}{
		{map[string]string{"mollification": "enabled=false", "run.seed": "0"}, ""},
		{map[string]string{"mollification": "kind=gaussian,schedule=cosine", "run.seed": "1"}, ""},
		{map[string]string{"mollification": "kind=blur,fraction=0.3"}, "mollification.fraction=0.3"},
		{map[string]string{"mollification.kind": "blur", "optim.lr": "0.001", "model.glow.k": "8"}, "model.glow.k=8, optim.lr=0.001"},
	} {
		if got := variantOf(c.labels); got != c.want {
			t.Errorf("variantOf(%v) = %q, want %q", c.labels, got, c.want)
		}
	}
}

// writeReportSweep writes a sweep folder with the given manifest lines and run
// folders (name → files).
func writeReportSweep(t *testing.T, manifest string, runs map[string]map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if manifest != "" {
		if err := os.WriteFile(filepath.Join(dir, "manifest.jsonl"), []byte(manifest), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for run, files := range runs {
		for name, body := range files {
			p := filepath.Join(dir, run, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

const fcdMetrics = `{"kind":"fcd","step":100,"fcd":12.5,"samples":2000}
{"kind":"eval","step":100,"bpd":1.25}
`

func TestReadReportErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	one := `{"index":0,"id":"a","dir":"a","base":"vae_mnist","overrides":[]}` + "\n"
	for _, c := range []struct {
		name, dir, metric string
		want              []string
	}{
		{"no such folder", filepath.Join(t.TempDir(), "nope"), "", []string{"sweep folder", "no such file"}},
		{"a file", file, "", []string{"is a file, not a sweep folder"}},
		{"no manifest", writeReportSweep(t, "", nil), "", []string{"is not a sweep folder: it has no manifest.jsonl"}},
		{"empty manifest", writeReportSweep(t, "\n", nil), "", []string{"lists no runs"}},
		{"bad lines", writeReportSweep(t, "{\n"+`{"index":1}`+"\n"+one+one, nil), "",
			[]string{"manifest.jsonl line 1", `line 2: run 1 has no "dir"`, `line 4: run 0 has the folder "a" of line 3`}},
		{"bad metric", writeReportSweep(t, one, nil), "is", []string{`metric "is": want fid or fcd (flag -metric)`}},
		{"fid asked, fcd logged", writeReportSweep(t, one, map[string]map[string]string{"a": {"metrics.jsonl": fcdMetrics}}), "fid",
			[]string{"logged fcd", "use -metric fcd"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ReadReport(c.dir, c.metric)
			testenv.AssertError(t, err, c.want, nil)
		})
	}
}

// A sweep scored by FCD is headed FCD and has no paper column; a run
// whose config cannot be resolved is listed with the error.
func TestReportFCDAndUnresolvedConfig(t *testing.T) {
	manifest := `{"index":0,"id":"a","dir":"a","base":"vae_mnist","overrides":["mollification.enabled=false"]}
{"index":1,"id":"b","dir":"b","base":"no_such_preset","overrides":[]}
`
	dir := writeReportSweep(t, manifest, map[string]map[string]string{"a": {"metrics.jsonl": fcdMetrics, "done.json": `{"steps":100}`}})
	rep, err := ReadReport(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	var md bytes.Buffer
	if err := rep.Markdown(&md, nil); err != nil {
		t.Fatal(err)
	}
	s := md.String()
	for _, w := range []string{"## mnist: FCD", "| model | vanilla |\n", "| VAE | 12.50 (n=1) |", "FCD from 2000 samples per run.",
		"not FID: the paper reports FID only", "| 1 | b | ? | ? | ? | ? | missing | — | — | config: "} {
		if !strings.Contains(s, w) {
			t.Errorf("report lacks %q:\n%s", w, s)
		}
	}
	if strings.Contains(s, "paper |") || strings.Contains(s, "Paper inconsistencies") {
		t.Errorf("an FCD report compares with the paper:\n%s", s)
	}
}

// A finished run whose last value is NaN, and one with no value at all,
// are named in the cell and not averaged.
func TestReportRunsWithoutAValue(t *testing.T) {
	manifest := `{"index":0,"id":"a","dir":"a","base":"vae_mnist","overrides":["run.iterations=100","mollification.enabled=false"]}
{"index":1,"id":"b","dir":"b","base":"vae_mnist","overrides":["run.iterations=100","mollification.enabled=false","run.seed=1"]}
{"index":2,"id":"c","dir":"c","base":"vae_mnist","overrides":["run.iterations=100","mollification.enabled=false","run.seed=2"]}
`
	done := `{"steps":100}`
	dir := writeReportSweep(t, manifest, map[string]map[string]string{
		"a": {"metrics.jsonl": `{"kind":"fcd","step":100,"fcd":"NaN","error":"samples are not finite"}` + "\n", "done.json": done},
		"b": {"metrics.jsonl": `{"kind":"train","step":100,"loss":1}` + "\n", "done.json": done},
		"c": {"metrics.jsonl": `{"kind":"fcd","step":100,"fcd":9.5,"samples":500}` + "\n", "done.json": done},
	})
	rep, err := ReadReport(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	var md bytes.Buffer
	if err := rep.Markdown(&md, nil); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{
		"| VAE | 9.50 (n=1; 1 FCD not finite, 1 no FCD) |",
		"| 0 | a | mnist | VAE | vanilla | 0 | done | 100/100 | NaN @100 | last fcd not finite: samples are not finite |",
		"| 1 | b | mnist | VAE | vanilla | 1 | done | 100/100 | — | finished without a fcd record (eval.fid_samples is 0?) |",
	} {
		if !strings.Contains(md.String(), w) {
			t.Errorf("report lacks %q:\n%s", w, md.String())
		}
	}
}
