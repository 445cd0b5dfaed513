package data

import (
	"path/filepath"
	"testing"
)

func TestLoadImagesByName(t *testing.T) {
	smallCIFAR(t, 2)
	root := t.TempDir()
	writeCIFAR(t, filepath.Join(root, "cifar10"))
	writeMNIST(t, filepath.Join(root, "mnist"), 3, 2, true)
	newCelebAFixture(t, 3).writeZip(t, filepath.Join(root, "celeba"))
	for _, tc := range []struct {
		name          string
		size, ch, n   int
		split         Split
		wantErrSubstr string
	}{
		{"cifar10", 32, 3, 10, Train, ""},
		{"mnist", 32, 3, 2, Test, ""},
		{"celeba", 16, 3, 1, Valid, ""},
		{"cifar10", 64, 3, 0, Train, "3×32×32, not 3×64×64"},
		{"mnist", 30, 1, 0, Train, "28 or 32"},
		{"celeba", 64, 1, 0, Train, "3 channels"},
		{"svhn", 32, 3, 0, Train, `unknown image dataset "svhn"`},
	} {
		m, err := LoadImages(tc.name, root, tc.split, tc.size, tc.ch, nil)
		if tc.wantErrSubstr != "" {
			mustContain(t, err, tc.wantErrSubstr)
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if m.N != tc.n || m.C != tc.ch || m.H != tc.size || m.W != tc.size {
			t.Errorf("%s: %d×%d×%d×%d, want %d×%d×%d×%d", tc.name, m.N, m.C, m.H, m.W, tc.n, tc.ch, tc.size, tc.size)
		}
	}
}
