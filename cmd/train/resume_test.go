package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/mollify/mollify/config"
)

// runFolder is what a run leaves that a resume must reproduce: the
// metrics rows keyed by (kind, step) without wall-clock fields, the
// summary's values, and the list of files.
type runFolder struct {
	rows    map[string]map[string]any
	summary map[string]any
	files   []string
	pngs    map[string][]byte // figures, which are deterministic too
}

// wallClock are the fields that differ between any two runs.
var wallClock = []string{"time", "step_ms", "data_wait_ms", "seconds"}

func readRunFolder(t *testing.T, dir string) runFolder {
	t.Helper()
	var r runFolder
	b, err := os.ReadFile(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	r.rows = map[string]map[string]any{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var row map[string]any
		if err := json.Unmarshal([]byte(line), &row); err != nil {
			t.Fatalf("metrics.jsonl: %v: %s", err, line)
		}
		key := fmt.Sprintf("%v@%v", row["kind"], row["step"])
		if _, dup := r.rows[key]; dup {
			t.Errorf("%s: metrics row %s appears twice", dir, key)
		}
		for _, k := range wallClock {
			delete(row, k)
		}
		r.rows[key] = row
	}
	if b, err := os.ReadFile(filepath.Join(dir, "summary.json")); err == nil {
		if err := json.Unmarshal(b, &r.summary); err != nil {
			t.Fatal(err)
		}
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			r.files = append(r.files, rel)
			if strings.HasSuffix(rel, ".png") {
				if r.pngs == nil {
					r.pngs = map[string][]byte{}
				}
				r.pngs[rel], _ = os.ReadFile(p)
			}
		}
		return err
	})
	sort.Strings(r.files)
	return r
}

func compareRunFolders(t *testing.T, straight, resumed runFolder) {
	t.Helper()
	if !reflect.DeepEqual(straight.files, resumed.files) {
		t.Errorf("files differ:\nuninterrupted %v\nresumed       %v", straight.files, resumed.files)
	}
	for k, want := range straight.rows {
		if got, ok := resumed.rows[k]; !ok {
			t.Errorf("metrics row %s missing after resume", k)
		} else if !reflect.DeepEqual(got, want) {
			t.Errorf("metrics row %s:\nuninterrupted %v\nresumed       %v", k, want, got)
		}
	}
	for k := range resumed.rows {
		if _, ok := straight.rows[k]; !ok {
			t.Errorf("metrics row %s only in the resumed run", k)
		}
	}
	for name, want := range straight.pngs {
		if got, ok := resumed.pngs[name]; ok && !bytes.Equal(got, want) {
			t.Errorf("figure %s differs after resume", name)
		}
	}
	if !reflect.DeepEqual(straight.summary, resumed.summary) {
		t.Errorf("summary.json differs:\nuninterrupted %v\nresumed       %v", straight.summary, resumed.summary)
	}
}

// A run killed between checkpoints and resumed leaves the same run folder
// as an uninterrupted one (issue 11, defect 5): every metrics row once and
// equal, the same summary.json, the same figures — not only the same
// parameters. The kill is simulated by stopping after a step that is not
// a checkpoint, with evaluation rows already written past the last
// checkpoint.
func TestResumedRunFolderMatchesUninterrupted(t *testing.T) {
	tiny := []string{"data.dataset=mnist", "data.channels=1", "data.image_size=32",
		"run.iterations=30", "data.batch_size=8", "eval.every=5", "eval.bpd_samples=16",
		"output.samples_every=5", "output.num_samples=8", "run.log_every=5", "run.device=cpu",
		"output.checkpoint_every=10", "eval.fid_samples=0", "model.glow.levels=2", "model.glow.depth=1", "model.glow.hidden=8",
		"mollification.iterations=20"}
	cases := []struct {
		name, config string
		sets         []string
		stop         int
	}{
		{"2-D", "demo", []string{"run.iterations=300", "run.log_every=25", "eval.every=50", "eval.mmd_samples=300",
			"data.train_size=600", "data.test_size=300", "output.samples_every=100", "output.checkpoint_every=100"}, 160},
		{"image", "glow_cifar10", tiny, 17},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := config.Load(c.config, c.sets)
			if err != nil {
				t.Fatal(err)
			}
			straightDir, dir := filepath.Join(t.TempDir(), "straight"), filepath.Join(t.TempDir(), "resumed")
			for _, d := range []string{straightDir, dir} {
				if _, err := cfg.Save(d); err != nil {
					t.Fatal(err)
				}
			}
			if err := trainRun(cfg, straightDir, false, cfg.Run.Iterations); err != nil {
				t.Fatal(err)
			}
			if err := trainRun(cfg, dir, false, c.stop); err != nil { // "killed" after step c.stop
				t.Fatal(err)
			}
			if err := trainRun(cfg, dir, true, cfg.Run.Iterations); err != nil {
				t.Fatal(err)
			}
			compareRunFolders(t, readRunFolder(t, straightDir), readRunFolder(t, dir))
		})
	}
}
