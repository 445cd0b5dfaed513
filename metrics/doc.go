// Package metrics holds sample-based and likelihood-based evaluation
// metrics: MMD² with an RBF kernel (the paper's 2D experiments) and bits per
// dimension.
//
// Conventions: inputs are (N, D) float tensors on any device; the work is
// done blockwise on that device, so 10k×10k kernels never materialise at
// once. Results are float64 on the host. Log-likelihoods are in nats.
package metrics
