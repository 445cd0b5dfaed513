// Package linalg holds the dense kernels behind fid's Fréchet distance and
// covariance accumulator: a blocked, multi-threaded GEMM with an AVX2/FMA
// micro-kernel (pure Go elsewhere), symmetric rank-k updates, pivoted
// Cholesky and symmetric eigenvalues through Householder tridiagonalisation.
//
// gonum's native LAPACK is correct but single-threaded and unvectorised at
// level 2/3 (a 2048² symmetric eigendecomposition takes ~10 s values-only,
// ~60 s with vectors on the project machine), too slow to beat scipy.
//
// Conventions: matrices are column-major with a leading dimension, as in
// LAPACK. The symmetric matrices fid passes are their own transpose, so a
// row-major buffer can be handed over unchanged. Routines that take "lower"
// read and write only the lower triangle; the strict upper triangle is
// scratch.
package linalg
