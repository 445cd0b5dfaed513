// Package nvae holds NVAE (Vahdat & Kautz, 2020), the deep hierarchical
// VAE of the paper's last experiment, and its parts: NVAE's layers and
// residual cells, its Normal distributions, KL warm-up and balancing,
// spectral regularisation, and the decoder's likelihood, a mixture of
// logistics (logistic.go). Settings are config.NVAE (config/nvae.go: the
// fields, their defaults and checks; model.nvae in YAML);
// configs/nvae_cifar10.yaml holds the paper's values. Constructors take
// config.NVAE as it is, as flows and vaes take theirs.
//
// # Conventions
//
//   - Images are NCHW, float32 in training, in [0, 1] (data.range unit):
//     the 256 levels k/255. The likelihood maps them to NVAE's y = 2x−1 in
//     [−1, 1] itself; callers never rescale. Under Gaussian mollification
//     the values leave the grid and [0, 1]; see "Mollified data" below for
//     what each likelihood does with them. Nothing in this package clamps
//     or rounds data.
//   - Everything is in nats per example: log-likelihoods and KL terms are
//     summed over channels and pixels (and latent groups), never averaged
//     over dimensions. Bits/dim: the discretized likelihood is the
//     probability of the 8-bit value, so bpd = −log p / (D·ln 2) with no
//     offset; the continuous one is a density in [0, 1] units and takes the
//     offset of data.Transform.BitsPerDimOffset (log2 255 for k/255 data),
//     as package models does for densities. On the grid the two then agree
//     up to the discretisation.
//   - Forward on a layer or cell is its forward pass, as in torch; nothing
//     here is a flow in package flows' sense of data→latent.
//   - Lifetimes: parameters and buffers live in the nn.Store behind the
//     path given to a constructor. Functions and methods return new tensors
//     that belong to the caller's open ts.Scope and never free their
//     inputs; they use del=false on gotch ops and free their own
//     intermediates in a scope of their own. Distributions (Normal,
//     MixLogistic) hold views of the tensors they are built from: use them
//     while the scope owning those tensors is open. No in-place op ever
//     touches a caller's tensor (CONVENTIONS.md, aliasing).
//   - Constructors and methods that take user input validate it (shapes,
//     dtypes, settings) and return errors naming the problem and, for a
//     setting, its YAML key; torch failures come back as errors too.
//   - Batch norms use NVAE's momentum 0.05 and start in training mode
//     (batch statistics); SetTraining(false) selects the running ones.
//   - The training step must stay capturable in a CUDA graph: no host
//     reads inside it. The likelihood picks its branches with torch.where,
//     never by reading values back; only shapes are checked on the host.
//   - Torch state (grad mode, errors) is per OS thread: the training
//     goroutine calls runtime.LockOSThread().
//
// # The likelihood: NVAE's mixture of logistics
//
// MixLogistic reads a decoder output (B, P, H, W) in NVAE's layout:
// channels [0, M) are the mixture logits, then for each image channel M
// means, M log-scales (floored at −7, as NVAE does) and, for RGB, M
// coefficients (through tanh); P = 10·M for RGB, NVAE's, and 3·M for one
// channel (MNIST), with M = model.nvae.mixtures (10). For RGB each
// component is autoregressive over the channels:
// μ_G = m_G + c0·y_R and μ_B = m_B + c1·y_R + c2·y_G, with y the data as
// given. A pixel's log-probability is logsumexp_k(log π_k + Σ_c log p_c,k).
//
// LogProb is NVAE's discretized likelihood. With s a component's scale and
// σ the logistic CDF, a channel value y scores
//
//	y < −0.999:  log σ((y − μ + 1/255)/s)       lower edge bin, from −∞
//	y > +0.999:  log(1 − σ((y − μ − 1/255)/s))  upper edge bin, to +∞
//	otherwise:   log(σ((y − μ + 1/255)/s) − σ((y − μ − 1/255)/s)),
//	             or log pdf(y) + log(2/255) when that mass is ≤ 1e-5
//
// On the grid the 256 probabilities of a value sum to 1. NVAE's code uses
// y > 0.99 for the upper edge, which also sends level 254 (y = 0.99216) to
// the upper edge bin, so its 256 probabilities sum to more than 1; here
// both edges use 0.999 (PixelCNN++'s), which changes nothing else.
//
// ContinuousLogProb is the density of the same mixture at x, without
// discretisation: log pdf(y; μ, s) + log 2 per channel (the Jacobian of
// y = 2x−1), a proper density on all of R^C. On the grid, with components
// wide compared with a bin, it is about LogProb + D·log 255.
//
// Sample draws at a temperature t ≥ 0 (Gumbel-max over logits/t, then
// logistic noise with scale s·t, NVAE's uniforms in (1e-5, 1−1e-5)); t = 0
// is the most probable component's mean. NVAE's code divides the scale by t
// instead, but never calls it with t ≠ 1. Mean is NVAE's mean image (the
// softmax-weighted means and coefficients through the autoregression).
// Both return images: each channel is clamped to [0, 1] before the next
// one uses it, as in NVAE, and the values are not rounded to the grid.
//
// # Mollified data
//
// Gaussian mollification, x̃ = √(1−σ²)·x + σ·ε in [0, 1] units, moves the
// values off the 256-level grid and, early in the schedule, most of them
// outside [0, 1]. model.nvae.mollified_likelihood chooses how mollified
// batches are scored (Likelihood(x, mollified, setting)); clean batches and
// evaluation always use the discretized likelihood.
//
// "discretized" (the default) is what the authors effectively ran: NVAE's
// discretized likelihood applied to the mollified values as they are.
// NVAE's log_prob asserts 0 ≤ x ≤ 1, so running it on mollified data means
// dropping that assert; the formulas then do the following, and so does
// LogProb:
//
//   - x in (0.0005, 0.9995) off the grid: the mass of the bin-wide window
//     [y − 1/255, y + 1/255] around y. Windows of nearby values overlap, so
//     this scores each value but is not a distribution over mollified
//     values.
//   - x < 0.0005, including every negative value: the lower edge formula
//     at y itself, log P(Y ≤ y + 1/255), the mass from −∞ up to half a bin
//     above y. At x = 0 it is the edge bin; below 0 it is smaller and keeps
//     falling (about linearly in y/s) as x goes further out. The value is
//     not moved: x = −0.3 scores log P(Y ≤ −1.6 + 1/255), not x = 0's
//     log P(Y ≤ −1 + 1/255).
//   - x > 0.9995: symmetrically log P(Y ≥ y − 1/255).
//   - For RGB the values of R and G, out of range or not, enter the means of
//     G and B through the coefficients unchanged, as in NVAE.
//
// Every term is a log-probability of an interval, so it is finite and ≤ 0
// however far out x lies. A Bernoulli likelihood has no such bound: with
// targets outside [0, 1] it is unbounded, which is why NVAE here is not
// Bernoulli.
//
// What is never done is a silent clamp of the data. Clamping x to [0, 1]
// would make x = −0.3 score exactly like x = 0 and pile the out-of-range
// values, most of them early in the schedule, into point masses at the
// edge bins: the degenerate target mollification exists to remove. That
// is the RealNVP defect issue 11 found (its clamp before the logit sent
// about 66% of the values to the ends at the start of the schedule). The
// only clamps here are NVAE's on parameters (log-scales ≥ −7), a floor of
// 1e-10 on a bin mass inside its log (only in the branch where the mass is
// above 1e-5, so it never changes a result), and the clamps of Sample and
// Mean on the images they return.
//
// "continuous" is the principled alternative: while mollifying, score the
// batch with ContinuousLogProb, the density of the logistic mixture. A
// Gaussian-mollified dataset has a density, and this is a proper density
// on all of R^C, so mollified values on or off the grid, inside or outside
// [0, 1], are modelled as what they are, with no edge bins. Clean batches
// are scored by the discretized likelihood, so when mollification ends
// the reconstruction term jumps by about D·log 255 nats per example
// (17,023 for CIFAR-10) with no change in the model: compare curves within
// a phase, or in bits/dim with each likelihood's convention.
//
// Cells (cells.go, ops.go) are NVAE's, in its default res_mbconv
// architecture: every cell returns skip(x) + 0.1·f(x). Pre-process and
// encoder cells run BN–swish–conv3×3 twice; decoder cells are inverted
// residuals (BN, 1×1 conv to 6C, BN, swish, depthwise 5×5, BN, swish, 1×1
// conv, BN), post-process cells the same with 3C; squeeze-and-excitation
// (hidden max(C/16,4)) ends every branch when model.nvae.use_se is set.
// Down cells halve H and W and double C (skip: FactorizedReduce); up cells
// upsample by 2 and halve C. Convolutions are weight-normalised as NVAE's
// Conv2D, w = exp(log g)·v/(‖v‖+1e-5) per output channel, except those of
// the inverted residuals (followed by batch norm, as in NVAE); there is no
// data-dependent init (NVAE uses it only in ELU convs these cells lack).
// Batch norms use momentum 0.05 and ε 1e-5. Parameter names are NVAE's
// state-dict names. Conv.Weight, the normalised weight, is what the
// spectral regulariser bounds; Cell.Convs and Cell.BatchNorms list them.
//
// Objective (kl.go, spectral.go, normal.go). KLWarmup is NVAE's kl_coeff:
// max(min((step − kl_const_portion·T)/(kl_anneal_portion·T), 1),
// kl_const_coeff), 0-based steps; CoeffTensor computes it on the device.
// While it is below 1, BalanceKL reweights each group's KL by its
// batch-mean |KL| (+0.01) over α (KLBalanceAlphas, NVAE's 'square'
// weights), normalised to mean 1 and without gradient, so no group
// collapses during warm-up. SpectralReg adds λ·(Σ σ_max of every conv
// weight, viewed as (out, in·k·k), + Σ max|γ| of every batch norm), λ =
// weight_decay_norm; σ_max = uᵀWv with u and v refined by power iteration
// without gradient (40 iterations at construction, 4 per step), buffers
// per weight shape saved with the weights, so a resumed run continues
// exactly and a captured step has no first-call branch. Normal is NVAE's:
// μ and log σ soft-clamped by 5·tanh(x/5), σ = exp(log σ)+0.01, times the
// temperature; the residual posterior adds the prior's raw parameters to
// the encoder's before the clamp. KLs are analytic and elementwise, in
// nats. Normal.Sample's ε comes from nn.RandnRowsLike: keyed per global
// row inside a data-parallel training step (each rank its rows of the
// global batch's draw), the plain draw otherwise. BatchNorm.Forward is
// nn.BatchNorm with NVAE's momentum and ε: NVlabs trains multi-GPU with
// SyncBatchNormSwish; set distributed.sync_batchnorm: true to match (each
// rank otherwise normalises with its own rows' statistics).
//
// The model (model.go) is NVAE's AutoEncoder with res_dist: stem
// (weight-normalised conv 3×3 on 2x−1), pre-process cells (the last of
// each block down_pre), the encoder tower (groups of normal_enc cells, an
// EncCombiner after every group but the last, down_enc between scales),
// enc0 (ELU, conv 1×1, ELU), the samplers (encoder: conv 3×3 to 2·latents;
// decoder: ELU, conv 1×1), prior_ftr0, the decoder tower (normal_dec cells
// and a DecCombiner per group, up_dec between scales), post-process cells
// (the first of each block up_post) and the head (ELU, conv 3×3 to the
// mixture's parameters). The first group's prior is N(0, 1) as NVAE's
// Normal(0, 0) (σ = 1.01); the others are residual posteriors. Loss is
// train.py's: −log p(x|z) + coeff·balanced KL + λ·(spectral + BN), terms
// recon, kl (unweighted, summed over groups), spectral and kl_coeff. The
// KL warm-up and the mollified phase (SetSchedule) are read from Step, a
// 0-d buffer that Loss advances on the device, so a captured step reads no
// host value. The trainer sets it before every step (SetStep,
// train.Stepper), so the schedule follows the trainer's count exactly,
// resumed runs and skipped steps included (a skipped step restores the
// buffer with the batch-norm statistics; without SetStep the warm-up
// would lag by the skipped steps). LogLikelihood is the
// importance-weighted bound on the discretized log P(x); Sample draws the
// latents at a temperature and the pixels at temperature 1, as NVAE.
//
// Flows (model.nvae.flows per group) are NVAE's PairedCellAR as it runs
// them: two CellARs, raster and reverse raster order, each z ← z − μ(z)
// with μ from masked (ARConv2d) weight-normalised convs, so the
// log-determinant is 0; with flows each group's KL is NVAE's one-sample
// log q(z0) − log p(z) instead of the analytic one. The masked weights are
// in the spectral regulariser, as in NVAE.
//
// ReadjustBN is NVAE's set_bn before sampling. SampleReadjusted runs it
// (model.nvae.readjust_bn, readjust_bn_iters, readjust_bn_batch; NVAE's
// 500 passes of 36) and samples, then puts the trained statistics back so
// evaluation and training never see the readjusted ones; it keeps those
// aside and reuses them at the same step and temperature, so FID's many
// sampling batches readjust once. Bounds gives the ELBO and the
// importance-weighted bound from the same draws; evaluation's bits/dim
// use K = model.nvae.iw_samples (1, the ELBO, by default; NVAE's final
// numbers use 1000).
//
// The CIFAR-10 preset has exactly the parameter count of NVAE's
// reference model (130,852,480; models' TestNVAECIFAR10ParameterCount).
//
// # Training settings against NVAE's train.py
//
// configs/nvae_cifar10.yaml against NVlabs/NVAE train.py's defaults and
// its CIFAR-10 command (config's TestNVAECIFAR10MatchesNVAETraining):
//
//	setting            NVAE train.py                     nvae_cifar10
//	optimizer          torch.optim.Adamax, betas         the same (nn's Adamax, L2 decay
//	                   (0.9, 0.999), L2 decay in grad    added to the gradient)
//	eps                1e-3                              1e-3
//	weight decay       3e-4                              3e-4
//	lr                 1e-2                              1e-3, the paper's (issue 14)
//	lr floor           eta_min 1e-4                      min_lr 1e-4
//	lr warm-up         5 epochs, lr·step/W from 0        1250 steps (5 epochs), lr·(step+1)/W
//	cosine decay       CosineAnnealingLR per epoch,      per step over the steps after
//	                   T_max = epochs − 5 − 1            the warm-up, to min_lr at the end
//	gradient clipping  none                              none
//	precision          fp16 autocast, GradScaler         float32 (non-finite steps skipped,
//	                   (skips non-finite steps)          run.max_nonfinite)
//	KL warm-up         0.3, const 1e-4 at 1e-4           the same (model.nvae.kl_*)
//	spectral λ         1e-2 (CIFAR-10 command)           weight_decay_norm 1e-2
//
// The two schedule differences are the trainer's (train.LRSchedule,
// shared by every model): NVAE's first warm-up step has lr 0, and its
// cosine moves once per epoch and holds the base rate one epoch past the
// warm-up; both change the rate by at most one step's or one epoch's
// worth. NVAE's run also flips CIFAR-10 images horizontally; mollify's
// data pipeline does not augment.
//
// A whole forward pass matches an independent PyTorch transcription
// (testdata/gen_forward_golden.py: two small presets, fixed weights and
// posterior noise through a test-only seam): each group's KL, the
// reconstruction term, log q and log p with batch and running statistics,
// the running statistics, and Loss's coefficient and balanced total.
package nvae
