package testenv

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

	"github.com/mollify/mollify/train/tensorboard"
)

// RunFolder is what a run leaves that a resumed (or re-run) run must
// reproduce: the metrics rows keyed by (kind, step) without wall-clock
// fields, the summary's values, the list of files and the figures.
type RunFolder struct {
	Rows    map[string]map[string]any
	Summary map[string]any
	Files   []string
	PNGs    map[string][]byte // figures, which are deterministic too
}

// WallClockFields are the metrics fields that differ between any two runs.
var WallClockFields = []string{"time", "step_ms", "data_wait_ms", "seconds"}

// WallClockFile reports files whose name or bytes hold wall times, left out
// of the comparison: TensorBoard event files (named after the time they
// were opened) and the lock of a live worker.
func WallClockFile(rel string) bool {
	base := filepath.Base(rel)
	return strings.HasPrefix(base, tensorboard.FilePrefix) || base == ".lock" // sweep.LockName (sweep's tests import this package)
}

// ReadRunFolder reads a run folder for CompareRunFolders.
func ReadRunFolder(t testing.TB, dir string) RunFolder {
	t.Helper()
	var r RunFolder
	b, err := os.ReadFile(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	r.Rows = map[string]map[string]any{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var row map[string]any
		if err := json.Unmarshal([]byte(line), &row); err != nil {
			t.Fatalf("metrics.jsonl: %v: %s", err, line)
		}
		key := fmt.Sprintf("%v@%v", row["kind"], row["step"])
		if _, dup := r.Rows[key]; dup {
			t.Errorf("%s: metrics row %s appears twice", dir, key)
		}
		for _, k := range WallClockFields {
			delete(row, k)
		}
		r.Rows[key] = row
	}
	if b, err := os.ReadFile(filepath.Join(dir, "summary.json")); err == nil {
		if err := json.Unmarshal(b, &r.Summary); err != nil {
			t.Fatal(err)
		}
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			if WallClockFile(rel) {
				return nil
			}
			r.Files = append(r.Files, rel)
			if strings.HasSuffix(rel, ".png") {
				if r.PNGs == nil {
					r.PNGs = map[string][]byte{}
				}
				r.PNGs[rel], _ = os.ReadFile(p)
			}
		}
		return err
	})
	sort.Strings(r.Files)
	return r
}

// CompareRunFolders fails the test where resumed differs from straight:
// the files, each metrics row (once, equal), the figures and summary.json.
func CompareRunFolders(t testing.TB, straight, resumed RunFolder) {
	t.Helper()
	if !reflect.DeepEqual(straight.Files, resumed.Files) {
		t.Errorf("files differ:\nuninterrupted %v\nresumed       %v", straight.Files, resumed.Files)
	}
	for k, want := range straight.Rows {
		if got, ok := resumed.Rows[k]; !ok {
			t.Errorf("metrics row %s missing after resume", k)
		} else if !reflect.DeepEqual(got, want) {
			t.Errorf("metrics row %s:\nuninterrupted %v\nresumed       %v", k, want, got)
		}
	}
	for k := range resumed.Rows {
		if _, ok := straight.Rows[k]; !ok {
			t.Errorf("metrics row %s only in the resumed run", k)
		}
	}
	for name, want := range straight.PNGs {
		if got, ok := resumed.PNGs[name]; ok && !bytes.Equal(got, want) {
			t.Errorf("figure %s differs after resume", name)
		}
	}
	if !reflect.DeepEqual(straight.Summary, resumed.Summary) {
		t.Errorf("summary.json differs:\nuninterrupted %v\nresumed       %v", straight.Summary, resumed.Summary)
	}
}
