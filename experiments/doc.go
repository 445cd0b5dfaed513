// Package experiments wires the paper's experiments into the training loop:
// evaluation, figures and run summaries. toy2d.go is §4.1 (REAL-NVP on the
// 2-D mixture of Gaussians and von Mises data: MMD², densities, scores,
// Figs. 1, 4, 5 and 6).
//
// Hooks open their own ts.Scope; tensors they keep across steps (the test
// set) are owned by the experiment and freed by Close.
package experiments
