package vaes

import (
	"strings"
	"testing"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

func TestConfigErrors(t *testing.T) {
	ok := tiny(config.ReconMSE)
	for _, tc := range []struct {
		name string
		edit func(*setup)
		want string
	}{
		{"image size", func(c *setup) { c.ImageSize = 28 }, "uses the Table 4 networks, which exist for data.image_size 32 or 64, got 28"},
		{"unknown recon", func(c *setup) { c.Recon = "l1" }, `model.vae.recon: unknown value "l1" (want "mse" or "bce")`},
		{"bce on signed data", func(c *setup) { c.Recon, c.Range = config.ReconBCE, config.RangeSigned }, "needs targets in [0, 1]"},
		{"unknown range", func(c *setup) { c.Range = "byte" }, `data.range: unknown value "byte"`},
		{"latent", func(c *setup) { c.Latent = 0 }, "model.vae.latent must be > 0"},
		{"channels", func(c *setup) { c.Channels = 0 }, "data.channels must be > 0"},
		{"width", func(c *setup) { c.Width = -1 }, "model.vae.width must be a finite number > 0"},
		{"every problem", func(c *setup) { c.Latent, c.Width = 0, 0 }, "model.vae.latent must be > 0, got 0\n  model.vae.width must be"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer begin(t)()
			c := ok
			tc.edit(&c)
			s := nn.NewStore(gotch.CPU)
			defer s.Close()
			_, err := NewVAE(s.Root(), c.VAE, c.Data)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewVAE error = %v, want it to contain %q", err, tc.want)
			}
			if len(s.Names()) != 0 {
				t.Errorf("a rejected config registered parameters: %v", s.Names())
			}
		})
	}
}

func TestModelConstructorErrors(t *testing.T) {
	defer begin(t)()
	s := nn.NewStore(gotch.CPU)
	defer s.Close()
	with := func(edit func(*config.VAE)) (config.VAE, config.Data) {
		c := tiny(config.ReconMSE)
		edit(&c.VAE)
		return c.VAE, c.Data
	}
	build := func(build func(nn.Path, config.VAE, config.Data) error, edit func(*config.VAE)) error {
		c, d := with(edit)
		return build(s.Root(), c, d)
	}
	betaVAE := func(p nn.Path, c config.VAE, d config.Data) error { return second(NewBetaVAE(p, c, d)) }
	iwae := func(p nn.Path, c config.VAE, d config.Data) error { return second(NewIWAE(p, c, d)) }
	vaeIAF := func(p nn.Path, c config.VAE, d config.Data) error { return second(NewVAEIAF(p, c, d)) }
	hvae := func(p nn.Path, c config.VAE, d config.Data) error { return second(NewHVAE(p, c, d)) }
	for _, tc := range []struct {
		err  error
		want string
	}{
		{build(betaVAE, func(c *config.VAE) { c.Beta = 0 }), "beta_vae: invalid config: model.vae.beta must be a finite number > 0, got 0"},
		{build(iwae, func(c *config.VAE) { c.ImportanceSamples = 0 }), "model.vae.importance_samples must be > 0"},
		{build(vaeIAF, func(c *config.VAE) { c.IAF.HiddenLayers = 0 }), "model.vae.iaf.hidden_layers must be > 0"},
		{build(vaeIAF, func(c *config.VAE) { c.Latent = 1 }), "model.vae.latent must be at least 2 for vae_iaf"},
		{build(hvae, func(c *config.VAE) { c.HVAE.BetaZero = 1.5 }), "model.vae.hvae.beta_zero must be in (0, 1]"},
		{build(hvae, func(c *config.VAE) { c.HVAE.LeapfrogSteps = 0 }), "model.vae.hvae.leapfrog_steps must be > 0"},
		{build(hvae, func(c *config.VAE) { c.HVAE.StepSize = 0 }), "model.vae.hvae.step_size must be a finite number > 0"},
		// A variant reads only its own fields.
		{build(iwae, func(c *config.VAE) { c.Beta, c.HVAE.StepSize = 0, 0 }), "<nil>"},
		{second(NewIAF(s.Root().Sub("iaf"), 1, config.DefaultVAE().IAF)), "latent size of at least 2"},
		{second(NewMADE(s.Root(), 1, []int64{8})), "at least 2 dimensions"},
	} {
		if tc.want == "<nil>" {
			if tc.err != nil {
				t.Errorf("error = %v, want none", tc.err)
			}
			continue
		}
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("error = %v, want it to contain %q", tc.err, tc.want)
		}
	}
}

func second[T any](_ T, err error) error { return err }

// Table 4 at width 1: the channel counts and kernel sizes of every layer,
// and the output sizes of both decoders.
func TestTable4Architecture(t *testing.T) {
	defer begin(t)()
	for _, size := range []int64{32, 64} {
		c := table4(int(size), 3, config.ReconMSE)
		s := nn.NewStore(gotch.CPU)
		e, err := NewEncoder(s.Root().Sub("encoder"), c.VAE, c.Data)
		if err != nil {
			t.Fatal(err)
		}
		d, err := NewDecoder(s.Root().Sub("decoder"), c.VAE, c.Data)
		if err != nil {
			t.Fatal(err)
		}
		for i, want := range []int64{128, 256, 512, 1024} {
			if got := e.Convs[i].W.MustSize(); got[0] != want || got[2] != 4 || e.Convs[i].Opts.Stride != 2 {
				t.Errorf("%d: encoder conv %d weight %v stride %d, want CONV(%d,4,2)", size, i, got, e.Convs[i].Opts.Stride, want)
			}
		}
		if got := e.Mu.W.MustSize(); got[0] != 256 || got[1] != 1024*(size/16)*(size/16) {
			t.Errorf("%d: encoder μ head %v", size, got)
		}
		if got := d.FC.W.MustSize(); got[0] != 8*8*1024 || got[1] != 256 {
			t.Errorf("%d: decoder FC %v, want FC_8×8×1024", size, got)
		}
		want := map[int64][][2]int64{32: {{512, 4}, {256, 4}, {3, 4}}, 64: {{512, 5}, {256, 5}, {128, 5}, {3, 4}}}[size]
		if len(d.ConvTs) != len(want) || len(d.BNs) != len(want)-1 {
			t.Fatalf("%d: %d ConvT and %d BN, want %d and %d", size, len(d.ConvTs), len(d.BNs), len(want), len(want)-1)
		}
		for i, w := range want {
			if got := d.ConvTs[i].W.MustSize(); got[1] != w[0] || got[2] != w[1] {
				t.Errorf("%d: decoder ConvT %d weight %v, want %d channels, kernel %d", size, i, got, w[0], w[1])
			}
			if d.ConvTs[i].Opts.NativeBackward {
				t.Errorf("%d: decoder ConvT %d takes the native backward by default", size, i)
			}
		}
		ts.NoGrad(func() {
			x := images(2, c.Data)
			mu, lv := e.Forward(x)
			if a, b := mu.MustSize(), lv.MustSize(); a[0] != 2 || a[1] != 256 || b[1] != 256 {
				t.Errorf("%d: encoder gives %v and %v", size, a, b)
			}
			if got := d.Forward(mu).MustSize(); got[1] != 3 || got[2] != size || got[3] != size {
				t.Errorf("%d: decoder gives %v, want [2 3 %d %d]", size, got, size, size)
			}
		})
		s.Close()
	}
}

func TestWidthAndChannels(t *testing.T) {
	defer begin(t)()
	c := table4(64, 1, config.ReconBCE)
	c.Latent, c.Width = 8, 0.25
	s := nn.NewStore(gotch.CPU)
	defer s.Close()
	m, err := NewVAE(s.Root(), c.VAE, c.Data)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Encoder.Convs[0].W.MustSize(); got[0] != 32 || got[1] != 1 {
		t.Errorf("width 1/4 first conv %v, want 32 filters on 1 channel", got)
	}
	if got := m.Decoder.FC.W.MustSize()[0]; got != 256*64 {
		t.Errorf("width 1/4 decoder FC has %d outputs, want 256·8·8", got)
	}
	x := images(2, c.Data)
	if got := m.Decoder.Forward(nn.Randn([]int64{2, 8}, gotch.CPU)).MustSize(); got[1] != 1 || got[2] != 64 {
		t.Errorf("decoder output %v", got)
	}
	if _, err := m.Loss(x); err != nil {
		t.Fatal(err)
	}
}

func TestBadInputs(t *testing.T) {
	defer begin(t)()
	c := tiny(config.ReconMSE)
	s := nn.NewStore(gotch.CPU)
	defer s.Close()
	m, err := NewVAE(s.Root(), c.VAE, c.Data)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		x    *ts.Tensor
		want string
	}{
		{ts.MustRand([]int64{2, 3, 64, 64}, gotch.Float, gotch.CPU), "input has shape [2 3 64 64], want [N, 3, 32, 32]"},
		{ts.MustRand([]int64{2, 1, 32, 32}, gotch.Float, gotch.CPU), "check data.channels"},
		{ts.MustRand([]int64{3, 32, 32}, gotch.Float, gotch.CPU), "NCHW"},
		{ts.MustRand([]int64{2, 3, 32, 32}, gotch.Double, gotch.CPU), "want float32"},
	} {
		if _, err := m.Loss(tc.x); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Loss error = %v, want %q", err, tc.want)
		}
		if _, err := m.LogLikelihood(tc.x, 2); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("LogLikelihood error = %v, want %q", err, tc.want)
		}
	}
	if _, err := m.LogLikelihood(images(2, c.Data), 0); err == nil || !strings.Contains(err.Error(), "at least 1") {
		t.Errorf("LogLikelihood(k=0) error = %v", err)
	}
	if _, err := m.Sample(0, 1); err == nil {
		t.Error("Sample(0) gave no error")
	}
	if _, err := m.Sample(2, -1); err == nil {
		t.Error("Sample with a negative temperature gave no error")
	}
}

// model.vae.native_convt_backward (an ablation) reaches every transposed
// convolution of the decoder and nothing else.
func TestNativeConvTBackwardSetting(t *testing.T) {
	defer begin(t)()
	for _, native := range []bool{false, true} {
		c := tiny(config.ReconMSE)
		c.NativeConvTBackward = native
		s := nn.NewStore(gotch.CPU)
		m, err := NewVAE(s.Root(), c.VAE, c.Data)
		if err != nil {
			t.Fatal(err)
		}
		for i, ct := range m.Decoder.ConvTs {
			if ct.Opts.NativeBackward != native {
				t.Errorf("native_convt_backward=%v: decoder ConvT %d has NativeBackward %v", native, i, ct.Opts.NativeBackward)
			}
		}
		for i, conv := range m.Encoder.Convs {
			if conv.Opts.NativeBackward {
				t.Errorf("native_convt_backward=%v: encoder conv %d has NativeBackward set", native, i)
			}
		}
		s.Close()
	}
}
