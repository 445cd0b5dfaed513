// Package data loads the training data: the 2-D toy sets of the paper's
// appendix D.1, MNIST, CIFAR-10 and CelebA-64.
//
// Conventions:
//   - Images are kept as uint8 NCHW on the host and converted on the
//     training device; 2-D points are N×2 float32.
//   - A training batch is a function of (seed, step), so a resumed run sees
//     the same data.
//   - Functions that return tensors give them to the caller's open
//     ts.Scope; they never free their inputs.
package data
