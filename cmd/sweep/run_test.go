package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/experiments/sweep"
	"github.com/mollify/mollify/internal/testenv"
)

// A sweep killed mid-run (sweep and its workers, SIGKILL to the process
// group) and run again finishes every run once, none lost or duplicated,
// and a resumed run leaves the same folder as the same run trained without
// interruption by `train -sweep FILE -index I` in another sweep folder.
func TestKilledSweepResumes(t *testing.T) {
	sweepBin, trainBin := binaries(t)
	wd := inDir(t, "tiny.yaml")
	// The same sweep writing elsewhere: out_dir does not enter run ids.
	tiny, _ := os.ReadFile(filepath.Join(wd, "tiny.yaml"))
	os.WriteFile(filepath.Join(wd, "straight.yaml"), bytes.Replace(tiny, []byte("out_dir: out"), []byte("out_dir: straight"), 1), 0o644)
	s, err := sweep.Load(filepath.Join(wd, "tiny.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	runs := s.Runs()
	out := filepath.Join(wd, "out")

	cmd := exec.Command(sweepBin, "run", "tiny.yaml", "-jobs", "2", "-threads", "1", "-train", trainBin)
	cmd.Dir = wd
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var firstLog bytes.Buffer
	cmd.Stderr = &firstLog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill once a run has a checkpoint and is not done.
	deadline := time.Now().Add(2 * time.Minute)
	killed := false
	for !killed && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		for _, r := range runs {
			dir := filepath.Join(out, r.ID)
			ckpts, _ := filepath.Glob(filepath.Join(dir, "checkpoints", "ckpt-*"))
			if len(ckpts) > 0 && sweep.StatusOf(dir).State != sweep.StateDone {
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				killed = true
				break
			}
		}
	}
	cmd.Wait()
	if !killed {
		t.Fatalf("no run reached a checkpoint within 2 minutes:\n%s", firstLog.String())
	}
	// The killed workers are gone once the kernel has torn them down.
	for wait := time.Now().Add(10 * time.Second); time.Now().Before(wait); time.Sleep(20 * time.Millisecond) {
		running := 0
		for _, r := range runs {
			if sweep.StatusOf(filepath.Join(out, r.ID)).State == sweep.StateRunning {
				running++
			}
		}
		if running == 0 {
			break
		}
	}
	var interrupted []sweep.Run
	doneBefore := map[string]bool{}
	hadCheckpoint := map[string]bool{} // resumed, not restarted
	for _, r := range runs {
		switch st := sweep.StatusOf(filepath.Join(out, r.ID)); st.State {
		case sweep.StateDone:
			doneBefore[r.ID] = true
		case sweep.StateInterrupted:
			interrupted = append(interrupted, r)
			ckpts, _ := filepath.Glob(filepath.Join(out, r.ID, "checkpoints", "ckpt-*"))
			hadCheckpoint[r.ID] = len(ckpts) > 0
		case sweep.StateRunning:
			t.Errorf("run %d still shows as running after its worker was killed", r.Index)
		}
	}
	if countTrue(hadCheckpoint) == 0 {
		t.Fatalf("the kill left no interrupted run:\n%s", firstLog.String())
	}
	statusOut, _, _ := sweepCmd(t, wd, "status", "tiny.yaml")
	if !strings.Contains(statusOut, "interrupted") {
		t.Errorf("status after the kill:\n%s", statusOut)
	}

	t.Logf("killed with %d run(s) done and %d interrupted, %d of them after a checkpoint", len(doneBefore), len(interrupted), countTrue(hadCheckpoint))
	// Run again to the end.
	_, stderr, code := sweepCmd(t, wd, "run", "tiny.yaml", "-jobs", "2", "-threads", "1", "-train", trainBin)
	if code != 0 {
		t.Fatalf("second sweep run: exit %d\n%s", code, stderr)
	}

	// None lost or duplicated: the manifest and the folders are the plan.
	entries, err := sweep.ReadManifest(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{sweep.ManifestName, sweep.SweepCopyName}
	for i, r := range runs {
		want = append(want, r.ID)
		if entries[i].ID != r.ID || entries[i].Index != i {
			t.Errorf("manifest line %d: %+v, want run %s", i, entries[i], r.ID)
		}
	}
	if len(entries) != len(runs) {
		t.Errorf("%d manifest lines for %d runs", len(entries), len(runs))
	}
	var got []string
	files, _ := os.ReadDir(out)
	for _, f := range files {
		got = append(got, f.Name())
	}
	if !sameSet(got, want) {
		t.Errorf("sweep folder holds %v, want %v", got, want)
	}
	for _, r := range runs {
		dir := filepath.Join(out, r.ID)
		if st := sweep.StatusOf(dir); st.State != sweep.StateDone || st.Step != 600 {
			t.Errorf("run %d: %+v after the second sweep", r.Index, st)
		}
		log := readFile(t, filepath.Join(dir, sweep.LogName))
		if n := strings.Count(log, "\ndone: 600 steps"); n != 1 {
			t.Errorf("run %d finished %d times:\n%s", r.Index, n, log)
		}
		if doneBefore[r.ID] && strings.Count(log, sweep.LogMarker) != 1 {
			t.Errorf("run %d was done before the kill but was started again:\n%s", r.Index, log)
		}
	}

	// Each interrupted run resumed from its checkpoint and equals an
	// uninterrupted run of the same id, trained by train -sweep -index.
	for _, r := range interrupted {
		dir := filepath.Join(out, r.ID)
		if log := readFile(t, filepath.Join(dir, sweep.LogName)); hadCheckpoint[r.ID] && !strings.Contains(log, "resuming out/"+r.ID+" at step") {
			t.Errorf("run %d was not resumed from its checkpoint:\n%s", r.Index, log)
		}
		straight := trainIndex(t, wd, trainBin, "straight.yaml", r.Index)
		if straight != filepath.Join(wd, "straight", r.ID) {
			t.Errorf("train -sweep -index %d trained %s, want the folder of id %s", r.Index, straight, r.ID)
		}
		testenv.CompareRunFolders(t, testenv.ReadRunFolder(t, straight), testenv.ReadRunFolder(t, dir))
	}
	if t.Failed() {
		t.Logf("first sweep run:\n%s\nsecond:\n%s", firstLog.String(), stderr)
	}
}

// train -sweep FILE -index I trains the run `sweep plan` lists at I, with
// its overrides, and a second call returns at once.
func TestIndexPicksThePlannedRun(t *testing.T) {
	_, trainBin := binaries(t)
	wd := inDir(t, "tiny.yaml")
	short := strings.Replace(readFile(t, filepath.Join(wd, "tiny.yaml")), "run.iterations=600", "run.iterations=20", 1)
	os.WriteFile(filepath.Join(wd, "tiny.yaml"), []byte(strings.Replace(short, "output.checkpoint_every=150", "output.checkpoint_every=10", 1)), 0o644)
	plan, stderr, code := sweepCmd(t, wd, "plan", "tiny.yaml")
	if code != 0 {
		t.Fatal(stderr)
	}
	// index 2: mollified, seed 0.
	var folder string
	sc := bufio.NewScanner(strings.NewReader(plan))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 5 && f[0] == "2" {
			folder = f[1]
			if f[3] != "kind=gaussian,fraction=0.3" || f[4] != "0" {
				t.Errorf("plan line of run 2: %q", sc.Text())
			}
		}
	}
	if folder == "" {
		t.Fatalf("no run 2 in the plan:\n%s", plan)
	}
	dir := trainIndex(t, wd, trainBin, "tiny.yaml", 2)
	if dir != filepath.Join(wd, folder) {
		t.Errorf("train -sweep -index 2 trained %s, plan says %s", dir, folder)
	}
	m, err := sweep.ReadManifest(filepath.Join(wd, "out"))
	if err != nil {
		t.Fatal(err)
	}
	saved, err := config.Load(filepath.Join(dir, config.ResolvedName), nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := config.Load(m[2].Base, append(m[2].Overrides, "run.threads=1"))
	if err != nil {
		t.Fatal(err)
	}
	saved.Source, want.Source = "", ""
	savedID, _ := sweep.RunID(saved)
	if !reflect.DeepEqual(saved, want) || savedID != m[2].ID || filepath.Base(dir) != m[2].ID || saved.Run.Seed != 0 || saved.Mollification.Fraction != 0.3 || !saved.Mollification.Enabled {
		t.Errorf("config.yaml of run 2 is not the manifest's overrides %v", m[2].Overrides)
	}
	log := readFile(t, filepath.Join(dir, sweep.LogName))
	if again := trainIndex(t, wd, trainBin, "tiny.yaml", 2); again != dir {
		t.Errorf("second call: %s", again)
	}
	if readFile(t, filepath.Join(dir, sweep.LogName)) != log {
		t.Error("a done run was trained again")
	}
}

// trainIndex runs train -sweep file -index i in wd and returns the run
// folder it names.
func trainIndex(t *testing.T, wd, trainBin, file string, i int) string {
	t.Helper()
	cmd := exec.Command(trainBin, "-sweep", file, "-index", string(rune('0'+i)), "--set", "run.threads=1")
	cmd.Dir = wd
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("train -sweep %s -index %d: %v\n%s", file, i, err, b)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if _, rest, ok := strings.Cut(line, "run folder "); ok && strings.HasPrefix(line, "done: ") {
			return filepath.Join(wd, rest)
		}
		if _, rest, ok := strings.Cut(line, " is done (600 steps): "); ok {
			return filepath.Join(wd, rest)
		}
		if _, rest, ok := strings.Cut(line, " is done (20 steps): "); ok {
			return filepath.Join(wd, rest)
		}
	}
	t.Fatalf("train -sweep %s -index %d named no folder:\n%s", file, i, b)
	return ""
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, x := range a {
		seen[x]++
	}
	for _, x := range b {
		if seen[x]--; seen[x] < 0 {
			return false
		}
	}
	return true
}

func countTrue(m map[string]bool) int {
	n := 0
	for _, v := range m {
		if v {
			n++
		}
	}
	return n
}
