// Package npz reads and writes numpy's .npy arrays and .npz archives of
// them, as pytorch-fid's statistics files use: little-endian float64
// ('<f8') or float32 ('<f4') arrays in C order.
//
// Reading accepts .npy format versions 1.0, 2.0 and 3.0, and archives whose
// members are stored (np.savez) or deflated (np.savez_compressed). Writing
// produces exactly the bytes numpy 1.24's np.savez does (stored members,
// zip64 local extra fields, fixed 1980-01-01 timestamps), so a Go-written
// stats file is indistinguishable from pytorch-fid's.
//
// Arrays are always float64 in memory; DType says what is (or will be)
// stored. Fortran-order arrays and other dtypes are rejected with an error
// that says how to convert them.
package npz
