// Package fid computes the Fréchet Inception Distance the way pytorch-fid
// does: statistics of feature rows and the Fréchet distance between them.
// The networks that make the features live in sub-packages and this one
// does not import them: fid/inception (pytorch-fid's Inception-v3, the FID)
// and fid/classifier (the MNIST classifier of the Fréchet classifier
// distance, "fcd", never called FID). fid/torchfile reads PyTorch weight
// files for them.
//
//   - Accumulator streams feature rows (n×d, float32 or float64) into the
//     mean and the unbiased covariance (numpy's np.mean and
//     np.cov(rowvar=False), ddof=1) in float64, so 50k activations never sit
//     in memory.
//   - FrechetDistance compares two Stats: ‖μ1−μ2‖² + tr Σ1 + tr Σ2 −
//     2·tr sqrt(Σ1Σ2). The default Symmetric method runs on libtorch's
//     float64 LAPACK and is never complex; the Scipy method reproduces
//     pytorch-fid's scipy.linalg.sqrtm path on gonum, including its
//     "Imaginary component" failure, for parity checks.
//   - LoadStats and SaveStats read and write pytorch-fid's .npz statistics
//     files (mu (d,), sigma (d,d), float64), through
//     codeberg.org/sbinet/npyio.
//   - A FeatureNet maps images to features; DatasetStats, FolderStats and
//     Accumulate stream images through one into an Accumulator, with
//     pytorch-fid's preprocessing (UnitImages, UnitTensor).
//
// Image counts follow pytorch-fid: fewer than 2 images are an error
// (ErrTooFewImages, no covariance); 2 to d images give a singular covariance
// (rank ≤ n−1 < d) that is computed all the same, and CheckCount reports it
// as ErrSingularCovariance for callers to print as a warning (cmd/fid, the
// training hook) or to refuse (cmd/fid --strict). Two statistics files are
// compared at their own dimension; they must only agree with each other.
//
// Conventions: statistics are float64; Sigma is a row-major d×d *mat.Dense.
// The linear algebra (the accumulator's scatter matrices, the Symmetric
// method) runs on the CPU in libtorch float64 inside its own ts.Scope, so
// it leaves no tensors behind. Images are NCHW: uint8 levels k, or float32
// k/255 in [0, 1] on the network's device, grey repeated to 3 channels
// (UnitTensor). Features returns a tensor in the caller's ts.Scope and
// never frees its input.
package fid
