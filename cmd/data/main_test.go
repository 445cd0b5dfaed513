package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// mnistFiles builds the four gzipped idx files of a tiny MNIST.
func mnistFiles(t *testing.T) map[string][]byte {
	idx := func(header []uint32, body []byte) []byte {
		var raw bytes.Buffer
		binary.Write(&raw, binary.BigEndian, header)
		raw.Write(body)
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(raw.Bytes())
		zw.Close()
		return buf.Bytes()
	}
	return map[string][]byte{
		"train-images-idx3-ubyte.gz": idx([]uint32{2051, 3, 28, 28}, make([]byte, 3*784)),
		"train-labels-idx1-ubyte.gz": idx([]uint32{2049, 3}, []byte{1, 2, 3}),
		"t10k-images-idx3-ubyte.gz":  idx([]uint32{2051, 2, 28, 28}, bytes.Repeat([]byte{9}, 2*784)),
		"t10k-labels-idx1-ubyte.gz":  idx([]uint32{2049, 2}, []byte{4, 5}),
	}
}

func runCmd(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestDownloadAndVerifyMNIST(t *testing.T) {
	files := mnistFiles(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[filepath.Base(r.URL.Path)]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	defer srv.Close()
	root := t.TempDir()
	var md5Flags []string
	for name, b := range files {
		s := md5.Sum(b)
		md5Flags = append(md5Flags, "-md5", name+"="+hex.EncodeToString(s[:]))
	}
	// Flags after the dataset name work too.
	args := append([]string{"download", "mnist", "-root", root, "-mirror", srv.URL}, md5Flags...)
	code, _, stderr := runCmd(args...)
	if code != 0 {
		t.Fatalf("download: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "t10k-labels-idx1-ubyte.gz") || !strings.Contains(stderr, "mnist: ready") {
		t.Errorf("no progress output:\n%s", stderr)
	}
	code, stdout, stderr := runCmd(append([]string{"verify", "-root", root, "mnist"}, md5Flags...)...)
	if code != 0 || !strings.Contains(stdout, "mnist: ok") {
		t.Fatalf("verify: exit %d\n%s%s", code, stdout, stderr)
	}
	// One corrupted byte fails verify, naming the file.
	p := filepath.Join(root, "mnist", "train-labels-idx1-ubyte.gz")
	b, _ := os.ReadFile(p)
	b[len(b)/2] ^= 0x01
	os.WriteFile(p, b, 0o644)
	code, _, stderr = runCmd(append([]string{"verify", "-root", root, "mnist"}, md5Flags...)...)
	if code != 1 || !strings.Contains(stderr, "train-labels-idx1-ubyte.gz") || !strings.Contains(stderr, "MD5") {
		t.Errorf("verify after corruption: exit %d\n%s", code, stderr)
	}
	// Without the fixture MD5s the reference ones apply, and all four fail.
	code, _, stderr = runCmd("verify", "-root", root, "mnist")
	if code != 1 || !strings.Contains(stderr, "f68b3c2dcbeaaa9fbdd348bbdeb94873") {
		t.Errorf("verify against the reference MD5s: exit %d\n%s", code, stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage"},
		{[]string{"frobnicate", "mnist"}, 2, `unknown command "frobnicate"`},
		{[]string{"download"}, 2, "name a dataset"},
		{[]string{"verify", "-md5", "nohex", "mnist"}, 2, "want NAME=HEX"},
		{[]string{"download", "celeba"}, 1, "-from PATH"},
		{[]string{"verify", "imagenet"}, 1, `unknown dataset "imagenet"`},
		{[]string{"verify", "cifar10", "-root", "/nonexistent"}, 1, "go run ./cmd/data download cifar10 -root /nonexistent"},
	} {
		code, _, stderr := runCmd(tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit %d and %q", tc.args, code, stderr, tc.code, tc.want)
		}
	}
	// verify all skips what is not installed; MNIST comes from the GoMNIST
	// module when -root has none.
	code, stdout, stderr := runCmd("verify", "all", "-root", t.TempDir())
	if code != 0 || !strings.Contains(stdout, "cifar10: not installed") || !strings.Contains(stdout, "celeba: not installed") {
		t.Errorf("verify all: exit %d\n%s%s", code, stdout, stderr)
	}
}
