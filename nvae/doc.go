// Package nvae is the home of NVAE (Vahdat & Kautz, 2020), the deep
// hierarchical VAE of the paper's last experiment. No model is implemented
// here yet; configs/nvae_cifar10.yaml holds the paper's settings, and
// building it with cmd/train reports that the model is not available.
//
// Conventions, shared with the rest of mollify:
//   - Images are NCHW float32 in [0,1]: NVAE's discretized mixture of
//     logistics needs that range, so mollified inputs outside it must be
//     handled explicitly, never clamped silently.
//   - Losses and bounds are in nats per example; bits/dim as in package
//     models.
//   - Methods return tensors in the caller's open ts.Scope and never free
//     their inputs; parameters live in an nn.Store.
package nvae
