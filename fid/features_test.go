package fid

import (
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/mollify/mollify/data"
	"github.com/mollify/mollify/internal/testenv"
)

// pixelNet's features are the 2×2 top-left pixels of each channel, so the
// statistics show exactly what the image pipeline fed the network.
type pixelNet struct{}

func (pixelNet) Features(x *ts.Tensor) (*ts.Tensor, error) {
	if err := CheckImages(x, gotch.CPU); err != nil {
		return nil, err
	}
	return x.MustNarrow(2, 0, 2, false).MustNarrow(3, 0, 2, true).MustFlatten(1, 3, true), nil
}
func (pixelNet) Dim() int             { return 12 }
func (pixelNet) Device() gotch.Device { return gotch.CPU }

// level is a deterministic pixel value for image i, channel c, (y, x).
func level(i, c, y, x int) uint8 { return uint8((i*37 + c*101 + y*7 + x*13 + i*i) % 256) }

func writePNG(t *testing.T, path string, img image.Image) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// folder writes n RGB PNGs (sizes from size(i)), and returns the same
// top-left pixels as a 3×2×2 dataset.
func folder(t *testing.T, dir string, n int, size func(i int) (w, h int)) *data.Images {
	t.Helper()
	var pix []uint8
	for i := 0; i < n; i++ {
		w, h := size(i)
		img := image.NewNRGBA(image.Rect(0, 0, w, h))
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				img.SetNRGBA(x, y, color.NRGBA{level(i, 0, y, x), level(i, 1, y, x), level(i, 2, y, x), uint8(40 + i)})
			}
		}
		writePNG(t, filepath.Join(dir, "img"+string(rune('a'+i/26))+string(rune('a'+i%26))+".png"), img)
		for c := 0; c < 3; c++ {
			for y := 0; y < 2; y++ {
				for x := 0; x < 2; x++ {
					pix = append(pix, level(i, c, y, x))
				}
			}
		}
	}
	ds, err := data.NewImages("top-left", n, 3, 2, 2, pix, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func sameStats(t *testing.T, got, want *Stats) {
	t.Helper()
	if got.Dim() != want.Dim() {
		t.Fatalf("dims %d vs %d", got.Dim(), want.Dim())
	}
	for i := range got.Mu {
		if math.Abs(got.Mu[i]-want.Mu[i]) > 1e-9 {
			t.Fatalf("mu[%d] = %v, want %v", i, got.Mu[i], want.Mu[i])
		}
	}
	g, w := got.Sigma.RawMatrix().Data, want.Sigma.RawMatrix().Data
	for i := range g {
		if math.Abs(g[i]-w[i]) > 1e-9 {
			t.Fatalf("sigma[%d] = %v, want %v", i, g[i], w[i])
		}
	}
}

// TestFolderStats: PNGs of mixed sizes, with alpha (dropped, as PIL's
// convert('RGB') does), in batches that do not divide the count, give the
// statistics of their pixels / 255.
func TestFolderStats(t *testing.T) {
	dir := t.TempDir()
	want := folder(t, dir, 40, func(i int) (int, int) { return 5 + i%3, 4 + i/20 })
	// Not images: ignored, as by pytorch-fid.
	for _, name := range []string{"notes.txt", "UPPER.PNG"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub.png"), 0o755); err != nil {
		t.Fatal(err)
	}
	ref, err := DatasetStats(pixelNet{}, want, 7, nil)
	if err != nil {
		t.Fatal(err)
	}
	var seen []int
	got, err := FolderStats(pixelNet{}, dir, 9, func(done, total int) {
		if total != 40 {
			t.Errorf("progress total %d", total)
		}
		seen = append(seen, done)
	})
	if err != nil {
		t.Fatal(err)
	}
	sameStats(t, got, ref)
	if len(seen) != 5 || seen[4] != 40 {
		t.Errorf("progress %v", seen)
	}
}

// TestGreyImages: a grey PNG is fed as three equal channels.
func TestGreyImages(t *testing.T) {
	dir := t.TempDir()
	for i := 0; i < 13; i++ {
		img := image.NewGray(image.Rect(0, 0, 3, 3))
		for j := range img.Pix {
			img.Pix[j] = level(i, 0, j/3, j%3)
		}
		writePNG(t, filepath.Join(dir, string(rune('a'+i))+".png"), img)
	}
	s, err := FolderStats(pixelNet{}, dir, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	for c := 1; c < 3; c++ {
		for k := 0; k < 4; k++ {
			if s.Mu[c*4+k] != s.Mu[k] {
				t.Fatalf("channel %d mean %v, channel 0 %v", c, s.Mu[c*4+k], s.Mu[k])
			}
		}
	}
	mean := 0.0
	for i := 0; i < 13; i++ {
		mean += float64(float32(level(i, 0, 0, 0)) / 255)
	}
	if math.Abs(s.Mu[0]-mean/13) > 1e-9 {
		t.Errorf("mu[0] %v, want %v", s.Mu[0], mean/13)
	}
}

func TestFolderErrors(t *testing.T) {
	empty := t.TempDir()
	if err := os.WriteFile(filepath.Join(empty, "readme.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	one := t.TempDir()
	folder(t, one, 1, func(int) (int, int) { return 3, 3 })
	bmp := t.TempDir()
	folder(t, bmp, 20, func(int) (int, int) { return 3, 3 })
	if err := os.WriteFile(filepath.Join(bmp, "x.webp"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	corrupt := t.TempDir()
	folder(t, corrupt, 20, func(int) (int, int) { return 3, 3 })
	if err := os.WriteFile(filepath.Join(corrupt, "broken.png"), []byte("\x89PNG\r\n\x1a\nnope"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, dir string
		want      []string
		is        error
	}{
		{"empty", empty, []string{"no images", "*.png"}, nil},
		{"missing", filepath.Join(empty, "nope"), []string{"nope"}, nil},
		{"one image", one, []string{"1 image", "at least 2 images", "more than 12", "12-d"}, ErrTooFewImages},
		{"undecodable format", bmp, []string{"x.webp", "only PNG and JPEG"}, nil},
		{"corrupt image", corrupt, []string{"broken.png"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := FolderStats(pixelNet{}, c.dir, 8, nil)
			assertError(t, err, c.want, c.is)
		})
	}
}

// TestCheckCount: more images than dims pass; 2..dims is the singular
// case (a warning for pytorch-fid's behaviour, an error for strict callers);
// fewer than 2 is always an error, and each message says what to do.
func TestCheckCount(t *testing.T) {
	for _, c := range []struct {
		n, dims int
		is      error
		want    []string
	}{
		{2049, 2048, nil, nil},
		{3, 2, nil, nil},
		{2048, 2048, ErrSingularCovariance, []string{"set has 2048 images for 2048-d", "singular", "unreliable", "rank ≤ 2047", "Imaginary component", "more than 2048 images"}},
		{5, 64, ErrSingularCovariance, []string{"set has 5 images for 64-d", "singular", "rank ≤ 4 < 64", "smaller dims"}},
		{2, 64, ErrSingularCovariance, []string{"rank ≤ 1 < 64"}},
		{1, 64, ErrTooFewImages, []string{"set has 1 image", "at least 2 images", "add images", "more than 64"}},
		{0, 2048, ErrTooFewImages, []string{"set has 0 image", "at least 2 images"}},
		{1, 1, ErrTooFewImages, []string{"at least 2 images"}},
	} {
		err := CheckCount("set", c.n, c.dims)
		if c.is == nil {
			if err != nil {
				t.Errorf("n=%d dims=%d: %v", c.n, c.dims, err)
			}
			continue
		}
		if errors.Is(err, ErrTooFewImages) && errors.Is(err, ErrSingularCovariance) {
			t.Errorf("n=%d dims=%d: %v is both sentinels", c.n, c.dims, err)
		}
		assertError(t, err, c.want, c.is)
	}
}

// TestFewImagesComputed: a folder or dataset of 2..dims images has a
// singular covariance but is computed, as pytorch-fid computes it: the
// statistics are those of the pixels, the covariance has rank n−1, and the
// symmetric FID against a full-rank set is finite.
func TestFewImagesComputed(t *testing.T) {
	fullDir := t.TempDir()
	full, err := DatasetStats(pixelNet{}, folder(t, fullDir, 40, func(int) (int, int) { return 3, 3 }), 8, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{2, 5, 12} {
		dir := t.TempDir()
		want := folder(t, dir, n, func(int) (int, int) { return 3, 3 })
		got, err := FolderStats(pixelNet{}, dir, 4, nil)
		if err != nil {
			t.Fatalf("%d images: %v", n, err)
		}
		ref, err := DatasetStats(pixelNet{}, want, 3, nil)
		if err != nil {
			t.Fatalf("%d images, dataset: %v", n, err)
		}
		sameStats(t, got, ref)
		r, err := FrechetDistance(full, got, nil)
		if err != nil || math.IsNaN(r.Distance) || math.IsInf(r.Distance, 0) {
			t.Fatalf("%d images: FID %v, %v", n, r.Distance, err)
		}
		if r.Rank2 > n-1 {
			t.Errorf("%d images: covariance rank %d, want ≤ %d", n, r.Rank2, n-1)
		}
	}
}

// TestUnitImages: k/255 in float32, grey repeated, as ToTensor and
// convert('RGB') give pytorch-fid.
func TestUnitImages(t *testing.T) {
	sc := ts.NewScope()
	defer sc.Close()
	pix := []uint8{0, 1, 128, 255}
	x, err := UnitImages(pix, []int64{1, 1, 2, 2}, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	got := floats(t, x)
	if len(got) != 12 {
		t.Fatalf("%d values", len(got))
	}
	for i, v := range got {
		if want := float32(pix[i%4]) / 255; v != want {
			t.Errorf("value %d = %v, want %v", i, v, want)
		}
	}
	if _, err := UnitImages(make([]uint8, 8), []int64{1, 2, 2, 2}, gotch.CPU); err == nil || !strings.Contains(err.Error(), "C = 1 or 3") {
		t.Errorf("2 channels: %v", err)
	}
	if _, err := UnitImages(make([]uint8, 5), []int64{1, 1, 2, 2}, gotch.CPU); err == nil {
		t.Error("short pixels: no error")
	}
}

// assertError is testenv.AssertError.
func assertError(t *testing.T, err error, want []string, is error) {
	t.Helper()
	testenv.AssertError(t, err, want, is)
}

func floats(t testing.TB, x *ts.Tensor) []float32 {
	t.Helper()
	b, err := x.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}
