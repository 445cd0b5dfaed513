package main

import (
	"bytes"
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"gonum.org/v1/gonum/mat"

	"github.com/mollify/mollify/data"
	"github.com/mollify/mollify/fid"
)

// meanNet's 64 features are the means of the first channel over an 8×8
// grid: a stand-in for Inception's 64-d block that keeps the command's
// tests fast.
type meanNet struct{}

func (meanNet) Features(x *ts.Tensor) (*ts.Tensor, error) {
	return x.MustNarrow(1, 0, 1, false).MustAdaptiveAvgPool2d([]int64{8, 8}, true).MustFlatten(1, 3, true), nil
}
func (meanNet) Dim() int             { return 64 }
func (meanNet) Device() gotch.Device { return gotch.CPU }

func fakeNet(t *testing.T) {
	t.Helper()
	old := netOpener
	netOpener = func(o options) (fid.FeatureNet, func(), error) {
		if o.fcd {
			return old(o)
		}
		return meanNet{}, func() {}, nil
	}
	t.Cleanup(func() { netOpener = old })
}

func runCmd(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// digits writes MNIST test digits lo..lo+n-1 as grey PNGs into a new folder.
func digits(t *testing.T, lo, n int) string {
	t.Helper()
	ds, err := data.LoadMNIST("", data.Test, data.MNISTOptions{})
	if err != nil {
		t.Skipf("MNIST: %v", err)
	}
	dir := t.TempDir()
	for i := lo; i < lo+n; i++ {
		p, _ := ds.Example(i)
		img := &image.Gray{Pix: p, Stride: 28, Rect: image.Rect(0, 0, 28, 28)}
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%05d.png", i)))
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	return dir
}

func fidValue(t *testing.T, stdout, label string) float64 {
	t.Helper()
	v, ok := strings.CutPrefix(strings.TrimSpace(stdout), label+":  ")
	if !ok {
		t.Fatalf("output %q does not start with %q", stdout, label+":  ")
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestFoldersAndStats: two folders, flags after the paths; --save-stats
// then the saved .npz in place of the folder gives the same number.
func TestFoldersAndStats(t *testing.T) {
	fakeNet(t)
	a, b := digits(t, 0, 70), digits(t, 70, 75)
	code, out, errs := runCmd(a, b, "--batch-size", "8", "--dims", "64")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	want := fidValue(t, out, "FID")
	if !(want > 0) {
		t.Fatalf("FID %v", want)
	}
	npz := filepath.Join(t.TempDir(), "a")
	if code, out, errs := runCmd("--save-stats", a, npz, "-quiet", "--dims", "64"); code != 0 || !strings.Contains(out, "a.npz") {
		t.Fatalf("save-stats: exit %d %s %s", code, out, errs)
	}
	code, out, errs = runCmd(npz+".npz", b, "-batch-size=7", "-dims=64")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if got := fidValue(t, out, "FID"); math.Abs(got-want) > 1e-9*want {
		t.Errorf("FID with saved stats %v, from folders %v", got, want)
	}
	// Refuses to overwrite.
	if code, _, errs := runCmd("--save-stats", a, npz+".npz"); code != 1 || !strings.Contains(errs, "existing output file") {
		t.Errorf("overwrite: exit %d %s", code, errs)
	}
}

// TestNPZOnly: two statistics files need no weights at all.
func TestNPZOnly(t *testing.T) {
	t.Setenv(fid.WeightsEnv, "")
	dir := t.TempDir()
	const d = 64
	stats := func(mu, v float64) *fid.Stats {
		s := &fid.Stats{Mu: make([]float64, d), Sigma: mat.NewDense(d, d, nil)}
		for i := range s.Mu {
			s.Mu[i] = mu
			s.Sigma.Set(i, i, v)
		}
		return s
	}
	p1, p2 := filepath.Join(dir, "1.npz"), filepath.Join(dir, "2.npz")
	if err := fid.SaveStats(p1, stats(0, 1)); err != nil {
		t.Fatal(err)
	}
	if err := fid.SaveStats(p2, stats(0.5, 4)); err != nil {
		t.Fatal(err)
	}
	// Closed form: 64·0.25 + 64·1 + 64·4 − 2·64·√4 = 80.
	code, out, errs := runCmd("--dims", "64", p1, p2)
	if code != 0 || math.Abs(fidValue(t, out, "FID")-80) > 1e-9 {
		t.Errorf("exit %d %q %q, want FID 80", code, out, errs)
	}
	if code, _, errs := runCmd(p1, p2); code != 1 || !strings.Contains(errs, "64-d statistics") || !strings.Contains(errs, "2048-d") {
		t.Errorf("dims mismatch: exit %d %q", code, errs)
	}
}

// TestClearErrors: each bad input gives one clear line and exit status 1
// (2 for usage errors), never a panic.
func TestClearErrors(t *testing.T) {
	t.Setenv(fid.WeightsEnv, "")
	imgs := digits(t, 0, 130)
	empty := t.TempDir()
	few := digits(t, 0, 5)
	corrupt := filepath.Join(t.TempDir(), "bad.npz")
	if err := os.WriteFile(corrupt, []byte("PK\x03\x04 this is no archive"), 0o644); err != nil {
		t.Fatal(err)
	}
	wrongShape, err := filepath.Abs("../../fid/testdata/inception_slim_zip.pth")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"missing weights", []string{imgs, imgs, "--dims", "64"}, 1, []string{"weights", "fid_weights", fid.WeightsURL, fid.WeightsEnv}},
		{"weights file not there", []string{"-weights", filepath.Join(empty, "pt.pth"), imgs, imgs, "--dims", "64"}, 1, []string{"pt.pth", "fid_weights"}},
		{"wrong-shape weights", []string{"-weights", wrongShape, imgs, imgs, "--dims", "64", "--device", "cpu"}, 1, []string{"Conv2d_1a_3x3.conv.weight has shape [2 3 3 3]", "[32 3 3 3]"}},
		{"empty folder", []string{empty, imgs}, 1, []string{empty, "no images"}},
		{"fewer images than dims", []string{few, imgs, "--dims", "64"}, 1, []string{"5 images", "64-d", "Imaginary component", "singular"}},
		{"fewer images than default dims", []string{imgs, imgs}, 1, []string{"130 images", "2048-d"}},
		{"corrupt npz", []string{imgs, corrupt}, 1, []string{"bad.npz", "zip"}},
		{"missing path", []string{filepath.Join(empty, "nope"), imgs}, 1, []string{"invalid path", "nope"}},
		{"file that is not npz", []string{wrongShape, imgs}, 1, []string{"inception_slim_zip.pth", "neither a folder of images nor an .npz"}},
		{"bad dims", []string{imgs, imgs, "--dims", "100"}, 1, []string{"--dims", "64 192 768 2048"}},
		{"bad method", []string{imgs, imgs, "--method", "exact"}, 1, []string{"symmetric or scipy"}},
		{"fcd with dims", []string{imgs, imgs, "--fcd", "--dims", "64"}, 1, []string{"--dims does not apply"}},
		{"fcd without classifier", []string{imgs, imgs, "--fcd", "--root", empty}, 1, []string{"train-classifier"}},
		{"one path", []string{imgs}, 2, []string{"two paths"}},
		{"unknown flag", []string{"--frobnicate", imgs, imgs}, 2, []string{"frobnicate"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, errs := runCmd(c.args...)
			if code != c.code {
				t.Errorf("exit %d, want %d (stdout %q)", code, c.code, out)
			}
			for _, w := range c.want {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr %q does not mention %q", errs, w)
				}
			}
			if strings.Contains(errs, "panic") || strings.Contains(errs, "fid: fid:") {
				t.Errorf("stderr %q", errs)
			}
		})
	}
}

// TestFCD: train-classifier caches a (quickly trained) classifier under
// the root; --fcd then labels its distance FCD, small between two sets of
// real digits and larger against upside-down ones.
func TestFCD(t *testing.T) {
	root := t.TempDir()
	code, out, errs := runCmd("train-classifier", "-root", root, "-limit", "1500", "-epochs", "1", "-device", "cpu")
	if code != 0 || !strings.Contains(out, "test accuracy") {
		t.Fatalf("train-classifier: exit %d %s %s", code, out, errs)
	}
	if _, err := os.Stat(fid.ClassifierPath(root)); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := runCmd("train-classifier", "-root", root); code != 0 || !strings.Contains(out, "already cached") {
		t.Errorf("second train-classifier: exit %d %q", code, out)
	}
	a, b := digits(t, 0, 300), digits(t, 300, 300)
	flipped := t.TempDir()
	entries, _ := os.ReadDir(b)
	for _, e := range entries {
		f, _ := os.Open(filepath.Join(b, e.Name()))
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		g := img.(*image.Gray)
		up := image.NewGray(g.Rect)
		for y := 0; y < 28; y++ {
			copy(up.Pix[y*28:(y+1)*28], g.Pix[(27-y)*28:(28-y)*28])
		}
		o, _ := os.Create(filepath.Join(flipped, e.Name()))
		png.Encode(o, up)
		o.Close()
	}
	fcd := func(p, q string) float64 {
		code, out, errs := runCmd("--fcd", "--root", root, "--device", "cpu", "-quiet", p, q)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		if strings.Contains(out, "FID") {
			t.Errorf("FCD output mentions FID: %q", out)
		}
		return fidValue(t, out, "FCD")
	}
	same, diff := fcd(a, b), fcd(a, flipped)
	t.Logf("FCD real vs real %.3f, real vs upside-down %.3f", same, diff)
	if !(same > 0) || !(diff > 3*same) {
		t.Errorf("FCD real %v, upside-down %v", same, diff)
	}
}

// TestPytorchFIDWeights runs the command on pytorch-fid's real weights when
// MOLLIFY_INCEPTION names them: two disjoint sets of digits are closer to
// each other than to upside-down digits.
func TestPytorchFIDWeights(t *testing.T) {
	if os.Getenv(fid.WeightsEnv) == "" {
		t.Skip("set " + fid.WeightsEnv + " to pt_inception-2015-12-05-6726825d.pth to run")
	}
	a, b := digits(t, 0, 100), digits(t, 100, 100)
	code, out, errs := runCmd("--dims", "64", "--device", "cpu", "-quiet", a, b)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	t.Logf("FID-64 of two sets of 100 digits: %s", out)
}
