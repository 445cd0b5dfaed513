package flows

import (
	"fmt"

	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Level is one scale of a multi-scale flow: its layers in data→latent
// order, then (except at the last level) a Split that factors out half of
// the channels as a latent.
type Level struct {
	Layers []Layer
	Split  *Split
}

// MultiScale is the multi-scale architecture shared by RealNVP and Glow
// (Dinh et al. 2017): an optional preprocessing layer, then levels that
// each transform, squeeze and factor out half of the channels, and a prior
// for the last level's output. Its latents are the factored-out parts, in
// level order, then the top.
type MultiScale struct {
	Shape   []int64   // (C,H,W) of the data
	ZShapes [][]int64 // (C,H,W) of each latent, in Forward's order
	Pre     Layer     // applied to the data first (RealNVP's logit), or nil
	Levels  []*Level
	Top     Prior
	device  gotch.Device
}

// Dims is C·H·W, the D of bits/dim.
func (m *MultiScale) Dims() int64 { return m.Shape[0] * m.Shape[1] * m.Shape[2] }

// Device is where the parameters live.
func (m *MultiScale) Device() gotch.Device { return m.device }

// CheckInput returns an error unless x is (N,C,H,W) with the model's C,H,W.
func (m *MultiScale) CheckInput(x *ts.Tensor) error {
	if x == nil {
		return fmt.Errorf("flows: nil input")
	}
	s, err := x.Size()
	if err != nil {
		return fmt.Errorf("flows: %w", err)
	}
	if len(s) != 4 || s[0] < 1 || s[1] != m.Shape[0] || s[2] != m.Shape[1] || s[3] != m.Shape[2] {
		return fmt.Errorf("flows: the model was built for (N,%d,%d,%d) images, got a tensor of shape %v", m.Shape[0], m.Shape[1], m.Shape[2], s)
	}
	return nil
}

// initZShapes walks the levels' shapes: a squeeze ×4 channels and /2
// space, a split keeps ⌈C/2⌉ channels.
func (m *MultiScale) initZShapes() {
	c, h, w := m.Shape[0], m.Shape[1], m.Shape[2]
	m.ZShapes = nil
	for _, l := range m.Levels {
		for _, layer := range l.Layers {
			if _, ok := layer.(SqueezeLayer); ok {
				c, h, w = 4*c, h/2, w/2
			}
		}
		if l.Split != nil {
			kept, out := l.Split.Sizes()
			m.ZShapes = append(m.ZShapes, []int64{out, h, w})
			c = kept
		}
	}
	m.ZShapes = append(m.ZShapes, []int64{c, h, w})
}

// forward returns the latents, the summed log-determinant and the summed
// log-prior; with pre false, x is already preprocessed (Pre is skipped).
func (m *MultiScale) forward(x *ts.Tensor, pre bool) (zs []*ts.Tensor, logdet, logprior *ts.Tensor) {
	n := x.MustSize()[0]
	h := x
	logdet = zerosN(n, x)
	logprior = zerosN(n, x)
	if pre && m.Pre != nil {
		var ld *ts.Tensor
		h, ld = m.Pre.Forward(h)
		logdet = logdet.MustAdd(ld, true)
	}
	for _, l := range m.Levels {
		for _, layer := range l.Layers {
			var ld *ts.Tensor
			h, ld = layer.Forward(h)
			logdet = logdet.MustAdd(ld, true)
		}
		if l.Split != nil {
			var z2, lp *ts.Tensor
			h, z2, lp = l.Split.Forward(h)
			zs = append(zs, z2)
			logprior = logprior.MustAdd(lp, true)
		}
	}
	zs = append(zs, h)
	return zs, logdet, logprior.MustAdd(m.Top.LogProb(h), true)
}

// Forward maps data x (N,C,H,W) to its latents and returns
// log|det ∂z/∂x| per sample.
func (m *MultiScale) Forward(x *ts.Tensor) (zs []*ts.Tensor, logdet *ts.Tensor, err error) {
	if err := m.CheckInput(x); err != nil {
		return nil, nil, err
	}
	defer nn.Recover(&err)
	zs, logdet, _ = m.forward(x, true)
	return zs, logdet, nil
}

// LogProb is log p(x) per sample in nats, the density of x in the space
// the flow sees (for RealNVP: data in [0,1] before the logit).
func (m *MultiScale) LogProb(x *ts.Tensor) (lp *ts.Tensor, err error) {
	if err := m.CheckInput(x); err != nil {
		return nil, err
	}
	defer nn.Recover(&err)
	_, logdet, logprior := m.forward(x, true)
	return logprior.MustAdd(logdet, true), nil
}

// Preprocess applies Pre (RealNVP's logit; the identity when Pre is nil):
// data → the space the levels model, with log|det ∂y/∂x| per sample.
func (m *MultiScale) Preprocess(x *ts.Tensor) (y, logdet *ts.Tensor, err error) {
	if err := m.CheckInput(x); err != nil {
		return nil, nil, err
	}
	defer nn.Recover(&err)
	if m.Pre == nil {
		return x.MustShallowClone(), zerosN(x.MustSize()[0], x), nil
	}
	y, logdet = m.Pre.Forward(x)
	return y, logdet, nil
}

// LogProbPreprocessed is log p(y) per sample in nats for y = Pre(x): the
// density of the levels and prior, without Pre's log-det. LogProb(x) =
// LogProbPreprocessed(Pre(x)) + Pre's log-det.
func (m *MultiScale) LogProbPreprocessed(y *ts.Tensor) (lp *ts.Tensor, err error) {
	if err := m.CheckInput(y); err != nil {
		return nil, err
	}
	defer nn.Recover(&err)
	_, logdet, logprior := m.forward(y, false)
	return logprior.MustAdd(logdet, true), nil
}

// inverse runs the flow backwards from the top latent; z2 supplies each
// factored-out latent given the kept part, from the last split down.
func (m *MultiScale) inverse(top *ts.Tensor, z2 func(level int, z1 *ts.Tensor) *ts.Tensor) (x, logdet *ts.Tensor) {
	h := top
	logdet = zerosN(top.MustSize()[0], top)
	for i := len(m.Levels) - 1; i >= 0; i-- {
		l := m.Levels[i]
		if l.Split != nil {
			h = l.Split.Inverse(h, z2(i, h))
		}
		for j := len(l.Layers) - 1; j >= 0; j-- {
			var ld *ts.Tensor
			h, ld = l.Layers[j].Inverse(h)
			logdet = logdet.MustAdd(ld, true)
		}
	}
	if m.Pre != nil {
		var ld *ts.Tensor
		h, ld = m.Pre.Inverse(h)
		logdet = logdet.MustAdd(ld, true)
	}
	return h, logdet
}

// Inverse maps latents (as returned by Forward) back to data and returns
// log|det ∂x/∂z| per sample.
func (m *MultiScale) Inverse(zs []*ts.Tensor) (x, logdet *ts.Tensor, err error) {
	if len(zs) != len(m.ZShapes) {
		return nil, nil, fmt.Errorf("flows: Inverse needs %d latents (shapes %v), got %d", len(m.ZShapes), m.ZShapes, len(zs))
	}
	var n int64 = -1
	for i, z := range zs {
		s, err := z.Size()
		if err != nil {
			return nil, nil, fmt.Errorf("flows: latent %d: %w", i, err)
		}
		want := m.ZShapes[i]
		if len(s) != 4 || s[1] != want[0] || s[2] != want[1] || s[3] != want[2] || (n >= 0 && s[0] != n) {
			return nil, nil, fmt.Errorf("flows: latent %d has shape %v, want (N,%d,%d,%d) with the same N for all latents", i, s, want[0], want[1], want[2])
		}
		n = s[0]
	}
	defer nn.Recover(&err)
	split := 0
	splitOf := map[int]int{}
	for i, l := range m.Levels {
		if l.Split != nil {
			splitOf[i] = split
			split++
		}
	}
	x, logdet = m.inverse(zs[len(zs)-1], func(level int, _ *ts.Tensor) *ts.Tensor { return zs[splitOf[level]] })
	return x, logdet, nil
}

// Sample draws n samples at the given temperature (the standard deviation
// of every prior is multiplied by it; 1 samples the model).
func (m *MultiScale) Sample(n int64, temperature float64) (x *ts.Tensor, err error) {
	if n <= 0 {
		return nil, fmt.Errorf("flows: cannot draw %d samples", n)
	}
	if !(temperature > 0) {
		return nil, fmt.Errorf("flows: sampling temperature must be positive, got %g", temperature)
	}
	defer nn.Recover(&err)
	top := m.Top.Sample(n, temperature)
	x, _ = m.inverse(top, func(level int, z1 *ts.Tensor) *ts.Tensor {
		return m.Levels[level].Split.Sample(z1, temperature)
	})
	return x, nil
}

// trainer is a layer or network with batch statistics.
type trainer interface{ SetTraining(on bool) }

// SetTraining switches batch norms (RealNVP's coupling networks) between
// batch statistics (training) and running statistics (evaluation).
func (m *MultiScale) SetTraining(on bool) {
	for _, l := range m.Levels {
		for _, layer := range l.Layers {
			if t, ok := layer.(trainer); ok {
				t.SetTraining(on)
			}
		}
	}
}

// SetTraining forwards to the coupling network when it has batch norms.
func (a *AffineCoupling) SetTraining(on bool) {
	if t, ok := a.Net.(trainer); ok {
		t.SetTraining(on)
	}
}
