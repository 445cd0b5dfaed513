package classifier

import (
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/mollify/mollify/data"
	"github.com/mollify/mollify/fid"
)

// mnistSets loads MNIST (from the GoMNIST module unless ./datasets has it).
func mnistSets(t testing.TB) (train, test *data.Images) {
	t.Helper()
	var err error
	if train, err = data.LoadMNIST("", data.Train, data.MNISTOptions{}); err != nil {
		t.Skipf("MNIST: %v", err)
	}
	if test, err = data.LoadMNIST("", data.Test, data.MNISTOptions{}); err != nil {
		t.Skipf("MNIST: %v", err)
	}
	return train, test
}

func firstN(ds data.Dataset, lo, n int) data.Subset {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = lo + i
	}
	return data.Subset{Data: ds, Indices: idx}
}

// A classifier trained briefly on 4000 digits, shared by the tests.
var (
	smallClassifier     *Net
	smallClassifierErr  error
	smallClassifierOnce sync.Once
)

func trainedClassifier(t *testing.T) *Net {
	t.Helper()
	train, test := mnistSets(t)
	smallClassifierOnce.Do(func() {
		smallClassifier, smallClassifierErr = Train(firstN(train, 0, 4000), firstN(test, 0, 1000),
			Options{Device: gotch.CPU, Epochs: 1, BatchSize: 32, LR: 2e-3, Seed: 1})
	})
	if smallClassifierErr != nil {
		t.Fatal(smallClassifierErr)
	}
	return smallClassifier
}

// TestClassifierLearns: a short training run classifies held-out digits
// well, and survives Save and Load.
func TestClassifierLearns(t *testing.T) {
	c := trainedClassifier(t)
	if c.Accuracy < 0.9 {
		t.Fatalf("test accuracy %.3f after one epoch on 4000 digits, want ≥ 0.9", c.Accuracy)
	}
	t.Logf("accuracy %.3f", c.Accuracy)
	path := filepath.Join(t.TempDir(), "c.safetensors")
	if err := c.Save(path); err != nil {
		t.Fatal(err)
	}
	d, err := Load(path, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	_, test := mnistSets(t)
	acc, err := d.TestAccuracy(firstN(test, 0, 1000))
	if err != nil || acc != c.Accuracy || d.Accuracy != c.Accuracy {
		t.Errorf("reloaded: accuracy %v (stored %v, %v), want %v", acc, d.Accuracy, err, c.Accuracy)
	}
}

// TestFCD: the Fréchet classifier distance between two halves of the test
// set is small next to real digits vs. digits with their rows reversed
// (upside down), and it does not depend on the 28/32 padding or on grey vs.
// RGB input.
func TestFCD(t *testing.T) {
	c := trainedClassifier(t)
	_, test := mnistSets(t)
	statsOf := func(ds data.Dataset) *fid.Stats {
		s, err := fid.DatasetStats(c, ds, 250, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := firstN(test, 0, 1000), firstN(test, 1000, 1000)
	flipped := flipRows(t, firstN(test, 1000, 1000))
	sa, sb, sf := statsOf(a), statsOf(b), statsOf(flipped)
	same, err := fid.FID(sa, sb)
	if err != nil {
		t.Fatal(err)
	}
	diff, err := fid.FID(sa, sf)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("FCD test[:1000] vs test[1000:2000] %.3f; vs upside-down %.3f", same, diff)
	if !(same > 0) || !(diff > 5*same) {
		t.Errorf("FCD same %v, upside-down %v: want 0 < same and upside-down > 5×same", same, diff)
	}
	// Padded 32×32 RGB MNIST (a run config's data) gives the same features.
	padded, err := data.LoadMNIST("", data.Test, data.MNISTOptions{Size: 32, Channels: 3})
	if err != nil {
		t.Fatal(err)
	}
	sp := statsOf(firstN(padded, 0, 1000))
	if d, err := fid.FID(sa, sp); err != nil || d > 1e-6*same {
		t.Errorf("FCD of the same digits, 28×28 grey vs 32×32 RGB: %v (%v)", d, err)
	}
}

// flipRows returns the images upside down.
func flipRows(t *testing.T, ds data.Dataset) *data.Images {
	n := ds.Len()
	c, h, w := ds.Shape()
	pix := make([]uint8, 0, n*c*h*w)
	for i := 0; i < n; i++ {
		p, _ := ds.Example(i)
		for ch := 0; ch < c; ch++ {
			for y := h - 1; y >= 0; y-- {
				pix = append(pix, p[(ch*h+y)*w:(ch*h+y+1)*w]...)
			}
		}
	}
	im, err := data.NewImages("flipped", n, c, h, w, pix, nil)
	if err != nil {
		t.Fatal(err)
	}
	return im
}

func TestClassifierErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(Path(dir), gotch.CPU); !errors.Is(err, ErrNotTrained) || !strings.Contains(err.Error(), "train-classifier") {
		t.Errorf("missing classifier: %v", err)
	}
	train, _ := mnistSets(t)
	padded, err := data.LoadMNIST("", data.Test, data.MNISTOptions{Size: 32})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Train(firstN(train, 0, 10), padded, Options{Device: gotch.CPU}); err == nil || !strings.Contains(err.Error(), "1×28×28") {
		t.Errorf("32×32 test set: %v", err)
	}
	c := trainedClassifier(t)
	sc := ts.NewScope()
	defer sc.Close()
	if _, err := c.Features(ts.MustZeros([]int64{2, 3, 30, 30}, gotch.Float, gotch.CPU)); err == nil || !strings.Contains(err.Error(), "28×28") {
		t.Errorf("30×30 input: %v", err)
	}
	if _, err := fid.DatasetStats(c, firstN(train, 0, 1), 64, nil); !errors.Is(err, fid.ErrTooFewImages) {
		t.Errorf("1 image: %v", err)
	}
}
