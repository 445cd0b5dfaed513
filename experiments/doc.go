// Package experiments wires the paper's experiments into the training loop:
// evaluation, figures and run summaries. toy2d.go is §4.1 (REAL-NVP on the
// 2-D mixture of Gaussians and von Mises data: MMD², densities, scores,
// Figs. 1, 4, 5 and 6).
//
// Hooks open their own ts.Scope; tensors they keep across steps (the test
// set) are owned by the experiment and freed by Close.
//
// Reports (report*.go, paper*.go): ReadReport reads a sweep folder
// (manifest.jsonl, one cmd/train run folder per run) into FID or FCD per
// dataset × model × training, mean ± sample std over seeds, the change
// against vanilla as the paper prints it, and the paper's value beside it
// (paper/published.csv, as printed; PaperFlags lists its inconsistencies).
// A run is done (done.json), failed (train.log ends "train: ..."),
// incomplete or missing, and every run is listed: none is dropped. The
// report reads files only and holds no tensors. docs/report.md.
//
// Sweeps (sweep.go, sweepstate.go; docs/sweeps.md). A sweep file names
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
// environment variables included. LoadSweep reports every problem at once
// (unknown keys with suggestions, empty axes, invalid values with the runs
// they hit, duplicate runs, missing bases) in a *SweepError.
//
// Run id: the first 12 hex digits of the SHA-256 of the resolved config's
// YAML with the keys of IgnoredInID blanked: run.name, run.device,
// run.threads, run.out_dir, run.log_every, run.cuda_graph, run.tensorboard, data.root,
// output.checkpoint_every and output.keep (where and how fast a run runs,
// where it writes, how often it logs and checkpoints). Any other key,
// eval and sample cadence included, makes a new run. The id changes if
// the config schema gains a key, so a new mollify version starts new
// folders rather than resuming runs of another code.
//
// Folder layout: OUT_DIR/sweep.yaml (the file as given), OUT_DIR/
// manifest.jsonl (one ManifestEntry per run, in index order: index, id,
// dir, base, overrides, labels) and one cmd/train run folder per run,
// OUT_DIR/ID, which `train -sweep FILE -index I` and `sweep run` both
// produce. In a run folder: done.json (steps, wall_s, finished) once the
// run finished; train.log, the output of every attempt, each starting
// with a line "==> train -sweep ..."; .lock (pid, host, started) while a
// worker runs it, touched every 20 s.
//
// States (StatusOf): done (done.json); running (a live .lock: its pid on
// this host, a heartbeat under 90 s old from another); failed (the last
// attempt's last line in train.log is "train: ..."); interrupted (steps
// logged or a checkpoint, no live worker, no error: the next attempt
// resumes it); pending (no folder or no progress).
package experiments
