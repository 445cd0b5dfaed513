package data

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestLoadCIFAR10(t *testing.T) {
	smallCIFAR(t, 7)
	for _, layout := range []string{"root is the batches folder", "root holds it", "root/cifar10 holds it"} {
		root := t.TempDir()
		switch layout {
		case "root is the batches folder":
			writeCIFAR(t, root)
			root = filepath.Join(root, cifarBatchesDir)
		case "root holds it":
			writeCIFAR(t, root)
		default:
			writeCIFAR(t, filepath.Join(root, "cifar10"))
		}
		for _, tc := range []struct {
			split Split
			files []int
		}{{Train, []int{0, 1, 2, 3, 4}}, {Test, []int{5}}} {
			m, err := LoadCIFAR10(root, tc.split)
			if err != nil {
				t.Fatalf("layout %q: %v", layout, err)
			}
			if m.N != 7*len(tc.files) || m.C != 3 || m.H != 32 || m.W != 32 {
				t.Fatalf("layout %q %s: shape %d×%d×%d×%d", layout, tc.split, m.N, m.C, m.H, m.W)
			}
			for j, k := range tc.files {
				for _, i := range []int{0, 6} {
					px, label := m.Example(j*7 + i)
					if label != (k+i)%10 {
						t.Errorf("%s file %d record %d: label %d, want %d", tc.split, k, i, label, (k+i)%10)
					}
					// R plane first, then G, then B: byte p of the record's
					// 3072 pixel bytes is channel p/1024.
					for _, p := range []int{0, 1023, 1024, 2048, 3071} {
						if want := byte(k*7 + i*3 + p); px[p] != want {
							t.Errorf("%s file %d record %d byte %d = %d, want %d", tc.split, k, i, p, px[p], want)
						}
					}
				}
			}
		}
	}
}

func TestLoadCIFAR10Errors(t *testing.T) {
	smallCIFAR(t, 4)
	root := t.TempDir()
	_, err := LoadCIFAR10(root, Train)
	mustContain(t, err, "go run ./cmd/data download cifar10 -root "+root)
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("%v is not ErrNotFound", err)
	}
	_, err = LoadCIFAR10(DefaultRoot, Train) // no ./data/cifar10 in the package folder
	mustContain(t, err, "go run ./cmd/data download cifar10`")

	writeCIFAR(t, root)
	dir := filepath.Join(root, cifarBatchesDir)
	if _, err := LoadCIFAR10(root, Valid); err == nil {
		t.Error("valid split accepted")
	}
	// Truncated: one byte short.
	p := filepath.Join(dir, "data_batch_3.bin")
	b, _ := os.ReadFile(p)
	os.WriteFile(p, b[:len(b)-1], 0o644)
	_, err = LoadCIFAR10(root, Train)
	mustContain(t, err, "data_batch_3.bin", "has 12291 bytes, want 12292", "4 records of 1 label + 3072 pixel bytes")
	if !errors.Is(err, ErrCorrupt) {
		t.Errorf("%v is not ErrCorrupt", err)
	}
	// A label byte out of range (e.g. the CIFAR-100 layout).
	b[3073] = 42
	os.WriteFile(p, b, 0o644)
	_, err = LoadCIFAR10(root, Train)
	mustContain(t, err, "data_batch_3.bin", "record 1 has label 42")
	// A missing train file.
	os.Remove(p)
	_, err = LoadCIFAR10(root, Train)
	mustContain(t, err, "data_batch_3.bin is missing", "go run ./cmd/data download cifar10")
	// The test split is intact.
	if _, err := LoadCIFAR10(root, Test); err != nil {
		t.Errorf("test split: %v", err)
	}
}
