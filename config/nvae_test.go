package config

import (
	"strings"
	"testing"
)

// The evaluation and sampling keys of model.nvae: defaults are NVAE's
// evaluate.py (readjustment off, 500 passes of 36), the shipped presets
// set them, and bad values are refused naming the key, every problem at
// once.
func TestNVAEEvaluationKeys(t *testing.T) {
	d := DefaultNVAE()
	if d.IWSamples != 1 || d.ReadjustBN || d.ReadjustBNIters != 500 || d.ReadjustBNBatch != 36 {
		t.Errorf("defaults iw_samples %d, readjust_bn %v, iters %d, batch %d; want 1, false, 500, 36",
			d.IWSamples, d.ReadjustBN, d.ReadjustBNIters, d.ReadjustBNBatch)
	}
	for _, tc := range []struct {
		preset string
		iw     int
		adjust bool
	}{
		{"nvae_mnist", 1, false},
		{"nvae_cifar10", 1, true},
	} {
		c, err := Load(tc.preset, nil)
		if err != nil {
			t.Fatal(err)
		}
		if n := c.Model.NVAE; n.IWSamples != tc.iw || n.ReadjustBN != tc.adjust {
			t.Errorf("%s: iw_samples %d, readjust_bn %v; want %d, %v", tc.preset, n.IWSamples, n.ReadjustBN, tc.iw, tc.adjust)
		}
	}
	for _, tc := range []struct {
		sets []string
		want []string
	}{
		{[]string{"model.nvae.iw_samples=0"}, []string{"model.nvae.iw_samples must be ≥ 1"}},
		{[]string{"model.nvae.readjust_bn=true", "model.nvae.readjust_bn_iters=0", "model.nvae.readjust_bn_batch=1"},
			[]string{"model.nvae.readjust_bn_iters must be ≥ 1", "model.nvae.readjust_bn_batch must be ≥ 2"}},
		{[]string{"model.nvae.iw_samples=-3", "model.nvae.readjust_bn=true", "model.nvae.readjust_bn_batch=0"},
			[]string{"model.nvae.iw_samples", "model.nvae.readjust_bn_batch"}},
		{[]string{"model.nvae.readjust_bn=yes please"}, []string{"model.nvae.readjust_bn"}},
	} {
		_, err := Load("nvae_mnist", tc.sets)
		if err == nil {
			t.Errorf("%v: no error", tc.sets)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q does not contain %q", tc.sets, err, w)
			}
		}
	}
	// Off, the readjustment's sizes are not checked (they are unused).
	if _, err := Load("nvae_mnist", []string{"model.nvae.readjust_bn=false", "model.nvae.readjust_bn_iters=0"}); err != nil {
		t.Errorf("readjust_bn=false with readjust_bn_iters=0: %v", err)
	}
}
