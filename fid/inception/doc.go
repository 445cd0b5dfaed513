// Package inception is the FID network: pytorch-fid's Inception-v3
// (FIDInceptionA/C/E_1/E_2 blocks, BN eps 1e-3) on libtorch, with its
// preprocessing (F.interpolate to 299×299, bilinear, then 2x−1). Load
// reads pytorch-fid's weight file pt_inception-2015-12-05-6726825d.pth
// (legacy or zip torch.save format, through fid/torchfile, no Python);
// LoadTorchScript runs a module exported by cmd/fid/export_inception.py.
// WeightsPath finds the weights (flag, else $MOLLIFY_INCEPTION) and says
// where to download them. Features are one of pytorch-fid's blocks (Dims:
// 64, 192, 768 or 2048, the standard FID).
//
// Conventions: images are NCHW float32 in [0, 1] on the network's device,
// 3 channels (fid.UnitTensor makes them from uint8, grey repeated), any
// size. Net and TorchScript are fid.FeatureNets: Features runs without
// gradients, returns a tensor in the caller's ts.Scope and never frees its
// input. Both own their weights until Close. The statistics and the
// distance are package fid's; this package only maps images to features.
package inception
