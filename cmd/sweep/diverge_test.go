package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mollify/mollify/experiments/sweep"
)

// A run that diverges is a result, as the 2-D tables count it: train exits
// 1 but leaves done.json with the reason, the sweep does not count it as
// failed, and a rerun does not train it again.
func TestDivergedRunIsAResult(t *testing.T) {
	_, trainBin := binaries(t)
	wd := inDir(t, "diverge.yaml")
	_, stderr, code := sweepCmd(t, wd, "run", "diverge.yaml", "-jobs", "1", "-threads", "1", "-train", trainBin)
	if code != 0 {
		t.Fatalf("sweep run exited %d for a diverged run:\n%s", code, stderr)
	}
	s, err := sweep.Load(filepath.Join(wd, "diverge.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(wd, "out", s.Runs()[0].ID)
	b, err := os.ReadFile(filepath.Join(dir, sweep.DoneName))
	if err != nil {
		t.Fatalf("no done.json after the run diverged: %v\n%s", err, stderr)
	}
	var d sweep.Done
	if err := json.Unmarshal(b, &d); err != nil || !strings.Contains(d.Diverged, "non-finite") || d.Steps >= 300 {
		t.Errorf("done.json = %s, want the divergence reason and the step it stopped at (< 300)", b)
	}
	if st := sweep.StatusOf(dir); st.State != sweep.StateDone || !strings.Contains(st.Detail, "diverged at step") {
		t.Errorf("status %v %q, want done, diverged at step ...", st.State, st.Detail)
	}
	_, stderr, code = sweepCmd(t, wd, "run", "diverge.yaml", "-jobs", "1", "-threads", "1", "-train", trainBin)
	if code != 0 || !strings.Contains(stderr, "1 done, 0 to run") {
		t.Errorf("rerun: exit %d, want 0 with nothing to run:\n%s", code, stderr)
	}
}
