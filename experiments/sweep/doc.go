// Package sweep expands sweep files into runs and keeps their folders
// (docs/sweeps.md). It is cgo-free: cmd/sweep plans, runs, reports the
// status of and writes cluster files for a sweep on a machine without
// libtorch (the workers it starts, cmd/train, need it). A sweep file names
//
//	base: glow_cifar10            # a config name or path, a list of them, or
//	                              # a list of {config: NAME, set: [key=value]}
//	out_dir: runs/sweeps/NAME     # optional; NAME is the file's name
//	set: [run.threads=1]          # optional, applied to every run
//	axes:                         # ordered; runs are the cross product
//	  mollification: [{enabled: false}, {kind: gaussian}]
//	  run.seed: [0, 1, 2]
//
// Runs are ordered bases first, then the axes in file order, the last axis
// fastest. A map value sets the keys under its axis (mollification.kind=
// gaussian); a scalar or a list is one value of a leaf key. A run's
// overrides are set:, its base's set:, then one per axis in file order (a
// later one wins); its config is config.Load(base, overrides), MOLLIFY_*
// environment variables included. Load reports every problem at once
// (unknown keys with suggestions, empty axes, invalid values with the runs
// they hit, duplicate runs, missing bases) in a *SweepError.
//
// Run id: the first 12 hex digits of the SHA-256 of the resolved config's
// YAML with the keys of IgnoredInID blanked: run.name, run.device,
// run.threads, run.out_dir, run.log_every, run.cuda_graph, run.tensorboard,
// the distributed section (but sync_batchnorm), data.root, output.checkpoint_every and
// output.keep (where and how fast a run runs, where it writes, how often
// it logs and checkpoints). Any other key,
// eval and sample cadence included, makes a new run. The id changes if
// the config schema gains a key, so a new mollify version starts new
// folders rather than resuming runs of another code.
//
// Folder layout: OUT_DIR/sweep.yaml (the file as given), OUT_DIR/
// manifest.jsonl (one ManifestEntry per run, in index order: index, id,
// dir, base, overrides, labels) and one cmd/train run folder per run,
// OUT_DIR/ID, which `train -sweep FILE -index I` and `sweep run` both
// produce. In a run folder: done.json (steps, wall_s, finished) once the
// run finished (with the reason when it diverged: a result, kept on a
// rerun); train.log, the output of every attempt, each starting
// with a line "==> train -sweep ..."; .lock (pid, host, started) while a
// worker runs it, touched every 20 s.
//
// States (StatusOf): done (done.json); running (a live .lock: its pid on
// this host, a heartbeat under 90 s old from another); failed (the last
// attempt's last line in train.log is "train: ..."); interrupted (steps
// logged or a checkpoint, no live worker, no error: the next attempt
// resumes it); pending (no folder or no progress).
package sweep
