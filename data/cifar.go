package data

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// CIFAR-10 binary layout: each record is one label byte and 3072 pixel
// bytes (the R, G and B planes of a 32×32 image, rows top to bottom); a
// batch file holds 10000 records.
const (
	cifarRecord     = 1 + 3*32*32
	cifarBatchesDir = "cifar-10-batches-bin"
)

// cifarPerFile is the number of records per batch file (tests lower it to
// keep fixtures small).
var cifarPerFile = 10000

// cifarFiles lists the batch files of a split.
func cifarFiles(split Split) ([]string, error) {
	switch split {
	case Train:
		return []string{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"}, nil
	case Test:
		return []string{"test_batch.bin"}, nil
	}
	return nil, fmt.Errorf("data: CIFAR-10 has splits %q and %q, not %q", Train, Test, split)
}

// CIFAR10Dir finds the folder holding the batch files: root itself,
// root/cifar-10-batches-bin or root/cifar10/cifar-10-batches-bin (where
// `go run ./cmd/data download cifar10` puts them).
func CIFAR10Dir(root string) (string, error) {
	cands := []string{root, filepath.Join(root, cifarBatchesDir), filepath.Join(root, "cifar10", cifarBatchesDir)}
	for _, d := range cands {
		if _, err := os.Stat(filepath.Join(d, "test_batch.bin")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("data: CIFAR-10 not found: no test_batch.bin in %s; fetch it with `%s`: %w",
		filepath.Join(root, "cifar10", cifarBatchesDir), fetchHint("cifar10", root), ErrNotFound)
}

// LoadCIFAR10 reads a split of the CIFAR-10 binary version (50000 train
// or 10000 test 3×32×32 images with labels 0..9).
func LoadCIFAR10(root string, split Split) (*Images, error) {
	files, err := cifarFiles(split)
	if err != nil {
		return nil, err
	}
	dir, err := CIFAR10Dir(root)
	if err != nil {
		return nil, err
	}
	n := len(files) * cifarPerFile
	pix := make([]uint8, n*3072)
	labels := make([]uint8, n)
	for k, name := range files {
		off := k * cifarPerFile
		if err := readCIFARFile(filepath.Join(dir, name), pix[off*3072:(off+cifarPerFile)*3072], labels[off:off+cifarPerFile], root); err != nil {
			return nil, err
		}
	}
	return NewImages("cifar10-"+string(split), n, 3, 32, 32, pix, labels)
}

// readCIFARFile reads one batch file into pix and labels.
func readCIFARFile(path string, pix, labels []uint8, root string) error {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return fmt.Errorf("data: CIFAR-10: %s is missing; fetch it with `%s`: %w", path, fetchHint("cifar10", root), ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("data: CIFAR-10: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("data: CIFAR-10: %w", err)
	}
	want := int64(cifarRecord * cifarPerFile)
	if st.Size() != want {
		return fmt.Errorf("data: CIFAR-10: %w: %s has %d bytes, want %d (%d records of 1 label + 3072 pixel bytes); fetch it again with `%s`",
			ErrCorrupt, path, st.Size(), want, cifarPerFile, fetchHint("cifar10", root))
	}
	buf := make([]byte, want)
	if _, err := io.ReadFull(f, buf); err != nil {
		return fmt.Errorf("data: CIFAR-10: %w: %s: reading %d bytes: %v", ErrCorrupt, path, want, err)
	}
	for i := 0; i < cifarPerFile; i++ {
		rec := buf[i*cifarRecord : (i+1)*cifarRecord]
		if rec[0] > 9 {
			return fmt.Errorf("data: CIFAR-10: %w: %s: record %d has label %d, want 0..9 (is this the binary version?)", ErrCorrupt, path, i, rec[0])
		}
		labels[i] = rec[0]
		copy(pix[i*3072:(i+1)*3072], rec[1:])
	}
	return nil
}
