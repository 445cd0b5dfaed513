package experiments

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/data"
	"github.com/mollify/mollify/models"
	"github.com/mollify/mollify/nn"
	"github.com/mollify/mollify/train"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// nanSampler is a diverged model: every sample is NaN.
type nanSampler struct{ shape []int64 }

func (s nanSampler) Sample(n int64, _ float64) (*ts.Tensor, error) {
	return ts.MustFull(append([]int64{n}, s.shape...), ts.FloatScalar(math.NaN()), gotch.Float, gotch.CPU), nil
}

// Non-finite samples give a warning and a record, never an image (issue
// 11, defect 7: they used to be cast to uint8 and saved).
func TestNonFiniteSamplesAreNotSaved(t *testing.T) {
	cfg := fidConfig(t, t.TempDir())
	rng, err := nn.Seed(1)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := data.ParseTransform(cfg.Data.Dequantization, cfg.Data.Range)
	if err != nil {
		t.Fatal(err)
	}
	log := &bytes.Buffer{}
	dir := t.TempDir()
	tn := &train.Trainer{Options: trainOptions(t, cfg), Dir: dir, Device: gotch.CPU, RNG: rng, Log: log}
	img := &Images{Config: cfg, Model: models.Capabilities{Sampler: nanSampler{[]int64{1, 32, 32}}}, Device: gotch.CPU, Transform: tr}
	var ran bool
	for _, h := range img.Hooks() {
		if h.Name == "samples" {
			ran = true
			if err := h.Fn(tn, &train.StepStats{}); err != nil {
				t.Fatalf("samples hook: %v", err)
			}
		}
	}
	if !ran {
		t.Fatal("no samples hook")
	}
	if pngs, _ := filepath.Glob(filepath.Join(dir, "samples", "*.png")); len(pngs) > 0 {
		t.Errorf("NaN samples were saved as %v", pngs)
	}
	if _, err := os.Stat(filepath.Join(dir, "samples_over_training.png")); err == nil {
		t.Error("NaN samples were drawn into samples_over_training.png")
	}
	if !strings.Contains(log.String(), "warning: samples at step 0 not written") || !strings.Contains(log.String(), "NaN or infinite") {
		t.Errorf("log lacks the warning:\n%s", log)
	}
	m, _ := os.ReadFile(filepath.Join(dir, "metrics.jsonl"))
	if !bytes.Contains(m, []byte(`"nonfinite":true`)) {
		t.Errorf("metrics.jsonl lacks the non-finite record:\n%s", m)
	}
}

func trainOptions(t *testing.T, c *config.Config) train.Options {
	t.Helper()
	o, err := train.NewOptions(c)
	if err != nil {
		t.Fatal(err)
	}
	return o
}
