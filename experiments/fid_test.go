package experiments

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/data"
	"github.com/mollify/mollify/fid"
	"github.com/mollify/mollify/fid/classifier"
	"github.com/mollify/mollify/fid/inception"
	"github.com/mollify/mollify/models"
	"github.com/mollify/mollify/nn"
	"github.com/mollify/mollify/train"
)

// smallMNIST writes the first n training and test digits as idx files
// under root/mnist, so reference statistics are quick to compute.
func smallMNIST(t *testing.T, root string, n int) {
	t.Helper()
	dir := filepath.Join(root, "mnist")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, split := range []data.Split{data.Train, data.Test} {
		ds, err := data.LoadMNIST("", split, data.MNISTOptions{})
		if err != nil {
			t.Skipf("MNIST: %v", err)
		}
		var img, lab bytes.Buffer
		binary.Write(&img, binary.BigEndian, []uint32{0x803, uint32(n), 28, 28})
		binary.Write(&lab, binary.BigEndian, []uint32{0x801, uint32(n)})
		for i := 0; i < n; i++ {
			p, l := ds.Example(i)
			img.Write(p)
			lab.WriteByte(byte(l))
		}
		base := map[data.Split][2]string{data.Train: {"train-images-idx3-ubyte", "train-labels-idx1-ubyte"},
			data.Test: {"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}}[split]
		if err := os.WriteFile(filepath.Join(dir, base[0]), img.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, base[1]), lab.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func fidConfig(t *testing.T, root string, sets ...string) *config.Config {
	t.Helper()
	cfg, err := config.Load("glow_cifar10", append([]string{"data.dataset=mnist", "data.channels=1", "data.image_size=32",
		"model.glow.levels=2", "model.glow.depth=1", "model.glow.hidden=8", "eval.fid_samples=150", "eval.batch_size=64",
		"data.root=" + root, "run.device=cpu"}, sets...))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

type fidRun struct {
	cfg   *config.Config
	model train.Model
	tr    data.Transform
	t     *train.Trainer
	log   *bytes.Buffer
	store *nn.Store
}

func newFIDRun(t *testing.T, cfg *config.Config) *fidRun {
	t.Helper()
	rng, err := nn.Seed(3)
	if err != nil {
		t.Fatal(err)
	}
	store := nn.NewStore(gotch.CPU)
	t.Cleanup(store.Close)
	model, err := models.Build(cfg, store.Root())
	if err != nil {
		t.Fatal(err)
	}
	tr, err := data.ParseTransform(cfg.Data.Dequantization, cfg.Data.Range)
	if err != nil {
		t.Fatal(err)
	}
	log := &bytes.Buffer{}
	tn := &train.Trainer{Options: trainOptions(t, cfg), Dir: t.TempDir(), Device: gotch.CPU, Store: store, Model: model, RNG: rng, Log: log}
	return &fidRun{cfg: cfg, model: model, tr: tr, t: tn, log: log, store: store}
}

// TestFIDOffWithoutNetwork: no weights and no classifier leave the run
// alone, with one line saying why.
func TestFIDOffWithoutNetwork(t *testing.T) {
	t.Setenv(inception.WeightsEnv, "")
	for _, c := range []struct {
		sets []string
		want []string
	}{
		{nil, []string{"no FID", inception.WeightsEnv, "train-classifier"}},
		{[]string{"data.dataset=cifar10", "data.channels=3"}, []string{"no FID", inception.WeightsURL}},
		{[]string{"eval.fid_samples=0"}, nil},
	} {
		r := newFIDRun(t, fidConfig(t, t.TempDir(), c.sets...))
		e, err := NewFID(r.cfg, r.model.(models.Sampler), gotch.CPU, r.tr, r.log)
		if err != nil || e != nil {
			t.Fatalf("%v: NewFID %v, %v; want nil, nil", c.sets, e, err)
		}
		if e.Hooks() != nil || e.Metric() != "" {
			t.Error("a nil FID has hooks")
		}
		e.Close()
		for _, w := range c.want {
			if !strings.Contains(r.log.String(), w) {
				t.Errorf("%v: log %q does not mention %q", c.sets, r.log, w)
			}
		}
		if c.want == nil && r.log.Len() > 0 {
			t.Errorf("fid_samples=0 logged %q", r.log)
		}
	}
}

// TestFCDHook: without Inception weights, an MNIST run with a cached
// classifier reports the FCD (never "fid"): the same value at two
// evaluations of the same model (fixed noise), without disturbing the
// run's random stream; reference statistics cached and reused; the curve
// read back after a resume.
func TestFCDHook(t *testing.T) {
	root := withClassifier(t)
	r := newFIDRun(t, fidConfig(t, root))
	e, err := NewFID(r.cfg, r.model.(models.Sampler), gotch.CPU, r.tr, r.log)
	if err != nil || e == nil {
		t.Fatalf("NewFID: %v, %v (log %q)", e, err, r.log)
	}
	defer e.Close()
	if e.Metric() != "fcd" || len(e.Hooks()) != 1 || e.Hooks()[0].Name != "fcd" || !strings.Contains(r.log.String(), "not FID") {
		t.Fatalf("metric %q, hooks %v, log %q", e.Metric(), e.Hooks(), r.log)
	}
	if strings.Contains(r.log.String(), "warning") {
		t.Errorf("150 samples for 128-d features: log %q warns", r.log)
	}
	state, goState, err := r.t.RNG.State(gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := e.evaluate(r.t); err != nil {
			t.Fatal(err)
		}
	}
	after := randomDraw(t)
	if err := r.t.RNG.Restore(gotch.CPU, state, goState); err != nil {
		t.Fatal(err)
	}
	if want := randomDraw(t); after != want {
		t.Errorf("the evaluation moved the run's generator: next draw %v, want %v", after, want)
	}
	recs := records(t, r.t.Dir)
	if len(recs) != 2 {
		t.Fatalf("metrics: %v", recs)
	}
	for _, rec := range recs {
		if rec["kind"] != "fcd" || rec["fid"] != nil || rec["samples"] != 150.0 || rec["dims"] != float64(classifier.Dim) {
			t.Errorf("record %v", rec)
		}
	}
	v1, _ := recs[0]["fcd"].(float64)
	v2, _ := recs[1]["fcd"].(float64)
	if !(v1 > 0) || v1 != v2 {
		t.Errorf("FCD %v then %v: want the same positive value from the same model and noise", recs[0]["fcd"], recs[1]["fcd"])
	}
	t.Logf("FCD of an untrained tiny Glow: %.2f", v1)
	if _, err := os.Stat(filepath.Join(r.t.Dir, "fcd.png")); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(r.t.Dir, "fid.png")); err == nil {
		t.Error("an FCD run drew fid.png")
	}
	cached, _ := filepath.Glob(filepath.Join(root, "fid_stats", "mnist_train_1x32x32_fcd128_*.npz"))
	meta, _ := filepath.Glob(filepath.Join(root, "fid_stats", "*.json"))
	if len(cached) != 1 || len(meta) != 1 {
		t.Fatalf("cache: %v %v", cached, meta)
	}
	var key statsKey
	b, _ := os.ReadFile(meta[0])
	if err := json.Unmarshal(b, &key); err != nil || key.Images != 400 || key.Dims != classifier.Dim || !strings.HasPrefix(key.Network, "fcd") {
		t.Errorf("cache key %+v (%v)", key, err)
	}

	// A second evaluator in the same run folder (a resumed run) reuses the
	// cached statistics and continues the curve.
	r2 := newFIDRun(t, fidConfig(t, root))
	r2.t.Dir = r.t.Dir
	e2, err := NewFID(r2.cfg, r2.model.(models.Sampler), gotch.CPU, r2.tr, r2.log)
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	if err := e2.evaluate(r2.t); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r2.log.String(), "reference statistics from "+cached[0]) || len(e2.values) != 3 {
		t.Errorf("resumed: log %q, curve %v", r2.log, e2.values)
	}
}

// randomDraw returns the next number of libtorch's CPU generator.
func randomDraw(t *testing.T) float64 {
	t.Helper()
	sc := ts.NewScope()
	defer sc.Close()
	v, err := ts.MustRand([]int64{1}, gotch.Double, gotch.CPU).Float64()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func records(t *testing.T, dir string) []map[string]any {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// TestFIDFewSamples: fewer samples (or reference images) than the feature
// size give a singular covariance; as in pytorch-fid the hook computes and
// records the metric anyway, after one warning on its log. Fewer than 2
// samples are a setup error that names the key.
func TestFIDFewSamples(t *testing.T) {
	t.Setenv(inception.WeightsEnv, "")
	root, smallRoot := t.TempDir(), t.TempDir()
	smallMNIST(t, root, 200)
	smallMNIST(t, smallRoot, 100)
	train28, err := data.LoadMNIST(root, data.Train, data.MNISTOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := classifier.Train(train28, train28, classifier.Options{Device: gotch.CPU, Epochs: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{root, smallRoot} {
		if err := c.Save(classifier.Path(r)); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	for _, tc := range []struct {
		root    string
		samples int
		is      error    // from NewFID
		want    []string // in the error, or else once in the log
	}{
		{root, 100, nil, []string{"fcd warning: eval.fid_samples has 100 images for 128-d features", "singular", "unreliable", "rank ≤ 99"}},
		{root, 2, nil, []string{"fcd warning: eval.fid_samples has 2 images for 128-d features", "singular"}},
		{smallRoot, 150, nil, []string{"fcd warning: the mnist training set has 100 images for 128-d features", "singular"}},
		{root, 1, fid.ErrTooFewImages, []string{"eval.fid_samples", "1 image", "at least 2"}},
	} {
		r := newFIDRun(t, fidConfig(t, tc.root, fmt.Sprintf("eval.fid_samples=%d", tc.samples)))
		e, err := NewFID(r.cfg, r.model.(models.Sampler), gotch.CPU, r.tr, r.log)
		if tc.is != nil {
			if e != nil || !errors.Is(err, tc.is) {
				t.Errorf("%d samples: NewFID %v, %v; want an error wrapping %v", tc.samples, e, err, tc.is)
			}
			for _, w := range tc.want {
				if err != nil && !strings.Contains(err.Error(), w) {
					t.Errorf("%d samples: error %q does not mention %q", tc.samples, err, w)
				}
			}
			continue
		}
		if err != nil || e == nil {
			t.Fatalf("%d samples: NewFID %v, %v (log %q)", tc.samples, e, err, r.log)
		}
		defer e.Close()
		for range 2 {
			if err := e.evaluate(r.t); err != nil {
				t.Fatal(err)
			}
		}
		log := r.log.String()
		for _, w := range tc.want {
			if !strings.Contains(log, w) {
				t.Errorf("%d samples: log %q does not mention %q", tc.samples, log, w)
			}
		}
		if n := strings.Count(log, "warning"); n != 1 {
			t.Errorf("%d samples: %d warnings in log %q, want 1", tc.samples, n, log)
		}
		recs := records(t, r.t.Dir)
		if len(recs) != 2 {
			t.Fatalf("%d samples: metrics %v", tc.samples, recs)
		}
		for _, rec := range recs {
			v, ok := rec["fcd"].(float64)
			if !ok || !(v > 0) || rec["error"] != nil || rec["samples"] != float64(tc.samples) {
				t.Errorf("%d samples: record %v, want a positive fcd and no error", tc.samples, rec)
			}
		}
	}
}

// withClassifier makes a data root with 400 MNIST digits and an MNIST
// classifier trained for one epoch on them, with no Inception weights: the
// FID hook reports FCD there.
func withClassifier(t *testing.T) string {
	t.Helper()
	t.Setenv(inception.WeightsEnv, "")
	root := t.TempDir()
	smallMNIST(t, root, 400)
	train28, err := data.LoadMNIST(root, data.Train, data.MNISTOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := classifier.Train(train28, train28, classifier.Options{Device: gotch.CPU, Epochs: 1, BatchSize: 32})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Save(classifier.Path(root)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	return root
}

// A model whose samples are NaN gets an FCD recorded as NaN with the
// reason, and the run goes on (issue 11, defect 7): never a score of
// garbage pixels.
func TestFIDOfNonFiniteSamples(t *testing.T) {
	root := withClassifier(t)
	r := newFIDRun(t, fidConfig(t, root))
	e, err := NewFID(r.cfg, nanSampler{[]int64{1, 32, 32}}, gotch.CPU, r.tr, r.log)
	if err != nil || e == nil {
		t.Fatalf("NewFID: %v, %v (log %q)", e, err, r.log)
	}
	defer e.Close()
	if err := e.evaluate(r.t); err != nil {
		t.Fatalf("a diverged model must not end the run: %v", err)
	}
	recs := records(t, r.t.Dir)
	if len(recs) != 1 || recs[0]["fcd"] != "NaN" || !strings.Contains(fmt.Sprint(recs[0]["error"]), "NaN or infinite") {
		t.Errorf("records %v, want one fcd NaN with the reason", recs)
	}
	if !strings.Contains(r.log.String(), "not computed") {
		t.Errorf("log lacks the warning: %q", r.log)
	}
}
