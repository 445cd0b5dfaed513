package main

import (
	"bytes"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/models"
	"github.com/mollify/mollify/nn"
	"github.com/mollify/mollify/train"
	"github.com/sugarme/gotch"
)

var update = flag.Bool("update", false, "rewrite testdata/table.md from the fixtures")

// cells returns the cells of the table row that starts with prefix.
func cells(t *testing.T, table, prefix string) []string {
	t.Helper()
	for _, line := range strings.Split(table, "\n") {
		if strings.HasPrefix(line, prefix) {
			var out []string
			for _, c := range strings.Split(strings.Trim(line, "|"), "|") {
				out = append(out, strings.TrimSpace(c))
			}
			return out
		}
	}
	t.Fatalf("no row %q in\n%s", prefix, table)
	return nil
}

// The fixtures (testdata/runs, written by hand) hold 2 MoG seeds and 4 von
// Mises seeds per training, with two diverged vanilla runs (seed 2 at an
// evaluation, seed 3 by non-finite steps), a diverged mollified run (seed
// 3, so that seed is not compared), a non-finite mean NLL, and a folder
// without summary.json. The whole table is compared with
// testdata/table.md; the cells that carry the rules are checked
// by name.
func TestTable(t *testing.T) {
	dirs, err := filepath.Glob("testdata/runs/*")
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if err := run(dirs, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errOut.String(), "unfinished-run has no summary.json") {
		t.Errorf("stderr %q should name the unfinished run", errOut.String())
	}
	got := out.String()
	golden := filepath.Join("testdata", "table.md")
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("table:\n%s\nwant (%s):\n%s", got, golden, want)
	}

	// Columns: data, training, seeds, finished, diverged, MMD² paper, unit,
	// swapped, better, NLL mean, NLL median, NLL above, truth, score, paper.
	for _, c := range []struct {
		row  string
		col  int
		want string
	}{
		{"| vonmises | vanilla |", 2, "4"},
		{"| vonmises | vanilla |", 3, "2"},
		{"| vonmises | vanilla |", 4, "2 (12000, 5000)"},
		// Median and IQR of 0.49 and 0.1 (×1e5): numpy's linear quantiles
		// 0.295 [0.1975, 0.3925].
		{"| vonmises | vanilla |", 5, "0.295 [0.198, 0.392]"},
		{"| vonmises | vanilla |", 6, "29.5 [19.8, 39.2]"},
		// 3.6e27 and a non-finite mean: the median is the larger one.
		{"| vonmises | vanilla |", 9, "non-finite"},
		{"| vonmises | vanilla |", 10, "-2.55"},
		{"| vonmises | vanilla |", 11, "3.5%"},
		{"| vonmises | vanilla |", 8, "–"},
		{"| vonmises | Gaussian mollification |", 4, "1 (7000)"},
		{"| vonmises | Gaussian mollification |", 5, "0.2 [0.175, 0.215]"},
		// Seed 0 better, seed 1 worse, seed 2 against a diverged vanilla
		// run, seed 3 both diverged: left out.
		{"| vonmises | Gaussian mollification |", 8, "2 of 3 (1 against a diverged vanilla run)"},
		{"| vonmises | Gaussian mollification |", 14, "6.13"},
		{"| mog | Gaussian mollification |", 8, "1 of 2"},
		{"| mog | vanilla |", 12, "2.72"},
		{"| mog | vanilla |", 13, "0.825 [0.823, 0.827]"},
	} {
		if got := cells(t, got, c.row); got[c.col] != c.want {
			t.Errorf("%s column %d = %q, want %q", c.row, c.col, got[c.col], c.want)
		}
	}
	if !strings.Contains(got, "(here 1 of the better seeds)") {
		t.Error("the footnote should count the seeds won against a diverged vanilla run")
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	if err := run(nil, &bytes.Buffer{}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Errorf("no arguments: %v", err)
	}
	if err := run([]string{dir}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "none of the 1 folders") {
		t.Errorf("no summaries: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "summary.json"), []byte("{"), 0o644)
	if err := run([]string{dir}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "summary.json") {
		t.Errorf("bad JSON: %v", err)
	}
	twice := []string{"testdata/runs/mog-moll_false-seed0", "testdata/runs/mog-moll_false-seed0"}
	if err := run(twice, &bytes.Buffer{}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "second mog run with seed 0") {
		t.Errorf("a seed twice: %v", err)
	}
}

// -steps on the fixtures: a finished run has one evaluation, at step
// 20000, so that row is the main table's comparison; a diverged run's
// last evaluation is on its own row; diverged runs logged a non-finite
// loss at step 200.
func TestSteps(t *testing.T) {
	dirs, _ := filepath.Glob("testdata/runs/*")
	var out bytes.Buffer
	if err := run(append([]string{"-steps"}, dirs...), &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, c := range []struct {
		row  string
		col  int
		want string
	}{
		{"| vonmises | 20000 |", 2, "2, 0.295 [0.198, 0.392]"},
		{"| vonmises | 20000 |", 3, "3, 0.2 [0.175, 0.215]"},
		{"| vonmises | 20000 |", 4, "1 of 2"},
		{"| vonmises | 12000 |", 2, "1, 0.5 [0.5, 0.5]"},
		{"| vonmises | 12000 |", 4, "0 of 0"},
		{"| vonmises | vanilla |", 3, "2 (seed 2: 200; seed 3: 200)"},
		{"| vonmises | Gaussian mollification |", 3, "1 (seed 3: 200)"},
		{"| mog | vanilla |", 3, "0"},
	} {
		if got := cells(t, got, c.row); got[c.col] != c.want {
			t.Errorf("%s column %d = %q, want %q", c.row, c.col, got[c.col], c.want)
		}
	}
}

// -points on a run folder whose checkpoint holds a freshly built flow: its
// couplings start as the identity, so every von Mises point (radius 1)
// has NLL ½·1 + log 2π with ½‖z‖² = ½ and log-det 0.
func TestPoints(t *testing.T) {
	dir := t.TempDir()
	c, err := config.Load("realnvp_vonmises", []string{"data.train_size=300", "data.test_size=100", "data.batch_size=64", "run.device=cpu"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Save(dir); err != nil {
		t.Fatal(err)
	}
	store := nn.NewStore(gotch.CPU)
	defer store.Close()
	if _, err := models.Build(c, store.Root()); err != nil {
		t.Fatal(err)
	}
	opt, err := nn.NewOptimizer(store, nn.OptimConfig{Name: "adam", LR: 1e-3})
	if err != nil {
		t.Fatal(err)
	}
	defer opt.Close()
	rng, err := nn.Seed(0)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := train.NewOptions(c)
	if err != nil {
		t.Fatal(err)
	}
	tr := &train.Trainer{Options: opts, Dir: dir, Device: gotch.CPU, Store: store, Optim: opt, RNG: rng}
	if _, err := tr.SaveCheckpoint(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run([]string{"-points", dir}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	name := "| " + filepath.Base(dir) + " (step 0) | test |"
	row := cells(t, out.String(), name)
	want := fmt.Sprintf("%.3g", 0.5+math.Log(2*math.Pi))
	for col, w := range map[int]string{2: want, 3: want, 4: want, 5: want, 6: "0 of 100", 9: "0.5", 10: "0"} {
		if row[col] != w {
			t.Errorf("%s column %d = %q, want %q\n%s", name, col, row[col], w, out.String())
		}
	}
	if err := run([]string{"-points", t.TempDir()}, &out, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "config.yaml") {
		t.Errorf("-points on a folder without a run: %v", err)
	}
}
