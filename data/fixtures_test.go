package data

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// Fixtures in the real on-disk formats, built small.

func md5Hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// idxImages encodes n 28×28 images whose pixel (i, y, x) is (i+y*28+x)%256.
func idxImages(magic uint32, n int) []byte {
	var buf bytes.Buffer
	binary.Write(&buf, binary.BigEndian, []uint32{magic, uint32(n), 28, 28})
	for i := 0; i < n; i++ {
		for p := 0; p < 28*28; p++ {
			buf.WriteByte(byte(i + p))
		}
	}
	return buf.Bytes()
}

// idxLabels encodes n labels i%10.
func idxLabels(magic uint32, n int) []byte {
	var buf bytes.Buffer
	binary.Write(&buf, binary.BigEndian, []uint32{magic, uint32(n)})
	for i := 0; i < n; i++ {
		buf.WriteByte(byte(i % 10))
	}
	return buf.Bytes()
}

// writeMNIST writes the four idx files (gzipped or raw) with nTrain and
// nTest examples and returns their MD5s by file name.
func writeMNIST(t *testing.T, dir string, nTrain, nTest int, gzipped bool) map[string]string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sums := map[string]string{}
	for name, b := range map[string][]byte{
		"train-images-idx3-ubyte": idxImages(idxImagesMagic, nTrain),
		"train-labels-idx1-ubyte": idxLabels(idxLabelsMagic, nTrain),
		"t10k-images-idx3-ubyte":  idxImages(idxImagesMagic, nTest),
		"t10k-labels-idx1-ubyte":  idxLabels(idxLabelsMagic, nTest),
	} {
		if gzipped {
			name, b = name+".gz", gz(t, b)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		sums[name] = md5Hex(b)
	}
	return sums
}

// smallCIFAR makes batch files hold n records for the test.
func smallCIFAR(t *testing.T, n int) {
	old := cifarPerFile
	cifarPerFile = n
	t.Cleanup(func() { cifarPerFile = old })
}

// cifarBatch encodes the records of batch file k: record i has label
// (k+i)%10 and pixel p = (k*7 + i*3 + p) % 256.
func cifarBatch(k int) []byte {
	out := make([]byte, 0, cifarPerFile*cifarRecord)
	for i := 0; i < cifarPerFile; i++ {
		out = append(out, byte((k+i)%10))
		for p := 0; p < 3072; p++ {
			out = append(out, byte(k*7+i*3+p))
		}
	}
	return out
}

var cifarFixtureNames = []string{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"}

// cifarFiles returns the six batch files by name.
func cifarFixture() map[string][]byte {
	out := map[string][]byte{}
	for k, name := range cifarFixtureNames {
		out[name] = cifarBatch(k)
	}
	return out
}

// writeCIFAR writes the batch files into dir/cifar-10-batches-bin and
// returns their MD5s.
func writeCIFAR(t *testing.T, root string) map[string]string {
	t.Helper()
	dir := filepath.Join(root, cifarBatchesDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sums := map[string]string{}
	for name, b := range cifarFixture() {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		sums[name] = md5Hex(b)
	}
	return sums
}

// cifarTarball packs the batch files as cifar-10-binary.tar.gz does.
func cifarTarball(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: cifarBatchesDir + "/", Typeflag: tar.TypeDir, Mode: 0o755})
	files := cifarFixture()
	for _, name := range append([]string{"batches.meta.txt"}, cifarFixtureNames...) {
		b := files[name]
		if name == "batches.meta.txt" {
			b = []byte("airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n")
		}
		if err := tw.WriteHeader(&tar.Header{Name: cifarBatchesDir + "/" + name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(b))}); err != nil {
			t.Fatal(err)
		}
		tw.Write(b)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	return buf.Bytes()
}

// celebaJPEG encodes a 178×218 image with random blocks (seeded).
func celebaJPEG(t *testing.T, seed uint64) []byte {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	img := image.NewRGBA(image.Rect(0, 0, 178, 218))
	for by := 0; by < 218; by += 16 {
		for bx := 0; bx < 178; bx += 16 {
			c := color.RGBA{uint8(r.IntN(256)), uint8(r.IntN(256)), uint8(r.IntN(256)), 255}
			for y := by; y < min(by+16, 218); y++ {
				for x := bx; x < min(bx+16, 178); x++ {
					img.Set(x, y, c)
				}
			}
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// celebaFixture is nImages JPEGs and a partition file assigning image i
// to split i%3 (0 train, 1 valid, 2 test).
type celebaFixture struct {
	names     []string
	jpegs     map[string][]byte
	partition []byte
}

func newCelebAFixture(t *testing.T, n int) *celebaFixture {
	f := &celebaFixture{jpegs: map[string][]byte{}}
	var part bytes.Buffer
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("%06d.jpg", i)
		f.names = append(f.names, name)
		f.jpegs[name] = celebaJPEG(t, uint64(i))
		fmt.Fprintf(&part, "%s %d\n", name, (i-1)%3)
	}
	f.partition = part.Bytes()
	return f
}

// writeFolder lays the fixture out as img_align_celeba/ + partition file.
func (f *celebaFixture) writeFolder(t *testing.T, dir string) {
	t.Helper()
	img := filepath.Join(dir, CelebAFolder)
	if err := os.MkdirAll(img, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range f.jpegs {
		if err := os.WriteFile(filepath.Join(img, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, CelebAPartition), f.partition, 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeZip lays the fixture out as img_align_celeba.zip (entries under
// img_align_celeba/, as distributed) + partition file.
func (f *celebaFixture) writeZip(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	zw.Create(CelebAFolder + "/")
	for _, name := range f.names {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: CelebAFolder + "/" + name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(f.jpegs[name])
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, CelebAZip), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, CelebAPartition), f.partition, 0o644); err != nil {
		t.Fatal(err)
	}
}

// mustContain fails unless err's message contains every part.
func mustContain(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !bytes.Contains([]byte(err.Error()), []byte(p)) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}
