// Package vaes holds the VAE family of Tran et al. 2023 (appendix D.3.2,
// Table 4): VAE, β-VAE, IWAE, VAE-IAF and HVAE, following pythae's losses
// except where pythae is wrong (HVAE).
//
// Conventions:
//   - Settings: every constructor takes config.VAE (model.vae: the shared
//     fields, and the variant's own: Beta, ImportanceSamples, IAF, HVAE)
//     and the config.Data the model is fed (image_size, channels, range),
//     and validates them with config.VAE.Validate, which lists every
//     problem by its config key. The Table 4 layer specs are methods of
//     config.VAE (EncoderLayers, DecoderInput, DecoderLayers), so a
//     setting that changes them lives in config/vae.go alone.
//   - Images are NCHW float32 in the configured data range:
//     config.RangeUnit [0, 1] (all shipped configs) or config.RangeSigned
//     [-1, 1]. The decoder returns pre-activations a; its mean image is
//     sigmoid(a) for unit data and tanh(a) for signed data. "bce" needs
//     unit data (config.VAE.Validate says so). Under Gaussian mollification
//     targets leave the range; both likelihoods are applied as written (bce
//     as BCE-with-logits).
//   - Everything is in nats per example. Loss terms follow pythae: "mse" is
//     0.5·Σ(x̂−x)², a unit-variance Gaussian without its constant
//     D/2·log 2π; "bce" is Σ BCE, already normalised. The latent Gaussians'
//     −d/2·log 2π cancel and are left out. LogLikelihood is normalised: it
//     adds −ReconConst (D/2·log 2π for mse, 0 for bce), so it is comparable
//     with a flow's log p(x) on the same data. So for mse,
//     LogLikelihood(x, 1) ≈ −(recon + kl) − D/2·log 2π.
//   - Loss returns an nn.Loss of batch means: Total (minimised) and
//     Terms, always "recon" and "kl", plus "neg_elbo" (β-VAE), "bound"
//     (IWAE), "log_det" (VAE-IAF), "momentum" (HVAE). KL is closed form in
//     VAE and β-VAE and a single-sample estimate elsewhere.
//   - The training noise (Loss's reparameterisation ε: IWAE's K samples,
//     HVAE's ε and momentum γ) comes from nn.RandnRows/RandnRowsLike: in
//     a data-parallel step each rank gets its rows of the global batch's
//     draw, so ranks never share an ε and one seed trains the same for
//     any world size; in one process (and in LogLikelihood and Sample,
//     which run outside training steps) it is the plain draw.
//   - IWAE's Total is −mean logmeanexp(log w); its gradient is the IWAE
//     estimator, identical to that of pythae's surrogate (Surrogate).
//   - Directions: flows' Forward means data→latent. Nothing here uses the
//     word for a flow direction: IAF.Transform maps the base sample z0 to
//     the posterior sample zK and returns log|det ∂zK/∂z0| (neither is
//     data). Forward on a network (Encoder, Decoder, MADE, the layers of
//     nn) is its forward pass, as in torch.
//   - Batch norm: models start in training mode (batch statistics, running
//     statistics updated). SetTraining(false) selects the running ones; the
//     models package does so for LogLikelihood and Sample. HVAE's ∇U runs
//     through the decoder's batch norm, so in training mode it couples the
//     examples of a batch, as in pythae.
//   - Table 4 architecture (config/vae.go), with a width multiplier w on
//     every channel count: encoder CONV(k4, s2, p1)→BN→ReLU with 128w,
//     256w, 512w, 1024w channels, then FC heads μ and log σ²; decoder FC to
//     1024w×8×8, then ConvT→BN→ReLU and a last ConvT to C channels. Table 4
//     gives no paddings; ours give exact sizes:
//     32×32: 8 →(k4,s2,p1) 16 →(k4,s2,p1,outpad1) 33 →(k4,s1,p2) 32
//     (pythae's CIFAR decoder); 64×64: 8 →(k5,s2,p2,outpad1) 16
//     →(k5,s2,p2,outpad1) 32 →(k5,s2,p1) 65 →(k4,s1,p2) 64 (Table 4's
//     last CONVT(3,4,1); pythae's CelebA decoder ends in a kernel-5 ConvT
//     instead).
//   - Lifetimes: parameters live in the nn.Store behind the path given to
//     the constructor. Methods return new tensors that belong to the
//     caller's open ts.Scope and never free their inputs.
package vaes
