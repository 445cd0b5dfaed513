package main

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"gonum.org/v1/gonum/mat"

	"github.com/mollify/mollify/data"
	"github.com/mollify/mollify/fid"
	"github.com/mollify/mollify/fid/classifier"
	"github.com/mollify/mollify/fid/inception"
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

// withMeanNet opens meanNet in place of Inception (not for --fcd).
func withMeanNet(open func(options) (fid.FeatureNet, func(), error)) func(options) (fid.FeatureNet, func(), error) {
	return func(o options) (fid.FeatureNet, func(), error) {
		if o.fcd {
			return open(o)
		}
		return meanNet{}, func() {}, nil
	}
}

func fakeNet(t *testing.T) {
	t.Helper()
	old := netOpener
	netOpener = withMeanNet(old)
	t.Cleanup(func() { netOpener = old })
}

func runCmd(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// The test binary is the fid command when mainEnv is 1 (with meanNet for
// Inception when meanNetEnv is 1, as the weights are not here): runBinary
// runs it as a user types the command, in its own process.
const (
	mainEnv    = "MOLLIFY_FID_MAIN"
	meanNetEnv = "MOLLIFY_FID_MEAN_NET"
)

func TestMain(m *testing.M) {
	if os.Getenv(mainEnv) == "1" {
		if os.Getenv(meanNetEnv) == "1" {
			netOpener = withMeanNet(netOpener)
		}
		main()
		return
	}
	os.Exit(m.Run())
}

// runBinary runs `fid args...` as its own process and returns its exit
// status, stdout and stderr; meanNet stands in for Inception if asked.
func runBinary(t *testing.T, meanNet bool, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), mainEnv+"=1", meanNetEnv+"="+map[bool]string{true: "1", false: "0"}[meanNet])
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("running the command: %v", err)
	}
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

// saveDiagonal writes d-dimensional statistics mu·1, v·I with fid's own
// writer.
func saveDiagonal(t *testing.T, path string, d int, mu, v float64) string {
	t.Helper()
	s := &fid.Stats{Mu: make([]float64, d), Sigma: mat.NewDense(d, d, nil)}
	for i := range s.Mu {
		s.Mu[i] = mu
		s.Sigma.Set(i, i, v)
	}
	if err := fid.SaveStats(path, s); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestNPZDims: two statistics files need no weights and are compared at
// their own dimension whatever --dims says, as by pytorch-fid; they must
// agree with each other. An .npz against a folder must match the dimension
// the folder is featurised at (--dims, default 2048).
func TestNPZDims(t *testing.T) {
	t.Setenv(inception.WeightsEnv, "")
	dir := t.TempDir()
	a64 := saveDiagonal(t, filepath.Join(dir, "a64.npz"), 64, 0, 1)
	b64 := saveDiagonal(t, filepath.Join(dir, "b64.npz"), 64, 0.5, 4)
	c2048 := saveDiagonal(t, filepath.Join(dir, "c2048.npz"), 2048, 0, 1)
	imgs := digits(t, 0, 70)
	for _, c := range []struct {
		name    string
		meanNet bool
		args    []string
		code    int
		fid     float64 // when code is 0
		want    []string
	}{
		// Closed form: 64·0.25 + 64·1 + 64·4 − 2·64·√4 = 80.
		{"two 64-d files", false, []string{a64, b64}, 0, 80, nil},
		{"two 64-d files, --dims 2048", false, []string{a64, b64, "--dims", "2048"}, 0, 80, nil},
		{"two 64-d files, --dims 64", false, []string{"--dims", "64", a64, b64}, 0, 80, nil},
		{"64-d and 2048-d files", false, []string{a64, c2048}, 1, 0, []string{"a64.npz holds 64-d", "c2048.npz 2048-d"}},
		{"64-d and 2048-d files, --dims 64", false, []string{c2048, a64, "--dims", "64"}, 1, 0, []string{"c2048.npz holds 2048-d", "a64.npz 64-d"}},
		{"folder at 2048-d against a 64-d file", true, []string{imgs, a64}, 1, 0,
			[]string{"a64.npz holds 64-d", imgs, "featurised at 2048-d", "--dims 64"}},
		{"folder at 64-d against a 2048-d file", true, []string{c2048, imgs, "--dims", "64"}, 1, 0,
			[]string{"c2048.npz holds 2048-d", imgs, "featurised at 64-d", "--dims 2048"}},
		{"folder at 64-d against a 64-d file", true, []string{imgs, a64, "--dims", "64", "-quiet"}, 0, -1, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, errs := runBinary(t, c.meanNet, c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d (stdout %q, stderr %q)", code, c.code, out, errs)
			}
			if code == 0 {
				got := fidValue(t, out, "FID")
				if c.fid >= 0 && math.Abs(got-c.fid) > 1e-9 {
					t.Errorf("FID %v, want %v", got, c.fid)
				}
				if !(got > 0) {
					t.Errorf("FID %v", got)
				}
				if errs != "" {
					t.Errorf("stderr %q", errs)
				}
				return
			}
			for _, w := range c.want {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr %q does not mention %q", errs, w)
				}
			}
			if strings.Count(errs, "\n") != 1 || strings.Contains(errs, "panic") {
				t.Errorf("stderr should be one line: %q", errs)
			}
		})
	}
}

// TestFewImages: a folder of 2..dims images is computed with a warning
// that its covariance is singular, as pytorch-fid computes it (--save-stats
// writes the file); --strict makes that an error; fewer than 2 images are
// always an error that says to add images.
func TestFewImages(t *testing.T) {
	t.Setenv(inception.WeightsEnv, "")
	five, one, imgs, more := digits(t, 0, 5), digits(t, 0, 1), digits(t, 10, 70), digits(t, 80, 70)
	warning := []string{"fid: warning:", five, "5 images for 64-d", "singular", "unreliable", "rank ≤ 4", "--strict"}
	for _, c := range []struct {
		name string
		args []string
		code int
		out  string   // a file the command writes when it succeeds
		want []string // in stderr
	}{
		{"save-stats, 5 images at 64-d", []string{"--save-stats", five, "OUT", "--dims", "64", "-quiet"}, 0, "OUT.npz", warning},
		{"save-stats, 5 images at 64-d, --strict", []string{"--save-stats", "--strict", five, "OUT", "--dims", "64"}, 1, "",
			[]string{five, "5 images for 64-d", "singular", "--strict makes this an error", "use more than 64 images"}},
		{"save-stats, 1 image", []string{"--save-stats", one, "OUT", "--dims", "64"}, 1, "",
			[]string{one, "1 image", "at least 2 images", "add images"}},
		{"save-stats, 1 image, --strict", []string{"-strict", "--save-stats", one, "OUT", "--dims", "64"}, 1, "",
			[]string{"1 image", "at least 2 images"}},
		{"compare, 5 images at 64-d", []string{five, imgs, "--dims", "64", "-quiet"}, 0, "", warning},
		{"compare, 5 images at 64-d, --strict", []string{imgs, five, "--dims", "64", "--strict"}, 1, "",
			[]string{"5 images for 64-d", "singular", "--strict"}},
		{"compare, 1 image", []string{imgs, one, "--dims", "64"}, 1, "", []string{"1 image", "at least 2 images"}},
		{"compare, 70 images at 64-d, --strict", []string{imgs, more, "--dims", "64", "--strict", "-quiet"}, 0, "", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			outDir := t.TempDir()
			args := append([]string(nil), c.args...)
			for i, a := range args {
				if a == "OUT" {
					args[i] = filepath.Join(outDir, "out")
				}
			}
			code, out, errs := runBinary(t, true, args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d (stdout %q, stderr %q)", code, c.code, out, errs)
			}
			for _, w := range c.want {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr %q does not mention %q", errs, w)
				}
			}
			if c.want == nil && errs != "" {
				t.Errorf("stderr %q, want none", errs)
			}
			written, _ := filepath.Glob(filepath.Join(outDir, "*"))
			switch {
			case c.code != 0:
				if strings.Count(errs, "\n") != 1 || strings.Contains(errs, "panic") {
					t.Errorf("stderr should be one line: %q", errs)
				}
				if len(written) > 0 {
					t.Errorf("a failed command wrote %v", written)
				}
			case c.out != "":
				s, err := fid.LoadStats(filepath.Join(outDir, "out.npz"))
				if err != nil {
					t.Fatalf("stdout %q: %v", out, err)
				}
				if rows, cols := s.Sigma.Dims(); s.Dim() != 64 || rows != 64 || cols != 64 {
					t.Errorf("saved %d-d statistics, sigma %d×%d", s.Dim(), rows, cols)
				}
			default:
				if v := fidValue(t, out, "FID"); !(v > 0) || math.IsInf(v, 0) {
					t.Errorf("FID %v", v)
				}
			}
		})
	}
}

// TestClearErrors: each bad input, typed as a user would, gives one clear
// line and exit status 1 (2 for usage errors), never a panic.
func TestClearErrors(t *testing.T) {
	t.Setenv(inception.WeightsEnv, "")
	imgs := digits(t, 0, 130)
	empty := t.TempDir()
	corrupt := filepath.Join(t.TempDir(), "bad.npz")
	if err := os.WriteFile(corrupt, []byte("PK\x03\x04 this is no archive"), 0o644); err != nil {
		t.Fatal(err)
	}
	wrongShape, err := filepath.Abs("../../fid/inception/testdata/inception_slim_zip.pth")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"missing weights", []string{imgs, imgs, "--dims", "64"}, 1, []string{"weights", "fid_weights", inception.WeightsURL, inception.WeightsEnv}},
		{"weights file not there", []string{"-weights", filepath.Join(empty, "pt.pth"), imgs, imgs, "--dims", "64"}, 1, []string{"pt.pth", "fid_weights"}},
		{"wrong-shape weights", []string{"-weights", wrongShape, imgs, imgs, "--dims", "64", "--device", "cpu"}, 1, []string{"Conv2d_1a_3x3.conv.weight has shape [2 3 3 3]", "[32 3 3 3]"}},
		{"empty folder", []string{empty, imgs}, 1, []string{empty, "no images"}},
		{"fewer images than default dims, --strict", []string{imgs, imgs, "--strict"}, 1, []string{"130 images for 2048-d", "singular", "--strict"}},
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
			code, out, errs := runBinary(t, false, c.args...)
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
	if _, err := os.Stat(classifier.Path(root)); err != nil {
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
	if os.Getenv(inception.WeightsEnv) == "" {
		t.Skip("set " + inception.WeightsEnv + " to pt_inception-2015-12-05-6726825d.pth to run")
	}
	a, b := digits(t, 0, 100), digits(t, 100, 100)
	code, out, errs := runCmd("--dims", "64", "--device", "cpu", "-quiet", a, b)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	t.Logf("FID-64 of two sets of 100 digits: %s", out)
}
