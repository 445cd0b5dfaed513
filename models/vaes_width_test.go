package models

import (
	"runtime"
	"testing"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/vaes"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// model.vae.width reaches the Table 4 nets: the MNIST configs (width 1/8,
// latent 32, 1 channel) build 16…128-channel encoders and a 128×8×8
// decoder input, and --set changes it.
func TestVAEWidthFromConfig(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, c := range []struct {
		config string
		sets   []string
		convs  []int64 // encoder output channels
	}{
		{"vae_mnist", nil, []int64{16, 32, 64, 128}},
		{"hvae_mnist", nil, []int64{16, 32, 64, 128}},
		{"vae_mnist", []string{"model.vae.width=0.25"}, []int64{32, 64, 128, 256}},
	} {
		t.Run(c.config, func(t *testing.T) {
			sc := ts.NewScope()
			defer sc.Close()
			cfg, err := config.Load(c.config, c.sets)
			if err != nil {
				t.Fatal(err)
			}
			m, s := buildModel(t, cfg, 0)
			defer s.Close()
			var base *vaes.Base
			switch n := m.(*VAE).Net.(type) {
			case *vaes.VAE:
				base = n.Base
			case *vaes.HVAE:
				base = n.Base
			default:
				t.Fatalf("%s builds %T", c.config, n)
			}
			in := int64(1)
			for i, conv := range base.Encoder.Convs {
				if conv.In != in || conv.Out != c.convs[i] {
					t.Errorf("encoder conv%d: %d→%d channels, want %d→%d", i, conv.In, conv.Out, in, c.convs[i])
				}
				in = c.convs[i]
			}
			if got, want := base.Decoder.FC.Out, c.convs[3]*8*8; got != want || base.Decoder.FC.In != 32 {
				t.Errorf("decoder FC %d→%d, want 32→%d", base.Decoder.FC.In, got, want)
			}
			l, err := m.Loss(ts.MustRand([]int64{2, 1, 32, 32}, gotch.Float, gotch.CPU))
			if err != nil {
				t.Fatal(err)
			}
			if v := scalarOf(t, l.Total); !(v > 0) {
				t.Errorf("loss %g", v)
			}
		})
	}
}
