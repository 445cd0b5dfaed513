package main

import (
	"path/filepath"
	"testing"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/experiments/sweep"
	"github.com/mollify/mollify/internal/testenv"
)

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
			if st := sweep.StatusOf(dir); st.State != sweep.StateInterrupted {
				t.Errorf("a run stopped at step %d: %+v, want interrupted (no done.json)", c.stop, st)
			}
			if err := trainRun(cfg, dir, true, cfg.Run.Iterations); err != nil {
				t.Fatal(err)
			}
			testenv.CompareRunFolders(t, testenv.ReadRunFolder(t, straightDir), testenv.ReadRunFolder(t, dir))
			if st := sweep.StatusOf(dir); st.State != sweep.StateDone || st.Step != cfg.Run.Iterations {
				t.Errorf("finished run: %+v, want done.json with %d steps", st, cfg.Run.Iterations)
			}
		})
	}
}
