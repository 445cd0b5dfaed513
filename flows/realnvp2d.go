package flows

import (
	"fmt"
	"math"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch/ts"
)

// RealNVP2D is the REAL-NVP flow of the paper's 2D experiments (appendix
// D.3.1): affine coupling layers on R², each conditioning one coordinate on
// the other through an MLP, alternating which coordinate is transformed.
// The base distribution is a standard normal.
type RealNVP2D struct {
	Couplings []*Coupling2D
}

// Coupling2D transforms coordinate 1-Cond given coordinate Cond:
// z_b = (x_b − t(x_a))·exp(−s(x_a)). Its MLP's last layer starts at zero,
// so the flow starts as the identity.
type Coupling2D struct {
	Cond   int64
	Hidden []*nn.Linear
	Out    *nn.Linear
}

// NewRealNVP2D builds the flow with the settings c: c.Couplings coupling
// layers, each an MLP with c.Hidden() hidden ReLU layers.
func NewRealNVP2D(p nn.Path, c config.RealNVP2D) (*RealNVP2D, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("flows: RealNVP2D: %w", err)
	}
	hidden := c.Hidden()
	m := &RealNVP2D{}
	for i := 0; i < c.Couplings; i++ {
		cp := p.Subf("couplings.%d", i)
		cpl := &Coupling2D{Cond: int64(i % 2)}
		in := int64(1)
		for j, h := range hidden {
			l, err := nn.NewLinear(cp.Subf("net.%d", 2*j), in, h)
			if err != nil {
				return nil, err
			}
			cpl.Hidden = append(cpl.Hidden, l)
			in = h
		}
		out, err := nn.NewLinear(cp.Subf("net.%d", 2*len(hidden)), in, 2, nn.LinearOptions{ZeroInit: true})
		if err != nil {
			return nil, err
		}
		cpl.Out = out
		m.Couplings = append(m.Couplings, cpl)
	}
	return m, nil
}

// params returns shift t and log-scale s for the conditioning column xa.
func (c *Coupling2D) params(xa *ts.Tensor) (t, s *ts.Tensor) {
	h := xa
	for _, l := range c.Hidden {
		h = l.Forward(h).MustRelu(false)
	}
	out := c.Out.Forward(h)
	return out.MustNarrow(1, 0, 1, false), out.MustNarrow(1, 1, 1, false)
}

func (c *Coupling2D) split(x *ts.Tensor) (xa, xb *ts.Tensor) {
	return x.MustNarrow(1, c.Cond, 1, false), x.MustNarrow(1, 1-c.Cond, 1, false)
}

func (c *Coupling2D) join(a, b *ts.Tensor) *ts.Tensor {
	if c.Cond == 0 {
		return ts.MustCat([]*ts.Tensor{a, b}, 1)
	}
	return ts.MustCat([]*ts.Tensor{b, a}, 1)
}

// Forward maps x (N,2) to z and returns log|det ∂z/∂x| (N).
func (c *Coupling2D) Forward(x *ts.Tensor) (z, logdet *ts.Tensor) {
	xa, xb := c.split(x)
	t, s := c.params(xa)
	zb := xb.MustSub(t, false).MustMul(s.MustNeg(false).MustExp(true), true)
	return c.join(xa, zb), s.MustSqueezeDim(1, false).MustNeg(true)
}

// Inverse maps z back to x and returns log|det ∂x/∂z|.
func (c *Coupling2D) Inverse(z *ts.Tensor) (x, logdet *ts.Tensor) {
	za, zb := c.split(z)
	t, s := c.params(za)
	xb := zb.MustMul(s.MustExp(false), true).MustAdd(t, true)
	return c.join(za, xb), s.MustSqueezeDim(1, false)
}

// Forward maps data x (N,2) to latent z with the summed log-determinant.
func (m *RealNVP2D) Forward(x *ts.Tensor) (z, logdet *ts.Tensor) {
	z = x
	for i, c := range m.Couplings {
		var ld *ts.Tensor
		z, ld = c.Forward(z)
		if i == 0 {
			logdet = ld
		} else {
			logdet = logdet.MustAdd(ld, true)
		}
	}
	return z, logdet
}

// Inverse maps latent z to data x with the summed log-determinant.
func (m *RealNVP2D) Inverse(z *ts.Tensor) (x, logdet *ts.Tensor) {
	x = z
	for i := len(m.Couplings) - 1; i >= 0; i-- {
		var ld *ts.Tensor
		x, ld = m.Couplings[i].Inverse(x)
		if i == len(m.Couplings)-1 {
			logdet = ld
		} else {
			logdet = logdet.MustAdd(ld, true)
		}
	}
	return x, logdet
}

var log2Pi = math.Log(2 * math.Pi)

// StdNormalLogProb is log N(z; 0, I) summed over all but the batch dim.
func StdNormalLogProb(z *ts.Tensor) *ts.Tensor {
	shape := z.MustSize()
	d := int64(1)
	for _, s := range shape[1:] {
		d *= s
	}
	sq := z.MustSquare(false).MustReshape([]int64{shape[0], d}, true).MustSumDimIntlist([]int64{1}, false, z.DType(), true)
	return sq.MustMulScalar(ts.FloatScalar(-0.5), true).MustSubScalar(ts.FloatScalar(0.5*float64(d)*log2Pi), true)
}

// LogProb returns log p(x) per sample, in nats.
func (m *RealNVP2D) LogProb(x *ts.Tensor) *ts.Tensor {
	z, logdet := m.Forward(x)
	return StdNormalLogProb(z).MustAdd(logdet, true)
}

// Sample draws n points, with base temperature T scaling the latent std.
func (m *RealNVP2D) Sample(n int64, temperature float64, p nn.Path) *ts.Tensor {
	z := nn.Randn([]int64{n, 2}, p.Device())
	if temperature != 1 {
		z = z.MustMulScalar(ts.FloatScalar(temperature), true)
	}
	x, _ := m.Inverse(z)
	return x
}
