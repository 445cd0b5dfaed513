package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/experiments/sweep"
	"github.com/mollify/mollify/train/dist"
)

// closeRunLog stops copying the output into a sweep run's train.log; a
// no-op outside -sweep.
var closeRunLog = func() {}

// runSweep trains run index of the sweep file in its folder, resuming it
// if it was started and returning at once if it is done.
func runSweep(path string, index int, sets []string) error {
	if path == "" {
		return errors.New("-index needs -sweep FILE (the sweep file the index refers to)")
	}
	if index < 0 {
		return fmt.Errorf("-sweep %s needs -index I, the run to train (cmd/sweep plan %s lists them)", path, path)
	}
	s, err := sweep.Load(path)
	if err != nil {
		return err
	}
	r, err := s.Run(index)
	if err != nil {
		return err
	}
	cfg, err := config.Load(r.Base, append(append([]string(nil), r.Overrides...), sets...))
	if err != nil {
		return err
	}
	if id, err := sweep.RunID(cfg); err != nil {
		return err
	} else if id != r.ID {
		return fmt.Errorf("--set %s would make run %d of %s a different run (id %s, not %s): with -sweep, --set may change only %s; put other overrides in the sweep file",
			strings.Join(sets, " --set "), index, path, id, r.ID, strings.Join(sweep.IgnoredInID, ", "))
	}
	dir := s.Dir(r)
	// A run of several processes (srun -n, cmd/launch): rank 0 keeps the
	// folder's manifest, log and lock; the other ranks only train.
	if env, err := dist.FromEnv(); err == nil && env.Rank != 0 {
		if st := sweep.StatusOf(dir); st.State == sweep.StateDone {
			return nil
		}
		return trainRun(cfg, dir, true, cfg.Run.Iterations)
	}
	if st := sweep.StatusOf(dir); st.State == sweep.StateDone {
		fmt.Fprintf(os.Stderr, "run %d of %s is done (%d steps): %s\n", index, path, st.Step, dir)
		return nil
	}
	if err := s.WriteManifest(); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating the run folder: %w", err)
	}
	if closeRunLog, err = teeOutput(filepath.Join(dir, sweep.LogName)); err != nil {
		return err
	}
	host, _ := os.Hostname()
	fmt.Fprintf(os.Stderr, "%strain -sweep %s -index %d (run %s) pid %d on %s at %s\n",
		sweep.LogMarker, path, index, r.ID, os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))
	release, err := sweep.LockRun(dir)
	if err != nil {
		return err
	}
	defer release()
	// The folder may hold a run from an earlier version of the sweep file
	// that had this id only by the id's rule: check the saved settings.
	if savedPath := filepath.Join(dir, config.ResolvedName); fileExists(savedPath) {
		saved, err := config.Load(savedPath, nil)
		if err != nil {
			return err
		}
		if id, err := sweep.RunID(saved); err != nil || id != r.ID {
			return fmt.Errorf("%s holds a run with id %s, not %s: move that folder away", dir, id, r.ID)
		}
	}
	return trainRun(cfg, dir, true, cfg.Run.Iterations)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
