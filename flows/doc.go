// Package flows holds normalizing flows: the 2-D RealNVP of the toy
// experiments and the multi-scale image flows RealNVP (Dinh et al. 2017)
// and Glow (Kingma & Dhariwal 2018), with their building blocks.
//
// Conventions:
//   - Settings: NewRealNVP2D, NewRealNVP and NewGlow take the config type
//     of their family (config.RealNVP2D, config.RealNVP, config.Glow; the
//     image models also the data shape), validate it with its Validate,
//     and read derived values through its methods (RealNVP2D.Hidden,
//     RealNVP.Widths, Glow.CouplingKernels), so a setting lives in one
//     file of config. Partition, Scale and GlowPrior are those settings'
//     strings parsed.
//   - Forward maps data to latent and returns (z, logdet) with
//     logdet = log|det ∂z/∂x| per sample; Inverse maps latent to data and
//     returns the log-determinant of that direction. (normflows calls the
//     latent→data direction "forward"; we do not.) Multi-scale models
//     return their latents as a list: the factored-out halves, level by
//     level, then the top.
//   - LogProb returns log p(x) per sample in nats: the density of x in the
//     space the flow is given (RealNVP: [0,1] data, before its logit). It
//     is not a discrete likelihood; bits/dim add the dequantization offset
//     (models.*.BitsPerDim and metrics.BitsPerDim).
//   - Images are NCHW float32. Inverse(Forward(x)) ≈ x to 1e-4 in float32
//     for inputs of unit scale (tested on every layer and model); the 1×1
//     convolution's inverse matrix is computed in float64.
//   - Parameter names mirror a PyTorch state dict of the same modules
//     (levels.0.layers.1.actnorm.bias); testdata/gen_golden.py is that
//     PyTorch reference. Buffers (ActNorm's "initialised" flag, the LU
//     permutation and signs, batch-norm running statistics) are saved with
//     the weights.
//   - Methods return new tensors that belong to the caller's open ts.Scope
//     and never free their inputs. Parameters live in the nn.Store given to
//     the constructor. Layer methods panic on mis-shaped tensors with a
//     descriptive error; the models' exported methods validate and return
//     errors.
//   - Preprocessing (MultiScale.Pre: RealNVP's logit) is the map from data
//     to model space. Preprocess returns it with its log-det, and
//     LogProbPreprocessed is the density in model space, so that
//     LogProb(x) = LogProbPreprocessed(Pre(x)) + log-det. Training
//     mollifies in model space (see models.RealNVP and train.Preprocessor).
//   - RealNVP's batch norms (nn.BatchNorm2d) use batch statistics after
//     SetTraining(true) (the default) and running statistics after
//     SetTraining(false).
package flows
