package vaes

import (
	"math"
	"sort"
	"testing"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/internal/golden"
	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// goldenCase mirrors a case of testdata/gen_golden.py.
type goldenCase struct {
	Model     string  `json:"model"`
	Channels  int64   `json:"channels"`
	Size      int64   `json:"size"`
	Latent    int64   `json:"latent"`
	Width     float64 `json:"width"`
	Recon     string  `json:"recon"`
	Range     string  `json:"range"`
	Beta      float64 `json:"beta"`
	K         int     `json:"k"`
	IAFBlocks int     `json:"iaf_blocks"`
	IAFLayers int     `json:"iaf_layers"`
	IAFUnits  int     `json:"iaf_units"`
	LFSteps   int     `json:"lf_steps"`
	StepSize  float64 `json:"step_size"`
	BetaZero  float64 `json:"beta_zero"`
}

// goldenModel builds the case's model and returns it with a function that
// computes its loss for given noise.
func goldenModel(t *testing.T, p nn.Path, gc goldenCase) (setTraining func(bool), loss func(x *ts.Tensor, noise map[string]*ts.Tensor) nn.Loss) {
	t.Helper()
	c := config.VAE{
		Latent: int(gc.Latent), Width: gc.Width, Recon: gc.Recon, Beta: gc.Beta, ImportanceSamples: gc.K,
		IAF:  config.IAF{Blocks: gc.IAFBlocks, HiddenLayers: gc.IAFLayers, HiddenUnits: gc.IAFUnits},
		HVAE: config.HVAE{LeapfrogSteps: gc.LFSteps, StepSize: gc.StepSize, LearnStepSize: true, BetaZero: gc.BetaZero},
	}
	d := config.Data{ImageSize: int(gc.Size), Channels: int(gc.Channels), Range: gc.Range}
	fail := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	switch gc.Model {
	case "vae":
		m, err := NewVAE(p, c, d)
		fail(err)
		return m.SetTraining, func(x *ts.Tensor, n map[string]*ts.Tensor) nn.Loss {
			mu, lv := m.Encoder.Forward(x)
			return m.loss(x, mu, lv, n["eps"])
		}
	case "beta_vae":
		m, err := NewBetaVAE(p, c, d)
		fail(err)
		return m.SetTraining, func(x *ts.Tensor, n map[string]*ts.Tensor) nn.Loss {
			mu, lv := m.Encoder.Forward(x)
			return m.loss(x, mu, lv, n["eps"])
		}
	case "iwae":
		m, err := NewIWAE(p, c, d)
		fail(err)
		return m.SetTraining, func(x *ts.Tensor, n map[string]*ts.Tensor) nn.Loss {
			mu, lv := m.Encoder.Forward(x)
			return m.loss(x, mu, lv, n["eps"])
		}
	case "vae_iaf":
		m, err := NewVAEIAF(p, c, d)
		fail(err)
		return m.SetTraining, func(x *ts.Tensor, n map[string]*ts.Tensor) nn.Loss {
			mu, lv := m.Encoder.Forward(x)
			return m.loss(x, mu, lv, n["eps"])
		}
	case "hvae":
		m, err := NewHVAE(p, c, d)
		fail(err)
		return m.SetTraining, func(x *ts.Tensor, n map[string]*ts.Tensor) nn.Loss {
			mu, lv := m.Encoder.Forward(x)
			return m.loss(x, mu, lv, n["eps"], n["gamma"])
		}
	}
	t.Fatalf("unknown golden model %q", gc.Model)
	return nil, nil
}

// Every model's loss terms, parameter gradients and batch-norm running
// statistics match an independent PyTorch transcription with the same
// weights, batch and noise (testdata/gen_golden.py), in training mode and
// with running statistics.
func TestParityWithPyTorch(t *testing.T) {
	defer begin(t)()
	g := golden.Load(t, "testdata/golden.safetensors", 6)
	for _, name := range g.Cases {
		t.Run(name, func(t *testing.T) {
			defer begin(t)()
			var gc goldenCase
			g.Settings(t, name, &gc)
			pick := func(prefix string) map[string]*ts.Tensor { return g.Pick(name, prefix) }
			s := nn.NewStore(gotch.CPU)
			defer s.Close()
			setTraining, loss := goldenModel(t, s.Root(), gc)
			if err := s.Load(pick("w.")); err != nil {
				t.Fatal(err)
			}
			x := g.Tensors[name+".x_u8"].MustTotype(gotch.Float, false)
			if gc.Range == config.RangeSigned {
				x = x.MustDivScalar(ts.FloatScalar(127.5), true).MustSubScalar(ts.FloatScalar(1), true)
			} else {
				x = x.MustDivScalar(ts.FloatScalar(255), true)
			}
			noise := map[string]*ts.Tensor{"eps": g.Tensors[name+".eps"], "gamma": g.Tensors[name+".gamma"]}
			check := func(mode string, l nn.Loss) {
				want := pick(mode + ".")
				if got, w := scalar(t, l.Total), scalar(t, want["total"]); !closeNats(got, w) {
					t.Errorf("%s total = %.7g, PyTorch %.7g", mode, got, w)
				}
				if len(l.Terms) != len(want)-1 {
					t.Errorf("%s terms %v, PyTorch has %d besides total", mode, keys(l.Terms), len(want)-1)
				}
				for k, v := range l.Terms {
					w, ok := want[k]
					if !ok {
						t.Errorf("%s term %q is not in the PyTorch reference", mode, k)
						continue
					}
					if got, w := scalar(t, v), scalar(t, w); !closeNats(got, w) {
						t.Errorf("%s %s = %.7g, PyTorch %.7g", mode, k, got, w)
					}
				}
			}

			setTraining(true)
			l := loss(x, noise)
			check("train", l)
			l.Total.MustBackward()
			named := s.Named()
			grads := pick("grad.")
			if len(grads) != len(s.Parameters()) {
				t.Errorf("PyTorch has %d gradients, the store %d parameters", len(grads), len(s.Parameters()))
			}
			// Biases before a batch norm have a zero gradient in exact
			// arithmetic: both sides must be rounding noise (below 1e-5 of
			// the largest gradient entry, top). Others agree to 1e-4 of
			// their largest entry.
			var top float64
			for _, w := range grads {
				for _, v := range values(w) {
					top = max(top, math.Abs(v))
				}
			}
			for k, w := range grads {
				p, ok := named[k]
				if !ok {
					t.Errorf("no parameter %q", k)
					continue
				}
				got, want := values(p.MustGrad(false)), values(w)
				if maxAbs(want) < 1e-5*top {
					if m := maxAbs(got); m >= 1e-5*top {
						t.Errorf("gradient of %s is %.2g here but zero (%.2g) in PyTorch", k, m, maxAbs(want))
					}
					continue
				}
				if e := maxRelErr(got, want, 0); e > 1e-4 {
					t.Errorf("gradient of %s differs from PyTorch's by %.2g (relative to its largest entry)", k, e)
				}
			}
			for k, w := range pick("buf.") {
				if e := maxRelErr(values(named[k]), values(w), 1e-3); e > 1e-5 {
					t.Errorf("running statistic %s differs from PyTorch's by %.2g", k, e)
				}
			}

			setTraining(false)
			check("eval", loss(x, noise))
		})
	}
}

func maxAbs(xs []float64) float64 {
	var m float64
	for _, x := range xs {
		m = max(m, math.Abs(x))
	}
	return m
}

func closeNats(a, b float64) bool { return math.Abs(a-b) <= 1e-4*math.Max(math.Abs(b), 1) }

func keys(m map[string]*ts.Tensor) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
