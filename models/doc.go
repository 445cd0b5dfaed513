// Package models builds the model named by a config (model.name) on an
// nn.Path and adapts it to the training loop.
//
// Each model file hands its family's settings (config.RealNVP2D,
// config.RealNVP, config.Glow, config.VAE) and the data description to the
// flows or vaes constructor as they are; there is no copy of them here.
// Every model implements train.Model (Loss: an nn.Loss, the mean training
// loss of a batch, in nats per example). Models that can also evaluate a density
// implement Density (log p(x) per example, nats) and those that generate
// implement Sampler (samples in the data space the model was trained on).
// Image flows (glow, realnvp) evaluate the density of x in the configured
// data.range, in nats, and convert to bits/dim with BitsPerDim:
// nll/(D·ln 2) + log2(levels/width) — 8 for uniformly dequantized [0,1]
// data, 7 for [-1,1] (see likelihood.go).
// The VAE family (vae, beta_vae, iwae, vae_iaf, hvae; see vaes.go) trains
// on pythae's objectives, whose mse recon leaves out D/2·log 2π; its
// LogProb and Evaluate are normalised importance-sampled estimates (K = 1:
// the ELBO) in nats on the same data.range, so they use the same
// bits/dim convention.
// A model whose density lives in another space than the data's implements
// train.Preprocessor (RealNVP: the logit, with its log-det). The trainer
// maps each batch there, mollifies it there and passes it to Loss, so
// Loss is the density in model space; LogProb, evaluation and bits/dim
// take clean data and include the preprocessing's log-det. The other
// models have no preprocessing (the identity), and Loss takes data.
// Tensors returned belong to the caller's open ts.Scope.
package models
