package nn

import (
	"math"

	"github.com/sugarme/gotch/ts"
)

// Linear is y = x·Wᵀ + b, with W of shape (out, in), initialised as
// torch.nn.Linear.
type Linear struct {
	W, B    *ts.Tensor // B is nil without bias
	In, Out int64
}

// LinearOptions tune a Linear layer.
type LinearOptions struct {
	NoBias bool
	// ZeroInit zero-initialises W and b, so the layer starts at 0 (the last
	// layer of coupling nets, to start flows at the identity).
	ZeroInit bool
}

// NewLinear registers weight and bias under p.
func NewLinear(p Path, in, out int64, opts ...LinearOptions) (l *Linear, err error) {
	defer Recover(&err)
	var o LinearOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	if err := positive("Linear sizes", in, out); err != nil {
		return nil, err
	}
	sc := ts.NewScope()
	defer sc.Close()
	bound := 1 / math.Sqrt(float64(in)) // kaiming_uniform(a=√5) = 1/√fan_in
	var w, b *ts.Tensor
	if o.ZeroInit {
		w = Zeros([]int64{out, in}, p.Device())
	} else {
		w = Uniform([]int64{out, in}, bound, p.Device())
	}
	l = &Linear{In: in, Out: out}
	if l.W, err = p.Param("weight", w); err != nil {
		return nil, err
	}
	if !o.NoBias {
		if o.ZeroInit {
			b = Zeros([]int64{out}, p.Device())
		} else {
			b = Uniform([]int64{out}, bound, p.Device())
		}
		if l.B, err = p.Param("bias", b); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// Forward applies the layer to x of shape (..., in).
func (l *Linear) Forward(x *ts.Tensor) *ts.Tensor {
	b := l.B
	if b == nil {
		b = ts.None
	}
	return ts.MustLinear(x, l.W, b)
}
