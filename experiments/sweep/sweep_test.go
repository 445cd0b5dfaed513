package sweep

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/internal/testenv"
)

func TestSweepExpansion(t *testing.T) {
	s, err := Load("testdata/sweep_grid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "sweep_grid" || s.OutDir != "runs/test-grid" {
		t.Errorf("name %q, out_dir %q", s.Name, s.OutDir)
	}
	runs := s.Runs()
	if len(runs) != 12 {
		t.Fatalf("%d runs, want 2 bases × 2 × 3 = 12", len(runs))
	}
	for _, c := range []struct {
		index     int
		base      string
		overrides []string
		labels    map[string]string
	}{
		{0, "demo", []string{"run.threads=1", "data.train_size=600", "mollification.enabled=false", "run.seed=0"},
			map[string]string{"mollification": "enabled=false", "run.seed": "0"}},
		{1, "demo", []string{"run.threads=1", "data.train_size=600", "mollification.enabled=false", "run.seed=1"},
			map[string]string{"mollification": "enabled=false", "run.seed": "1"}},
		{5, "demo", []string{"run.threads=1", "data.train_size=600", "mollification.kind=gaussian", "mollification.fraction=0.3", "run.seed=2"},
			map[string]string{"mollification": "kind=gaussian,fraction=0.3", "run.seed": "2"}},
		{6, "realnvp_vonmises", []string{"run.threads=1", "data.train_size=600", "run.iterations=200", "mollification.enabled=false", "run.seed=0"},
			map[string]string{"mollification": "enabled=false", "run.seed": "0"}},
	} {
		r := runs[c.index]
		if r.Index != c.index || r.Base != c.base || !reflect.DeepEqual(r.Overrides, c.overrides) || !reflect.DeepEqual(r.Labels, c.labels) {
			t.Errorf("run %d: got index %d base %s overrides %v labels %v\nwant base %s overrides %v labels %v",
				c.index, r.Index, r.Base, r.Overrides, r.Labels, c.base, c.overrides, c.labels)
		}
		want, err := config.Load(c.base, c.overrides)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(r.Config, want) {
			t.Errorf("run %d: config differs from config.Load(%s, %v)", c.index, c.base, c.overrides)
		}
		if s.Dir(r) != filepath.Join("runs/test-grid", r.ID) {
			t.Errorf("run %d: dir %s", c.index, s.Dir(r))
		}
	}
	if got := runs[5].Config.Mollification; got.Fraction != 0.3 || !got.Enabled || runs[6].Config.Run.Iterations != 200 {
		t.Errorf("overrides not applied: %+v, iterations %d", got, runs[6].Config.Run.Iterations)
	}
	if _, err := s.Run(12); err == nil || !strings.Contains(err.Error(), "has 12 runs (indices 0 to 11") {
		t.Errorf("Run(12): %v", err)
	}
	if r, err := s.Run(11); err != nil || r.ID != runs[11].ID {
		t.Errorf("Run(11): %v", err)
	}
}

func TestValueText(t *testing.T) {
	s := writeSweep(t, `base: demo
axes:
  optim.betas: [[0.9, 0.99]]
  run.name: ["1e-3"]
  data.root: [/data/x]
`)
	got := s.Runs()[0].Overrides
	want := []string{"optim.betas=[0.9, 0.99]", `run.name="1e-3"`, "data.root=/data/x"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("overrides %v, want %v", got, want)
	}
	c := s.Runs()[0].Config
	if !reflect.DeepEqual(c.Optim.Betas, []float64{0.9, 0.99}) || c.Run.Name != "1e-3" || c.Data.Root != "/data/x" {
		t.Errorf("values read back as %v %q %q", c.Optim.Betas, c.Run.Name, c.Data.Root)
	}
}

func writeSweep(t *testing.T, body string) *Sweep {
	t.Helper()
	p := filepath.Join(t.TempDir(), "s.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRunIDs(t *testing.T) {
	a, err := Load("testdata/sweep_grid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load("testdata/sweep_grid_reordered.yaml")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, r := range a.Runs() {
		if len(r.ID) != IDLength || strings.Trim(r.ID, "0123456789abcdef") != "" {
			t.Errorf("run %d: id %q is not %d hex digits", i, r.ID, IDLength)
		}
		if got := b.Runs()[i].ID; got != r.ID {
			t.Errorf("run %d: id %s in the reordered file, %s in the original", i, got, r.ID)
		}
		seen[r.ID] = true
	}
	if len(seen) != 12 {
		t.Errorf("%d distinct ids for 12 runs", len(seen))
	}

	id := func(sets ...string) string {
		t.Helper()
		c, err := config.Load("demo", sets)
		if err != nil {
			t.Fatal(err)
		}
		s, err := RunID(c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ref := id()
	same := map[string]string{"run.name": "other", "run.device": "cpu", "run.threads": "3", "run.out_dir": "elsewhere",
		"run.log_every": "7", "run.cuda_graph": "off", "run.tensorboard": "false", "data.root": "/mnt/data", "output.checkpoint_every": "11", "output.keep": "5",
		"distributed.backend": "gloo", "distributed.bucket_mb": "1", "distributed.heartbeat_seconds": "7", "distributed.timeout_minutes": "9"}
	if len(same) != len(IgnoredInID) {
		t.Errorf("the test covers %d keys, IgnoredInID has %d", len(same), len(IgnoredInID))
	}
	for _, k := range IgnoredInID {
		if got := id(k + "=" + same[k]); got != ref {
			t.Errorf("%s=%s changed the id (%s, was %s)", k, same[k], got, ref)
		}
	}
	for _, set := range []string{"run.seed=1", "optim.lr=1e-3", "run.iterations=100", "mollification.enabled=false", "eval.every=10", "output.samples_every=10",
		"distributed.sync_batchnorm=true"} {
		if id(set) == ref {
			t.Errorf("%s left the id unchanged", set)
		}
	}
	if id("run.seed=1", "optim.lr=1e-3") != id("optim.lr=1e-3", "run.seed=1") {
		t.Error("the order of overrides changed the id")
	}
	t.Setenv("MOLLIFY_RUN_SEED", "4")
	if id() != id("run.seed=4") {
		t.Error("an environment override is part of the resolved config, so of the id")
	}
}

// Every problem of a sweep file comes in one error, each naming where it
// is and what to do.
func TestSweepErrorsAllAtOnce(t *testing.T) {
	for _, c := range []struct {
		file string
		want []string
	}{
		{"testdata/sweep_bad.yaml", []string{
			"7 problem(s)",
			`unknown key "axis_order" (keys of a sweep file: base, out_dir, set, axes)`,
			`unknown key "out_dr" (did you mean "out_dir"?)`,
			`set[0]: unknown key "optim.lrr" (did you mean "optim.lr"?)`,
			`axes.mollification[0]: unknown key "mollification.knd" (did you mean "mollification.kind"?)`,
			`axes.mollification[1]: "mollification" is a section; set one of its keys (enabled, kind`,
			`axes.run.sed: unknown key "run.sed" (did you mean "run.seed"?)`,
			"axes.optim.lr is empty",
		}},
		{"testdata/sweep_invalid.yaml", []string{
			`base nosuch_config: config "nosuch_config" not found`,
			"optim.lr must be a finite number > 0, got -1 (runs 2, 3)",
			"mollification.fraction must be in [0, 1], got 1.5 (runs 1, 3)",
		}},
		{"testdata/sweep_dup.yaml", []string{
			"runs 0 (base demo, run.device: cpu, run.seed: 0) and 2 (base demo, run.device: auto, run.seed: 0) are the same run",
			"runs 1 (base demo, run.device: cpu, run.seed: 1) and 3",
		}},
		{"testdata/nosuch.yaml", []string{"no such file", "give the path of a sweep file"}},
	} {
		t.Run(filepath.Base(c.file), func(t *testing.T) {
			s, err := Load(c.file)
			if s != nil {
				t.Errorf("Load returned a sweep with the error")
			}
			testenv.AssertError(t, err, c.want, nil)
		})
	}
	// One line per problem: the axis with an unknown key once, not per value.
	_, err := Load("testdata/sweep_bad.yaml")
	var se *SweepError
	if !errors.As(err, &se) || len(se.Problems) != 7 {
		t.Errorf("want a *SweepError with 7 problems, got %#v", err)
	}
}

func TestManifest(t *testing.T) {
	s, err := Load("testdata/sweep_grid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s.OutDir = filepath.Join(t.TempDir(), "out")
	for i := 0; i < 2; i++ { // the second write finds the same files
		if err := s.WriteManifest(); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ReadManifest(s.OutDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 12 {
		t.Fatalf("%d manifest entries", len(got))
	}
	for i, e := range got {
		r := s.Runs()[i]
		want := ManifestEntry{Index: i, ID: r.ID, Dir: r.ID, Base: r.Base, Overrides: r.Overrides, Labels: r.Labels}
		if !reflect.DeepEqual(e, want) {
			t.Errorf("entry %d: %+v, want %+v", i, e, want)
		}
	}
	first, _ := os.ReadFile(filepath.Join(s.OutDir, ManifestName))
	if line := strings.SplitN(string(first), "\n", 2)[0]; !strings.HasPrefix(line, `{"index":0,"id":"`+s.Runs()[0].ID+`","dir":"`) ||
		!strings.HasSuffix(line, `"overrides":["run.threads=1","data.train_size=600","mollification.enabled=false","run.seed=0"],"labels":{"mollification":"enabled=false","run.seed":"0"}}`) {
		t.Errorf("manifest line 0: %s", line)
	}
	if b, _ := os.ReadFile(filepath.Join(s.OutDir, SweepCopyName)); string(b) != string(s.Raw) {
		t.Error("sweep.yaml is not the file as given")
	}
	if _, err := ReadManifest(t.TempDir()); err == nil || !strings.Contains(err.Error(), "is") {
		t.Errorf("ReadManifest of an empty folder: %v", err)
	}
}

func TestRunStates(t *testing.T) {
	host, _ := os.Hostname()
	lock := func(pid int, host string) string {
		return `{"pid":` + strconv.Itoa(pid) + `,"host":"` + host + `","started":"2026-01-01T00:00:00Z"}`
	}
	metrics := `{"kind":"train","step":25}` + "\n" + `{"kind":"eval","step":50}` + "\n"
	for _, c := range []struct {
		name   string
		files  map[string]string
		old    bool // the lock's heartbeat is older than LockStale
		state  RunState
		step   int
		detail string
	}{
		{"no folder", nil, false, StatePending, 0, ""},
		{"config only", map[string]string{"config.yaml": "x"}, false, StatePending, 0, ""},
		{"progress", map[string]string{"metrics.jsonl": metrics}, false, StateInterrupted, 50, ""},
		{"checkpoint only", map[string]string{"checkpoints/ckpt-000000010.safetensors": "x"}, false, StateInterrupted, 0, ""},
		{"done", map[string]string{"metrics.jsonl": metrics, DoneName: `{"steps":100,"wall_s":1,"finished":"2026-01-01T00:00:00Z"}`}, false, StateDone, 100, "finished 2026-01-01T00:00:00Z"},
		{"failed", map[string]string{"metrics.jsonl": metrics, LogName: "==> train -sweep\nstep 25/100\ntrain: loss is NaN\n"}, false, StateFailed, 50, "train: loss is NaN"},
		{"failed, then restarted and killed", map[string]string{LogName: "==> a\ntrain: loss is NaN\n==> b\nstep 25/100\n", "metrics.jsonl": metrics}, false, StateInterrupted, 50, ""},
		{"a warning is not a failure", map[string]string{LogName: "==> a\ntrain: x has no state for hook y\nstep 30/100\n"}, false, StatePending, 0, ""},
		{"live worker here", map[string]string{LockName: lock(os.Getpid(), host), "metrics.jsonl": metrics}, false, StateRunning, 50, "pid " + strconv.Itoa(os.Getpid())},
		{"dead worker here", map[string]string{LockName: lock(1<<22+7, host), "metrics.jsonl": metrics}, false, StateInterrupted, 50, ""},
		{"worker elsewhere, recent heartbeat", map[string]string{LockName: lock(1, "other-host")}, false, StateRunning, 0, "on other-host"},
		{"worker elsewhere, no heartbeat", map[string]string{LockName: lock(1, "other-host")}, true, StatePending, 0, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "run")
			for name, body := range c.files {
				p := filepath.Join(dir, name)
				os.MkdirAll(filepath.Dir(p), 0o755)
				if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if c.old {
				old := time.Now().Add(-2 * LockStale)
				os.Chtimes(filepath.Join(dir, LockName), old, old)
			}
			got := StatusOf(dir)
			if got.State != c.state || got.Step != c.step || !strings.Contains(got.Detail, c.detail) {
				t.Errorf("got %+v, want state %s step %d detail containing %q", got, c.state, c.step, c.detail)
			}
		})
	}
}

func TestLockRun(t *testing.T) {
	dir := t.TempDir()
	release, err := LockRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st := StatusOf(dir); st.State != StateRunning {
		t.Errorf("state while locked: %+v", st)
	}
	_, err = LockRun(dir)
	testenv.AssertError(t, err, []string{"is held by pid " + strconv.Itoa(os.Getpid()), "remove " + filepath.Join(dir, LockName)}, ErrRunLocked)
	release()
	release() // twice is fine
	if _, err := os.Stat(filepath.Join(dir, LockName)); !os.IsNotExist(err) {
		t.Errorf("the lock outlived its release: %v", err)
	}
	// A lock left by a dead worker is taken over.
	host, _ := os.Hostname()
	os.WriteFile(filepath.Join(dir, LockName), []byte(`{"pid":4194311,"host":"`+host+`"}`), 0o644)
	release, err = LockRun(dir)
	if err != nil {
		t.Fatalf("stale lock not taken over: %v", err)
	}
	release()
}

func TestWriteDone(t *testing.T) {
	dir := t.TempDir()
	if err := WriteDone(dir, 300, 1500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	st := StatusOf(dir)
	if st.State != StateDone || st.Step != 300 {
		t.Errorf("%+v", st)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}
