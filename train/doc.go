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
//   - With run.tensorboard (Options.TensorBoard, on by default) every
//     RunUntil also writes a TensorBoard event file into the run folder
//     (package train/tensorboard, tensorboard_hook.go): each numeric value
//     of each Metric record as a scalar <kind>/<key> at the record's step
//     (booleans as 0/1), and the PNGs hooks pass to Trainer.Image. A
//     resumed run opens a new file that starts with SessionLog START at
//     the step after its checkpoint, so TensorBoard drops what the killed
//     run logged past it. Event files hold wall times: they are not part
//     of the resume-equality check (docs/tensorboard.md).
//   - Data-parallel runs (Trainer.Dist, distributed.go; docs/distributed.md):
//     Data and Mollifier serve the rank's slice of each global batch with
//     noise keyed per global row; parameters and buffers are broadcast
//     from rank 0 when RunUntil starts; the gradients and [loss, terms]
//     are averaged in one bucketed all-reduce before the norm, clipping
//     and the skip decision (between the graphs of a captured step).
//     Hooks run on rank 0 only unless AllRanks (the checkpoint, which
//     gathers every rank's state); only rank 0 writes the run folder.
//   - Hooks draw random numbers from a generator stream of their own
//     (rngstreams.go), so evaluations never change the training noise.
//   - Steps are 0-based; "step N" in metrics and checkpoints counts steps
//     done.
package train
