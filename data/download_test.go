package data

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// fileServer serves files by base name, except under /missing/, and
// counts requests.
func fileServer(t *testing.T, files map[string][]byte) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		b, ok := files[filepath.Base(r.URL.Path)]
		if !ok || strings.HasPrefix(r.URL.Path, "/missing/") {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func TestDownloadCIFAR10(t *testing.T) {
	smallCIFAR(t, 3)
	tarball := cifarTarball(t)
	srv, hits := fileServer(t, map[string][]byte{"cifar-10-binary.tar.gz": tarball})
	root := t.TempDir()
	var progress bytes.Buffer
	opt := DownloadOptions{
		Mirrors:  []string{srv.URL + "/missing/", srv.URL + "/kriz/"}, // the first 404s
		MD5:      map[string]string{"cifar-10-binary.tar.gz": md5Hex(tarball)},
		Progress: &progress,
	}
	if err := Download(context.Background(), "cifar10", root, opt); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(progress.String(), "404") || !strings.Contains(progress.String(), "cifar-10-binary.tar.gz") {
		t.Errorf("progress output lacks the 404 and the bar:\n%s", progress.String())
	}
	m, err := LoadCIFAR10(root, Test)
	if err != nil {
		t.Fatal(err)
	}
	if m.N != 3 {
		t.Errorf("%d test images, want 3", m.N)
	}
	if _, err := os.Stat(filepath.Join(root, "cifar10", "cifar-10-binary.tar.gz.part")); !os.IsNotExist(err) {
		t.Error("the .part file was left behind")
	}
	// Verify: the tarball against the given MD5, the .bin files against the
	// MD5SUMS written at extraction, and their format.
	checks, err := Verify("cifar10", root, VerifyOptions{MD5: opt.MD5})
	if err != nil {
		t.Fatal(err)
	}
	if len(checks) != 1+6*2 {
		t.Errorf("%d checks, want 13: %v", len(checks), checks)
	}
	// A second download finds the file and fetches nothing.
	before := hits.Load()
	if err := Download(context.Background(), "cifar10", root, opt); err != nil {
		t.Fatal(err)
	}
	if hits.Load() != before {
		t.Errorf("a verified file was fetched again")
	}
}

func TestDownloadBadMD5(t *testing.T) {
	srv, _ := fileServer(t, map[string][]byte{"cifar-10-binary.tar.gz": []byte("not the archive")})
	root := t.TempDir()
	err := Download(context.Background(), "cifar10", root, DownloadOptions{Mirrors: []string{srv.URL}})
	mustContain(t, err, "cifar-10-binary.tar.gz", "want c32a1d4ab5d03f1284b67883e8d87530", "corrupt")
	entries, _ := os.ReadDir(filepath.Join(root, "cifar10"))
	if len(entries) != 0 {
		t.Errorf("a corrupt download left %v", entries)
	}
	if err := Download(context.Background(), "celeba", root, DownloadOptions{}); err == nil || !strings.Contains(err.Error(), "-from") {
		t.Errorf("celeba download: %v, want the -from hint", err)
	}
	if err := Download(context.Background(), "imagenet", root, DownloadOptions{}); err == nil {
		t.Error("unknown dataset accepted")
	}
}

func TestDownloadMNIST(t *testing.T) {
	src := t.TempDir()
	sums := writeMNIST(t, src, 6, 4, true)
	files := map[string][]byte{}
	for name := range sums {
		files[name], _ = os.ReadFile(filepath.Join(src, name))
	}
	srv, _ := fileServer(t, files)
	root := t.TempDir()
	if err := Download(context.Background(), "mnist", root, DownloadOptions{Mirrors: []string{srv.URL}, MD5: sums}); err != nil {
		t.Fatal(err)
	}
	m, err := LoadMNIST(root, Train, MNISTOptions{})
	if err != nil || m.N != 6 {
		t.Fatalf("loaded %v, %v; want the 6 downloaded images", m, err)
	}
}

// One flipped byte anywhere is caught: in a pixel (only the MD5 sees it)
// and in a label (the format check sees it too).
func TestVerifyCatchesOneByte(t *testing.T) {
	smallCIFAR(t, 3)
	root := t.TempDir()
	sums := writeCIFAR(t, root)
	if _, err := Verify("cifar10", root, VerifyOptions{MD5: sums}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, cifarBatchesDir, "data_batch_4.bin")
	b, _ := os.ReadFile(p)
	b[5000] ^= 1
	os.WriteFile(p, b, 0o644)
	_, err := Verify("cifar10", root, VerifyOptions{MD5: sums})
	mustContain(t, err, "1 of 12 checks failed", "data_batch_4.bin", "want "+sums["data_batch_4.bin"])
	if !errors.Is(err, ErrCorrupt) && !strings.Contains(err.Error(), "MD5") {
		t.Errorf("%v", err)
	}

	mroot := t.TempDir()
	msums := writeMNIST(t, filepath.Join(mroot, "mnist"), 5, 5, true)
	if _, err := Verify("mnist", mroot, VerifyOptions{MD5: msums}); err != nil {
		t.Fatal(err)
	}
	p = filepath.Join(mroot, "mnist", "t10k-images-idx3-ubyte.gz")
	b, _ = os.ReadFile(p)
	b[len(b)/2] ^= 0x10
	os.WriteFile(p, b, 0o644)
	_, err = Verify("mnist", mroot, VerifyOptions{MD5: msums})
	mustContain(t, err, "t10k-images-idx3-ubyte.gz", "want "+msums["t10k-images-idx3-ubyte.gz"])
}

func TestExtractRejectsEscapingPaths(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "../evil.txt", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644})
	tw.Write([]byte("x"))
	tw.Close()
	zw.Close()
	dir := t.TempDir()
	p := filepath.Join(dir, "a.tar.gz")
	os.WriteFile(p, buf.Bytes(), 0o644)
	err := ExtractTarGz(p, filepath.Join(dir, "out"))
	mustContain(t, err, "../evil.txt", "outside")
	if _, err := os.Stat(filepath.Join(dir, "evil.txt")); !os.IsNotExist(err) {
		t.Error("the entry escaped")
	}
}
