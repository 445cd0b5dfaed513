// Package fid computes the Fréchet Inception Distance the way pytorch-fid
// does, with the pure-Go parts in this package and its sub-packages:
//
//   - Accumulator streams feature rows (n×d, float32 or float64) into the
//     mean and the unbiased covariance (numpy's np.mean and
//     np.cov(rowvar=False), ddof=1) in float64, so 50k activations never sit
//     in memory.
//   - FrechetDistance compares two Stats: ‖μ1−μ2‖² + tr Σ1 + tr Σ2 −
//     2·tr sqrt(Σ1Σ2). The default Symmetric method is fast and never
//     complex; the Scipy method reproduces pytorch-fid's scipy.linalg.sqrtm
//     path, including its "Imaginary component" failure, for parity checks.
//   - LoadStats and SaveStats read and write pytorch-fid's .npz statistics
//     files (mu (d,), sigma (d,d), float64), through fid/npz.
//   - fid/torchfile reads PyTorch weight files (legacy and zip torch.save
//     formats) without Python, for the Inception weights.
//   - Inception is pytorch-fid's Inception-v3 on libtorch (LoadInception
//     from pt_inception-2015-12-05-6726825d.pth, or LoadTorchScript from
//     cmd/fid/export_inception.py), with pytorch-fid's preprocessing; it
//     and the MNIST Classifier (the Fréchet classifier distance, "fcd",
//     never called FID) are FeatureNets. DatasetStats, FolderStats and
//     Accumulate stream images through one into an Accumulator.
//
// Image counts follow pytorch-fid: fewer than 2 images are an error
// (ErrTooFewImages, no covariance); 2 to d images give a singular covariance
// (rank ≤ n−1 < d) that is computed all the same, and CheckCount reports it
// as ErrSingularCovariance for callers to print as a warning (cmd/fid, the
// training hook) or to refuse (cmd/fid --strict). Two statistics files are
// compared at their own dimension; they must only agree with each other.
//
// Conventions: statistics are float64; Sigma is a row-major d×d *mat.Dense.
// Images are NCHW: uint8 levels k, or float32 k/255 in [0, 1] on the
// network's device, grey repeated to 3 channels (UnitTensor). Networks own
// their weights until Close; Features returns a tensor in the caller's
// ts.Scope and never frees its input. The statistics code does not touch
// libtorch.
package fid
