package nn

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch/ts"
)

// ConvOptions configure Conv2d and ConvTranspose2d. Zero values mean
// stride 1, padding 0, dilation 1, groups 1, with bias.
type ConvOptions struct {
	Stride, Padding, Dilation, Groups, OutputPadding int64
	NoBias                                           bool
	ZeroInit                                         bool
	// NativeBackward (ConvTranspose2d only) backpropagates through
	// libtorch's own transposed-convolution kernels instead of the oneDNN
	// convolutions (see ConvTranspose2d.Forward): an ablation for
	// benchmarks and parity checks; training has no reason to set it.
	NativeBackward bool
}

func (o ConvOptions) norm() ConvOptions {
	if o.Stride == 0 {
		o.Stride = 1
	}
	if o.Dilation == 0 {
		o.Dilation = 1
	}
	if o.Groups == 0 {
		o.Groups = 1
	}
	return o
}

// ConvLayer is what both convolutions hold: weight, bias (nil without),
// channels, kernel size and options.
type ConvLayer struct {
	W, B    *ts.Tensor
	In, Out int64
	Kernel  int64
	Opts    ConvOptions
}

// newConvLayer registers the parameters of a k×k convolution (transposed
// or not) under p.
func newConvLayer(p Path, what string, in, out, k int64, opts []ConvOptions, transposed bool) (ConvLayer, error) {
	o, w, b, err := newConvParams(p, what, in, out, k, opts, transposed)
	return ConvLayer{W: w, B: b, In: in, Out: out, Kernel: k, Opts: o}, err
}

// Conv2d is a 2D convolution over NCHW input, initialised as torch.nn.Conv2d.
type Conv2d struct{ ConvLayer }

// NewConv2d registers a k×k convolution from in to out channels under p.
func NewConv2d(p Path, in, out, k int64, opts ...ConvOptions) (*Conv2d, error) {
	l, err := newConvLayer(p, "Conv2d", in, out, k, opts, false)
	if err != nil {
		return nil, err
	}
	return &Conv2d{l}, nil
}

// newConvParams validates a convolution and registers its weight and bias,
// initialised as PyTorch does. A transposed convolution's weight is
// (in, out/groups, k, k) and PyTorch takes its fan_in from dimension 1.
func newConvParams(p Path, what string, in, out, k int64, opts []ConvOptions, transposed bool) (o ConvOptions, w, b *ts.Tensor, err error) {
	defer Recover(&err)
	if len(opts) > 0 {
		o = opts[0]
	}
	o = o.norm()
	if err := positive(what+" channels and kernel", in, out, k); err != nil {
		return o, nil, nil, err
	}
	if in%o.Groups != 0 || out%o.Groups != 0 {
		return o, nil, nil, fmt.Errorf("nn: %s channels %d→%d are not divisible by groups %d", what, in, out, o.Groups)
	}
	sc := ts.NewScope()
	defer sc.Close()
	wshape, fanIn := []int64{out, in / o.Groups, k, k}, in/o.Groups*k*k
	if transposed {
		wshape, fanIn = []int64{in, out / o.Groups, k, k}, out/o.Groups*k*k
	}
	w0, b0 := convInit(wshape, out, fanIn, o, p)
	if w, err = p.Param("weight", w0); err != nil {
		return o, nil, nil, err
	}
	if b0 != nil {
		if b, err = p.Param("bias", b0); err != nil {
			return o, nil, nil, err
		}
	}
	return o, w, b, nil
}

func convInit(wshape []int64, nbias, fanIn int64, o ConvOptions, p Path) (w, b *ts.Tensor) {
	bound := 1 / math.Sqrt(float64(fanIn))
	if o.ZeroInit {
		w = Zeros(wshape, p.Device())
	} else {
		w = Uniform(wshape, bound, p.Device())
	}
	if !o.NoBias {
		if o.ZeroInit {
			b = Zeros([]int64{nbias}, p.Device())
		} else {
			b = Uniform([]int64{nbias}, bound, p.Device())
		}
	}
	return w, b
}

// Forward convolves x (N, in, H, W).
func (c *Conv2d) Forward(x *ts.Tensor) *ts.Tensor {
	return c.ForwardWith(x, c.W)
}

// ForwardWith convolves with another weight of the same shape (weight norm).
func (c *Conv2d) ForwardWith(x, w *ts.Tensor) *ts.Tensor {
	b := c.B
	if b == nil {
		b = ts.None
	}
	o := c.Opts
	return ts.MustConv2d(x, w, b, []int64{o.Stride, o.Stride}, []int64{o.Padding, o.Padding}, []int64{o.Dilation, o.Dilation}, o.Groups)
}

// ConvTranspose2d is a transposed convolution, initialised as
// torch.nn.ConvTranspose2d (weight shape (in, out/groups, k, k), whose
// fan_in PyTorch takes from dimension 1).
type ConvTranspose2d struct{ ConvLayer }

// NewConvTranspose2d registers a k×k transposed convolution under p.
func NewConvTranspose2d(p Path, in, out, k int64, opts ...ConvOptions) (*ConvTranspose2d, error) {
	l, err := newConvLayer(p, "ConvTranspose2d", in, out, k, opts, true)
	if err != nil {
		return nil, err
	}
	return &ConvTranspose2d{l}, nil
}

// Forward applies the transposed convolution to x (N, in, H, W). On CPU
// float32 the backward runs as two oneDNN convolutions (input gradient
// conv2d(g, W), weight gradient of that convolution) rather than libtorch
// 1.13's im2col path. On the Table 4 decoder that backward is about 1.5×
// faster (bench/convt_kernels.py); values agree to float rounding, and the
// double backward HVAE needs still works. Opts.NativeBackward keeps
// libtorch's own backward.
func (c *ConvTranspose2d) Forward(x *ts.Tensor) *ts.Tensor {
	b := c.B
	if b == nil {
		b = ts.None
	}
	o := c.Opts
	y, err := ts.ConvTranspose2dFast(x, c.W, b, []int64{o.Stride, o.Stride}, []int64{o.Padding, o.Padding}, []int64{o.OutputPadding, o.OutputPadding}, o.Groups, []int64{o.Dilation, o.Dilation}, o.NativeBackward)
	if err != nil {
		panic(err)
	}
	return y
}
