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
// Sweep files, run ids, manifests and run states are package
// experiments/sweep (cgo-free, so cmd/sweep runs where libtorch is not
// installed, such as a cluster's login node).
package experiments
