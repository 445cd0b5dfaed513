package flows

import (
	"strings"
	"testing"

	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// normflowsGlowParams is the parameter count of normflows' Glow as the
// authors build it (data-mollification image/experiment.py get_model:
// normflows' Glow example with a GlowBase for each latent where the
// example has a class-conditional ClassCondDiagGaussian; L levels of K
// GlowBlock(channel split, sigmoid scale), Squeeze and Merge), from the
// shapes of normflows' modules
// (normalizing-flows c6616b1): per GlowBlock on c channels, ActNorm 2c,
// LU 1×1 conv 2c²+c, coupling ConvNet2d ⌈c/2⌉→h→h→2⌊c/2⌋ with kernels
// 3,1,3 and biases; per GlowBase 4 per channel of its latent.
func normflowsGlowParams(shape []int64, levels, depth int, hidden int64) int64 {
	step := func(c int64) int64 {
		a, b := (c+1)/2, c/2
		return 2*c + 2*c*c + c + 9*a*hidden + hidden + hidden*hidden + hidden + 9*hidden*2*b + 2*b
	}
	var n int64
	c := shape[0]
	for l := 0; l < levels; l++ {
		c *= 4
		n += int64(depth) * step(c)
		if l < levels-1 {
			n += 4 * (c / 2) // the factored-out half's GlowBase
			c = (c + 1) / 2
		}
	}
	return n + 4*c // the top's GlowBase
}

// With the per-channel prior, Glow has the authors' structure: at each
// level the factored-out half goes to its own per-channel GlowBase
// (no conditional conv), the top has one too, and the latents have the
// shapes of the authors' normflows model (for 3×32×32, L = 3: 6×16×16,
// 12×8×8, 48×4×4). The conditional variant has a conv prior per split
// and a per-element top.
func TestGlowPriorStructure(t *testing.T) {
	for _, c := range []struct {
		prior       GlowPrior
		priorParams int64
		topShape    []int64
	}{
		// 4 · (6 + 12 + 48)
		{GlowPriorPerChannel, 264, []int64{1, 48, 1, 1}},
		// 3×3 convs 6→12 and 12→24 with biases, and 4 · 48·4·4
		{GlowPriorConditional, (9*6*12 + 12) + (9*12*24 + 24) + 4*48*16, []int64{1, 48, 4, 4}},
	} {
		t.Run(c.prior.String(), func(t *testing.T) {
			sc := ts.NewScope()
			defer sc.Close()
			s := nn.NewStore(gotch.CPU)
			defer s.Close()
			o := glowConfig(3, 1, 4)
			o.Prior = c.prior.String()
			g, err := NewGlow(s.Root(), o, []int64{3, 32, 32})
			if err != nil {
				t.Fatal(err)
			}
			want := [][]int64{{6, 16, 16}, {12, 8, 8}, {48, 4, 4}}
			for i, z := range g.ZShapes {
				if !equalInts(z, want[i]) {
					t.Errorf("latent %d has shape %v, the authors' model %v", i, z, want[i])
				}
			}
			var priorParams int64
			for n, p := range s.Named() {
				if strings.Contains(n, "split.") || strings.HasPrefix(n, "top.") {
					priorParams += numelOf(p.MustSize())
				}
			}
			if priorParams != c.priorParams {
				t.Errorf("the priors have %d parameters, want %d", priorParams, c.priorParams)
			}
			for l, level := range g.Levels[:2] {
				sp := level.Split
				switch c.prior {
				case GlowPriorPerChannel:
					b, ok := sp.Base.(*GaussianBase)
					if sp.Prior != nil || !ok || !b.PerChannel() || !equalInts(b.Shape, want[l]) {
						t.Errorf("level %d split: conv prior %v, base %#v; want a per-channel GlowBase over %v and no conv", l, sp.Prior != nil, sp.Base, want[l])
					}
				case GlowPriorConditional:
					if sp.Prior == nil || sp.Base != nil {
						t.Errorf("level %d split: conv prior %v, base %v; want the conditional conv only", l, sp.Prior != nil, sp.Base)
					}
				}
			}
			top, ok := g.Top.(*GaussianBase)
			if !ok || !equalInts(top.Loc.MustSize(), c.topShape) {
				t.Errorf("top %#v, want a learned base with parameters of shape %v", g.Top, c.topShape)
			}
		})
	}
}

// The per-channel Glow has the parameter count of the authors' normflows
// model: the closed form above, and the totals measured by building
// get_model() with normflows c6616b1 under torch 1.13.1: 27,530,184 for
// the paper's CIFAR-10/CelebA model (L = 3, K = 20, hidden 512; the count
// does not depend on the image size), 150,680 for configs/glow_mnist.yaml.
func TestGlowParamCountMatchesNormflows(t *testing.T) {
	cases := []struct {
		name   string
		shape  []int64
		l, k   int
		hidden int
		want   int64
	}{
		{"glow_mnist", []int64{1, 32, 32}, 3, 4, 64, 150680},
		{"tiny", []int64{3, 8, 8}, 2, 2, 8, 11384},
		{"glow_cifar10", []int64{3, 32, 32}, 3, 20, 512, 27530184},
		{"glow_celeba", []int64{3, 64, 64}, 3, 20, 512, 27530184},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if testing.Short() && c.hidden > 64 {
				t.Skip("builds a 27.5M-parameter model")
			}
			if got := normflowsGlowParams(c.shape, c.l, c.k, int64(c.hidden)); got != c.want {
				t.Fatalf("closed form %d, normflows %d", got, c.want)
			}
			s := nn.NewStore(gotch.CPU)
			defer s.Close()
			if _, err := NewGlow(s.Root(), glowConfig(c.l, c.k, c.hidden), c.shape); err != nil {
				t.Fatal(err)
			}
			if got := s.NumParams(); got != c.want {
				t.Errorf("%d parameters, normflows' Glow has %d", got, c.want)
			}
		})
	}
}

func TestGlowPriorNames(t *testing.T) {
	for i, n := range GlowPriorNames {
		p, err := ParseGlowPrior(n)
		if err != nil || int(p) != i || p.String() != n {
			t.Errorf("ParseGlowPrior(%q) = %v, %v", n, p, err)
		}
	}
	if _, err := ParseGlowPrior("per_element"); err == nil || !strings.Contains(err.Error(), "want per_channel") || !strings.Contains(err.Error(), "or conditional") {
		t.Errorf("unknown prior: error %v", err)
	}
	s := nn.NewStore(gotch.CPU)
	defer s.Close()
	c := glowConfig(1, 1, 4)
	c.Prior = "per_element"
	if _, err := NewGlow(s.Root(), c, []int64{3, 8, 8}); err == nil || !strings.Contains(err.Error(), `model.glow.prior: unknown value "per_element"`) {
		t.Errorf("prior per_element: error %v", err)
	}
}
