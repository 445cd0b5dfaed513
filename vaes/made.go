package vaes

import (
	"fmt"

	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch/ts"
)

// MADE is a masked autoencoder (Germain et al. 2015) with ReLU hidden
// layers and two heads, μ and s, each of the input's size. With the
// sequential degrees used here (inputs 1…D, hidden unit k of degree
// 1 + k mod (D−1)), output i depends only on inputs j < i: ∂μ/∂x and
// ∂s/∂x are strictly lower triangular.
type MADE struct {
	Hidden []*MaskedLinear
	Mu, S  *MaskedLinear
	Dim    int64
}

// MaskedLinear is a Linear layer whose weight is multiplied by a fixed 0/1
// mask (a buffer named "mask").
type MaskedLinear struct {
	*nn.Linear
	Mask *ts.Tensor
}

// Forward is x·(W⊙M)ᵀ + b.
func (l *MaskedLinear) Forward(x *ts.Tensor) *ts.Tensor {
	return ts.MustLinear(x, l.W.MustMul(l.Mask, false), l.B)
}

func newMaskedLinear(p nn.Path, in, out []int64, strict bool) (l *MaskedLinear, err error) {
	defer nn.Recover(&err)
	lin, err := nn.NewLinear(p, int64(len(in)), int64(len(out)))
	if err != nil {
		return nil, err
	}
	m := make([]float32, 0, len(in)*len(out))
	for _, o := range out {
		for _, i := range in {
			if o > i || (!strict && o == i) {
				m = append(m, 1)
			} else {
				m = append(m, 0)
			}
		}
	}
	sc := ts.NewScope()
	defer sc.Close()
	mask := ts.MustOfSlice(m).MustReshape([]int64{int64(len(out)), int64(len(in))}, true)
	l = &MaskedLinear{Linear: lin}
	if l.Mask, err = p.Buffer("mask", mask); err != nil {
		return nil, err
	}
	return l, nil
}

// NewMADE registers a MADE for dim ≥ 2 inputs with the given hidden sizes.
func NewMADE(p nn.Path, dim int64, hidden []int64) (*MADE, error) {
	if dim < 2 {
		return nil, fmt.Errorf("vaes: MADE needs at least 2 dimensions, got %d (raise the latent size)", dim)
	}
	if len(hidden) == 0 {
		return nil, fmt.Errorf("vaes: MADE needs at least one hidden layer")
	}
	deg := make([]int64, dim)
	for i := range deg {
		deg[i] = int64(i) + 1
	}
	m := &MADE{Dim: dim}
	prev := deg
	for l, h := range hidden {
		if h <= 0 {
			return nil, fmt.Errorf("vaes: MADE hidden sizes must be positive, got %v", hidden)
		}
		hd := make([]int64, h)
		for k := range hd {
			hd[k] = 1 + int64(k)%(dim-1)
		}
		ml, err := newMaskedLinear(p.Subf("hidden%d", l), prev, hd, false)
		if err != nil {
			return nil, err
		}
		m.Hidden = append(m.Hidden, ml)
		prev = hd
	}
	var err error
	if m.Mu, err = newMaskedLinear(p.Sub("mu"), prev, deg, true); err != nil {
		return nil, err
	}
	if m.S, err = newMaskedLinear(p.Sub("s"), prev, deg, true); err != nil {
		return nil, err
	}
	return m, nil
}

// Forward returns μ(x) and s(x), each shaped like x (N, dim).
func (m *MADE) Forward(x *ts.Tensor) (mu, s *ts.Tensor) {
	h := x
	for _, l := range m.Hidden {
		h = l.Forward(h).MustRelu(true)
	}
	return m.Mu.Forward(h), m.S.Forward(h)
}
