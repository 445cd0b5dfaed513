// Package nvae is the home of NVAE (Vahdat & Kautz, 2020), the deep
// hierarchical VAE of the paper's last experiment. No model is implemented
// here yet; its settings are config.NVAE (config/nvae.go: the fields,
// their defaults and checks), configs/nvae_cifar10.yaml holds the paper's
// values, and building it with cmd/train reports that the model is not
// available. The constructor will take config.NVAE directly, as flows and
// vaes take theirs.
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
