// Package classifier is the network behind the Fréchet classifier distance
// (FCD), the fallback for MNIST runs on machines without the FID Inception
// weights: the same Fréchet distance (package fid) on the 128 penultimate
// ReLU features of a small MNIST CNN, trained once by
// `go run ./cmd/fid train-classifier` (Train) and cached under the data
// root (Path, Load). Its values are not comparable with FID, nor with FCDs
// of another classifier, and are always labelled "fcd".
//
// Conventions: images are NCHW float32 in [0, 1] on the network's device
// (fid.UnitTensor makes them from uint8), grey or RGB (averaged to grey),
// 28×28 or 32×32 zero-padded MNIST (cropped back). Net is a fid.FeatureNet:
// Features runs without gradients, returns a tensor in the caller's
// ts.Scope and never frees its input. Net owns its weights until Close.
// Train seeds libtorch's generator with Options.Seed.
package classifier
