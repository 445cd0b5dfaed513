package vaes

import (
	"strings"
	"testing"

	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

func TestConfigErrors(t *testing.T) {
	ok := tiny(ReconMSE)
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"image size", func(c *Config) { c.ImageSize = 28 }, "image size 28 has no Table 4 network; use 32"},
		{"unknown recon", func(c *Config) { c.Recon = "l1" }, `unknown reconstruction likelihood "l1"; use "mse" or "bce"`},
		{"bce on signed data", func(c *Config) { c.Recon, c.Range = ReconBCE, RangeSigned }, "needs targets in [0, 1]"},
		{"unknown range", func(c *Config) { c.Range = "byte" }, `unknown data range "byte"`},
		{"latent", func(c *Config) { c.Latent = 0 }, "latent size must be positive"},
		{"channels", func(c *Config) { c.Channels = 0 }, "channels must be positive"},
		{"width", func(c *Config) { c.Width = -1 }, "width multiplier must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer begin(t)()
			c := ok
			tc.edit(&c)
			s := nn.NewStore(gotch.CPU)
			defer s.Close()
			_, err := NewVAE(s.Root(), c)
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
	c := tiny(ReconMSE)
	s := nn.NewStore(gotch.CPU)
	defer s.Close()
	for _, tc := range []struct {
		err  error
		want string
	}{
		{second(NewBetaVAE(s.Root(), c, 0)), "beta must be positive"},
		{second(NewIWAE(s.Root(), c, 0)), "at least 1 importance sample"},
		{second(NewVAEIAF(s.Root(), c, IAFConfig{Blocks: 2, HiddenLayers: 0, HiddenUnits: 8})), "positive blocks, hidden layers and hidden units"},
		{second(NewHVAE(s.Root(), c, HVAEConfig{LeapfrogSteps: 1, StepSize: 1e-3, BetaZero: 1.5})), "beta_zero must be in (0, 1]"},
		{second(NewHVAE(s.Root(), c, HVAEConfig{LeapfrogSteps: 0, StepSize: 1e-3, BetaZero: 0.3})), "at least 1 leapfrog step"},
		{second(NewHVAE(s.Root(), c, HVAEConfig{LeapfrogSteps: 1, StepSize: 0, BetaZero: 0.3})), "step size must be positive"},
		{second(NewMADE(s.Root(), 1, []int64{8})), "at least 2 dimensions"},
	} {
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
		c := Config{ImageSize: size, Channels: 3, Latent: 256, Recon: ReconMSE}
		s := nn.NewStore(gotch.CPU)
		e, err := NewEncoder(s.Root().Sub("encoder"), c)
		if err != nil {
			t.Fatal(err)
		}
		d, err := NewDecoder(s.Root().Sub("decoder"), c)
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
		}
		ts.NoGrad(func() {
			x := images(2, c)
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
	c := Config{ImageSize: 64, Channels: 1, Latent: 8, Width: 0.25, Recon: ReconBCE}
	s := nn.NewStore(gotch.CPU)
	defer s.Close()
	m, err := NewVAE(s.Root(), c)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Encoder.Convs[0].W.MustSize(); got[0] != 32 || got[1] != 1 {
		t.Errorf("width 1/4 first conv %v, want 32 filters on 1 channel", got)
	}
	if got := m.Decoder.FC.W.MustSize()[0]; got != 256*64 {
		t.Errorf("width 1/4 decoder FC has %d outputs, want 256·8·8", got)
	}
	x := images(2, c)
	if got := m.Decoder.Forward(nn.Randn([]int64{2, 8}, gotch.CPU)).MustSize(); got[1] != 1 || got[2] != 64 {
		t.Errorf("decoder output %v", got)
	}
	if _, err := m.Loss(x); err != nil {
		t.Fatal(err)
	}
}

func TestBadInputs(t *testing.T) {
	defer begin(t)()
	c := tiny(ReconMSE)
	s := nn.NewStore(gotch.CPU)
	defer s.Close()
	m, err := NewVAE(s.Root(), c)
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
	if _, err := m.LogLikelihood(images(2, c), 0); err == nil || !strings.Contains(err.Error(), "at least 1") {
		t.Errorf("LogLikelihood(k=0) error = %v", err)
	}
	if _, err := m.Sample(0, 1); err == nil {
		t.Error("Sample(0) gave no error")
	}
	if _, err := m.Sample(2, -1); err == nil {
		t.Error("Sample with a negative temperature gave no error")
	}
}
