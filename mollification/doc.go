// Package mollification implements data mollification (Tran et al. 2023,
// "One-Line-of-Code Data Mollification Improves Optimization of
// Likelihood-based Generative Models"): during the first part of training
// the batch is replaced by a smoothed version of itself, progressively less
// smoothed, and the model is trained on clean data after.
//
// Conventions:
//   - Steps are 0-based optimizer steps. With a mollification phase of T
//     steps, step t < T is mollified at progress u = t/T ∈ [0, 1) (the
//     authors' code uses i/N_max); steps t ≥ T return the clean batch.
//   - Gaussian mollification is variance preserving:
//     x̃ = √(1−σ²)·x + σ·ε, σ² = γ(u), ε ~ N(0, I) drawn from libtorch's
//     generator on x's device (seed it with ts.ManualSeed). γ is one of
//     appendix C's schedules, going from 1 (pure noise) to ~0.
//   - Blur mollification solves the heat equation on each channel of an NCHW
//     batch: x_t = IDCT2(DCT2(x)·exp(−Λt)) with orthonormal DCTs and
//     Λ_ij = (πi/H)² + (πj/W)² (appendix B). The time follows the paper (and
//     Rissanen et al.'s code): t = σ_B²/2 with σ_B log-spaced from σ_B,max
//     (half the image width) at u = 0 down to σ_B,min = 0.5 px at u = 1,
//     i.e. log t is linear in u. The noise schedule γ is not used.
//   - Mollify runs as a few batched tensor ops on x's device, never inside a
//     model. It never frees its input; the tensor it returns belongs to the
//     caller's open ts.Scope (after the phase it is a shallow copy of x,
//     sharing its storage). Mollifiers are not safe for concurrent use.
//   - Data-parallel runs: Shard wraps the mollifier of a rank whose batch
//     is its slice of the global batch; Gaussian noise is keyed per global
//     row (the whole global batch's noise is drawn and sliced), so one seed
//     gives the same noise for any world size (shard.go says the cost).
//   - A Blur holds its DCT matrices on the device: build it outside the
//     per-step scope (like a model) and Close it when done.
package mollification
