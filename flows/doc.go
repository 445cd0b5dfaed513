// Package flows holds normalizing flows.
//
// Conventions:
//   - Forward maps data to latent and returns (z, logdet) with
//     logdet = log|det ∂z/∂x| per sample; Inverse maps latent to data and
//     returns the log-determinant of that direction. (normflows calls the
//     latent→data direction "forward"; we do not.)
//   - LogProb returns log p(x) per sample in nats. Bits/dim, where reported,
//     is −log p(x)/(D·ln 2) plus the dequantization offset; see
//     BitsPerDim.
//   - Images are NCHW float32.
//   - Methods return new tensors that belong to the caller's open ts.Scope
//     and never free their inputs. Parameters live in the nn.Store given to
//     the constructor.
package flows
