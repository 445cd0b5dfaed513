// Package train is mollify's training loop: one mollified step per
// iteration, hooks for progress, metrics, evaluation, samples and
// checkpoints, NaN/Inf skipping, and exact resume.
//
// Conventions:
//   - The loop runs on one goroutine locked to its OS thread (torch's grad
//     mode and error slot are per thread).
//   - Each step runs inside its own ts.Scope: the batch, the mollified
//     batch, the loss and every intermediate are freed when the step ends,
//     so memory is flat over millions of steps without the Go GC. Hooks run
//     outside the step scope and open their own scopes.
//   - Mollification is applied here, once per step, to the batch the model
//     sees; models never mollify.
//   - Loss values are in the model's units (nats per example for flows and
//     VAEs); bits/dim are reported by evaluation hooks.
//   - A run folder holds config.yaml (the resolved config), metrics.jsonl,
//     checkpoints/ckpt-<step>.safetensors and whatever the hooks write.
//   - Steps are 0-based; "step N" in metrics and checkpoints counts steps
//     done.
package train
