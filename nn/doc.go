// Package nn is mollify's layer over the patched gotch tensor library: the
// runtime (device, threads, seeding), parameters, PyTorch-parity layers and
// initialisation, optimizers whose state can be checkpointed, and
// checkpoint files.
//
// Conventions:
//   - Images are NCHW float32. Log-likelihoods are in nats unless a name
//     says bits/dim.
//   - Lifetimes are explicit. Parameters and optimizer state live in a
//     Store and are freed by Store.Close. Everything else is created inside
//     a ts.Scope: a layer's Forward returns a new tensor that belongs to the
//     caller's open scope and never frees its input. The training loop opens
//     one scope per step, so memory stays flat without the Go GC.
//   - Torch state (grad mode, the error slot, the open scope) is per OS
//     thread: the goroutine that trains calls runtime.LockOSThread (or
//     LockThread).
//   - gotch's Must* ops panic (patched from log.Fatal). Functions here that
//     take user input validate it and return errors; Recover turns a torch
//     panic inside a model into an error at an API boundary.
//   - Initialisation matches PyTorch: Linear and Conv weights use
//     kaiming_uniform(a=√5), biases uniform(±1/√fan_in), drawn from
//     libtorch's generator in the same order as torch.nn, so the same seed
//     gives the same weights as PyTorch on CPU.
//   - Kernels may differ from PyTorch's where libtorch 1.13 is slow, never
//     the values beyond float rounding: ConvTranspose2d backpropagates
//     through oneDNN convolutions on CPU (ConvOptions.NativeBackward turns
//     it off; the VAE decoder sets it from model.vae.native_convt_backward),
//     and Adam/Adamax update each CPU parameter in one fused pass
//     (ts.SetOptimFused(false) turns it off).
//   - OptimConfig.Capturable makes an optimizer whose Step can be captured
//     in a CUDA graph (torch.optim's capturable): the step count and the
//     learning rate are 0-d float32 tensors on the parameters' device
//     (StepTensor, LRTensor), Step increments the first in place and
//     derives the bias corrections from it with tensor ops, and reads the
//     second; nothing inside Step is read on the host or taken from a Go
//     value that changes between steps. Write the learning rate with SetLR
//     (or in place into LRTensor) before each step or replay, never while
//     capturing. The moments live in one flat buffer per kind (State's
//     tensors are views, same names as eager, step count as int64), so the
//     update is about fifteen kernels plus one add per parameter. The maths
//     is torch.optim's non-AMSGrad Adam/Adamax, equal to the eager kernels
//     to float rounding. GradNorm, ClipGrads, StepClipped and StepSummary
//     keep the rest of a step on the device: the trainer reads one small
//     tensor per step (ReadStepSummary). ClipGradNorm and Steps read the
//     host, for eager use and checkpoints.
//   - The models' own training noise (the VAEs' reparameterisation ε,
//     NVAE's posterior samples) is drawn with RandnRows/RandnRowsLike. In
//     a data-parallel step the trainer sets SetRowShard(rank, world):
//     every rank then draws the noise of the whole global batch from its
//     (identically seeded) generator and keeps its rows, so no two ranks
//     share an ε, B (not B/W) independent draws enter each step, and one
//     seed gives the same noise for any world size, as the data noise
//     does. The cost is W× the normal draws of the latent tensors (a
//     few elementwise kernels, small beside the networks). Off (world 1,
//     the default, and whenever hooks run) they draw exactly what Randn
//     and MustRandnLike draw. The shard is process-wide state: one
//     process is one rank.
//   - Batch norm (BatchNorm, behind BatchNorm2d.Forward and
//     nvae.BatchNorm.Forward) is ts.MustBatchNorm, bit for bit, unless a
//     data-parallel training step has set SetBatchNormSync
//     (distributed.sync_batchnorm): then, in training mode, it
//     normalises with the global batch's statistics, summing each rank's
//     per-channel Σx, Σx² and count (float64) in one differentiable
//     all-reduce, and moves the running statistics as torch does. The
//     sync is process-wide state like the row shard, off whenever hooks
//     run.
//   - Shared layers: Linear, Conv2d, ConvTranspose2d, BatchNorm2d (flows'
//     coupling networks and the VAE nets use the same one). Loss is the
//     batch objective every model returns and train minimises.
package nn
