package models

import (
	"strings"
	"testing"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/nn"
	"github.com/mollify/mollify/train"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// lossOnly is a model that can train and nothing else.
type lossOnly struct{}

func (lossOnly) Loss(*ts.Tensor) (nn.Loss, error) { return nn.Loss{}, nil }

// A model that lacks what a config asks of it is an error at build time
// that names the setting (issue 12: it used to get no validation,
// silently).
func TestRequireCapabilities(t *testing.T) {
	images, err := config.Load("vae_mnist", nil)
	if err != nil {
		t.Fatal(err)
	}
	images.Eval.FIDSamples = 100
	toy := config.Default()
	var bare train.Model = lossOnly{}
	for _, c := range []struct {
		name string
		cfg  *config.Config
		want []string
	}{
		{"image run", images, []string{`model "vae" cannot do what the config asks`, "eval.every=", "set eval.every=0", "output.samples_every=", "eval.fid_samples=100"}},
		{"2-D run", &toy, []string{"the 2-D experiments need a density and samples"}},
	} {
		err := CapabilitiesOf(bare).Require(c.cfg)
		for _, w := range c.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v, want it to mention %q", c.name, err, w)
			}
		}
	}
	quiet := *images
	quiet.Eval.Every, quiet.Output.SamplesEvery, quiet.Eval.FIDSamples = 0, 0, 0
	if err := CapabilitiesOf(bare).Require(&quiet); err != nil {
		t.Errorf("a config that asks nothing: %v", err)
	}
	// Every registered model has what its shipped configs ask for.
	for _, name := range []string{"realnvp_mog", "glow_mnist", "realnvp_mnist", "vae_mnist", "iwae_mnist", "hvae_mnist", "vae_iaf_mnist", "betavae_mnist"} {
		c, err := config.Load(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		s := nn.NewStore(gotch.CPU)
		if _, k, err := BuildFor(c, s.Root()); err != nil || k.Sampler == nil || (k.Density == nil && k.Evaluator == nil) {
			t.Errorf("%s: %v, capabilities %+v", name, err, k)
		}
		s.Close()
	}
}

// Every image and 2-D model declares whether its step can be captured as a
// CUDA graph; Glow only after its first batch has initialised ActNorm.
func TestModelsDeclareCapture(t *testing.T) {
	for _, name := range []string{"realnvp_mog", "glow_mnist", "realnvp_mnist", "vae_mnist", "iwae_mnist", "hvae_mnist", "vae_iaf_mnist", "betavae_mnist"} {
		c, err := config.Load(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		s := nn.NewStore(gotch.CPU)
		m, err := Build(c, s.Root())
		if err != nil {
			t.Fatal(err)
		}
		capt, ok := m.(train.Capturable)
		if !ok {
			t.Errorf("%s: the model does not declare train.Capturable", name)
			s.Close()
			continue
		}
		err = capt.CaptureReady()
		if g, isGlow := m.(*Glow); isGlow {
			if err == nil || !strings.Contains(err.Error(), "ActNorm") {
				t.Errorf("%s: a fresh Glow is ready to capture: %v", name, err)
			}
			sc := ts.NewScope()
			x := ts.MustRand([]int64{2, 1, 32, 32}, gotch.Float, gotch.CPU)
			if _, err := g.Loss(x); err != nil {
				t.Fatal(err)
			}
			sc.Close()
			err = capt.CaptureReady()
		}
		if err != nil {
			t.Errorf("%s: not ready to capture: %v", name, err)
		}
		s.Close()
	}
}
