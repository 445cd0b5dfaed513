package nvae

import (
	"fmt"

	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch/ts"
)

// NVAE's layer constants (neural_operations.py).
const (
	// BNMomentum is the batch norms' running-statistics momentum:
	// running ← (1−m)·running + m·batch, with the unbiased batch variance.
	BNMomentum = 0.05
	// BNEps is the batch norms' ε.
	BNEps = 1e-5
	// weightNormEps keeps v/‖v‖ finite: w = g·v/(‖v‖ + 1e-5).
	weightNormEps = 1e-5
	// logNormInitEps: log g starts at log(‖v‖ + 1e-2), so w ≈ v at first.
	logNormInitEps = 1e-2
	// residualScale multiplies a cell's branch: out = skip(x) + 0.1·f(x).
	residualScale = 0.1
)

// ConvOptions configure a Conv. The zero value is NVAE's Conv2D default:
// stride 1, no padding, one group, no bias, weight-normalised.
type ConvOptions struct {
	Stride, Padding, Groups int64
	Bias                    bool
	// NoWeightNorm uses the raw weight (NVAE's weight_norm=False: the
	// convolutions of the inverted residuals, each followed by a batch norm).
	NoWeightNorm bool
}

// Conv is NVAE's Conv2D: a k×k convolution whose weight is
// w_o = exp(log_g_o)·v_o/(‖v_o‖ + 1e-5) for each output channel o, with v
// the raw weight ("weight", PyTorch's init), log_g the "log_weight_norm"
// parameter (out, 1, 1, 1) started at log(‖v_o‖ + 1e-2), and an optional
// "bias". NVAE's data-dependent init (data_init=True) is used only by its
// ELU convolutions, which the res_mbconv cells here do not have, so it is
// not implemented.
type Conv struct {
	*nn.Conv2d            // W is v, the raw weight; B the bias or nil
	LogNorm    *ts.Tensor // log g, (out, 1, 1, 1); nil without weight norm
}

// NewConv registers a k×k convolution from in to out channels under p.
func NewConv(p nn.Path, in, out, k int64, o ConvOptions) (c *Conv, err error) {
	defer nn.Recover(&err)
	if o.Stride == 0 {
		o.Stride = 1
	}
	if o.Groups == 0 {
		o.Groups = 1
	}
	if o.Stride < 0 || o.Padding < 0 || o.Groups < 0 {
		return nil, fmt.Errorf("nvae: conv stride, padding and groups must not be negative, got %d, %d, %d", o.Stride, o.Padding, o.Groups)
	}
	conv, err := nn.NewConv2d(p, in, out, k, nn.ConvOptions{Stride: o.Stride, Padding: o.Padding, Groups: o.Groups, NoBias: !o.Bias})
	if err != nil {
		return nil, fmt.Errorf("nvae: %w", err)
	}
	c = &Conv{Conv2d: conv}
	if o.NoWeightNorm {
		return c, nil
	}
	sc := ts.NewScope()
	defer sc.Close()
	var logNorm *ts.Tensor
	ts.NoGrad(func() {
		logNorm = channelNorms(conv.W).MustAddScalar(ts.FloatScalar(logNormInitEps), true).MustLog(true)
	})
	if c.LogNorm, err = p.Param("log_weight_norm", logNorm); err != nil {
		return nil, err
	}
	return c, nil
}

// channelNorms is ‖v_o‖ over dims 1–3, kept as (out, 1, 1, 1).
func channelNorms(v *ts.Tensor) *ts.Tensor {
	return v.MustSquare(false).MustSumDimIntlist([]int64{1, 2, 3}, true, v.DType(), true).MustSqrt(true)
}

// Weight is the weight the convolution applies: the normalised
// exp(log g)·v/(‖v‖ + 1e-5), a new differentiable tensor, or v itself
// without weight norm. It is what NVAE's spectral regulariser bounds
// (weight_normalized).
func (c *Conv) Weight() *ts.Tensor {
	if c.LogNorm == nil {
		return c.W
	}
	den := channelNorms(c.W).MustAddScalar(ts.FloatScalar(weightNormEps), true)
	return c.LogNorm.MustExp(false).MustMul(c.W, true).MustDiv(den, true)
}

// Forward convolves x (N, in, H, W).
func (c *Conv) Forward(x *ts.Tensor) *ts.Tensor {
	if c.LogNorm == nil {
		return c.Conv2d.Forward(x)
	}
	return c.ForwardWith(x, c.Weight())
}

// BatchNorm is torch.nn.BatchNorm2d with NVAE's momentum 0.05 and ε 1e-5:
// the parameters and buffers of nn.BatchNorm2d ("weight", "bias",
// "running_mean", "running_var"; no num_batches_tracked) with its own
// Forward, since nn's uses PyTorch's default momentum 0.1.
type BatchNorm struct {
	*nn.BatchNorm2d
	Momentum, Eps float64
}

// NewBatchNorm registers a batch norm over c channels under p.
func NewBatchNorm(p nn.Path, c int64) (*BatchNorm, error) {
	b, err := nn.NewBatchNorm2d(p, c)
	if err != nil {
		return nil, fmt.Errorf("nvae: %w", err)
	}
	return &BatchNorm{BatchNorm2d: b, Momentum: BNMomentum, Eps: BNEps}, nil
}

// Forward normalises x (N, C, H, W): with the batch statistics, moving
// the running ones by Momentum, while Training; with the running ones
// otherwise; over the global batch while nn.SetBatchNormSync is set
// (distributed.sync_batchnorm), as NVlabs' SyncBatchNormSwish.
func (b *BatchNorm) Forward(x *ts.Tensor) *ts.Tensor {
	return nn.BatchNorm(x, b.W, b.B, b.RunningMean, b.RunningVar, b.Training, b.Momentum, b.Eps)
}

// Swish is x·sigmoid(x) (SiLU).
func Swish(x *ts.Tensor) *ts.Tensor { return x.MustSilu(false) }

// SE is squeeze-and-excitation: x·σ(W₂·relu(W₁·mean_{H,W}(x) + b₁) + b₂),
// with max(C/16, 4) hidden units. Its linears are "se.0" and "se.2", as in
// NVAE's nn.Sequential.
type SE struct {
	FC1, FC2 *nn.Linear
}

// NewSE registers the excitation of c channels under p.
func NewSE(p nn.Path, c int64) (s *SE, err error) {
	if c <= 0 {
		return nil, fmt.Errorf("nvae: SE needs a positive channel count, got %d", c)
	}
	hidden := max(c/16, 4)
	s = &SE{}
	if s.FC1, err = nn.NewLinear(p.Sub("se").Sub("0"), c, hidden); err != nil {
		return nil, fmt.Errorf("nvae: %w", err)
	}
	if s.FC2, err = nn.NewLinear(p.Sub("se").Sub("2"), hidden, c); err != nil {
		return nil, fmt.Errorf("nvae: %w", err)
	}
	return s, nil
}

// Gate is the per-channel factor in (0, 1), shaped (N, C, 1, 1).
func (s *SE) Gate(x *ts.Tensor) *ts.Tensor {
	m := x.MustMeanDim([]int64{2, 3}, false, x.DType(), false)
	g := s.FC2.Forward(s.FC1.Forward(m).MustRelu(true)).MustSigmoid(true)
	return g.MustUnsqueeze(-1, true).MustUnsqueeze(-1, true)
}

// Forward rescales the channels of x (N, C, H, W).
func (s *SE) Forward(x *ts.Tensor) *ts.Tensor { return x.MustMul(s.Gate(x), false) }

// FactorizedReduce is the skip of a down cell: swish, then four 1×1
// stride-2 weight-normalised convolutions (with bias) of x, x shifted by
// one row and column, by one column and by one row, concatenated to out
// channels (out/4 each, the last takes the rest). H and W must be even.
type FactorizedReduce struct {
	Convs [4]*Conv // "conv_1" … "conv_4"
}

// NewFactorizedReduce registers the four convolutions under p.
func NewFactorizedReduce(p nn.Path, in, out int64) (*FactorizedReduce, error) {
	if out < 4 || out%2 != 0 {
		return nil, fmt.Errorf("nvae: FactorizedReduce needs an even output channel count of at least 4, got %d", out)
	}
	f := &FactorizedReduce{}
	for i := range f.Convs {
		n := out / 4
		if i == 3 {
			n = out - 3*(out/4)
		}
		c, err := NewConv(p.Subf("conv_%d", i+1), in, n, 1, ConvOptions{Stride: 2, Bias: true})
		if err != nil {
			return nil, err
		}
		f.Convs[i] = c
	}
	return f, nil
}

// Forward maps (N, in, H, W) to (N, out, H/2, W/2).
func (f *FactorizedReduce) Forward(x *ts.Tensor) *ts.Tensor {
	a := Swish(x)
	sz := a.MustSize()
	h, w := sz[2], sz[3]
	parts := []*ts.Tensor{
		f.Convs[0].Forward(a),
		f.Convs[1].Forward(a.MustNarrow(2, 1, h-1, false).MustNarrow(3, 1, w-1, true)),
		f.Convs[2].Forward(a.MustNarrow(3, 1, w-1, false)),
		f.Convs[3].Forward(a.MustNarrow(2, 1, h-1, false)),
	}
	return ts.MustCat(parts, 1)
}

func (f *FactorizedReduce) convs() []*Conv      { return f.Convs[:] }
func (f *FactorizedReduce) norms() []*BatchNorm { return nil }

// upSkip is the skip of an up cell: bilinear ×2 (align_corners=True),
// then a weight-normalised 1×1 convolution without bias ("1", after
// NVAE's parameter-free UpSample at index 0).
type upSkip struct{ conv *Conv }

func (u *upSkip) Forward(x *ts.Tensor) *ts.Tensor {
	return u.conv.Forward(upsample(x, true))
}
func (u *upSkip) convs() []*Conv      { return []*Conv{u.conv} }
func (u *upSkip) norms() []*BatchNorm { return nil }

// upsample doubles H and W: bilinear with align_corners (NVAE's UpSample)
// or nearest (F.interpolate's default and nn.UpsamplingNearest2d).
func upsample(x *ts.Tensor, bilinear bool) *ts.Tensor {
	sz := x.MustSize()
	out := []int64{2 * sz[2], 2 * sz[3]}
	if bilinear {
		return x.MustUpsampleBilinear2d(out, true, nil, nil, false)
	}
	return x.MustUpsampleNearest2d(out, []float64{2}, []float64{2}, false)
}

// BNSwishConv is NVAE's res_bnswish op: BN → swish → (nearest ×2 when
// Upsample) → weight-normalised k×k conv with bias. Names: "bn_act",
// "conv_0".
type BNSwishConv struct {
	BN       *BatchNorm
	Conv     *Conv
	Upsample bool
}

func newBNSwishConv(p nn.Path, in, out, k, stride int64) (b *BNSwishConv, err error) {
	b = &BNSwishConv{Upsample: stride == -1}
	if b.BN, err = NewBatchNorm(p.Sub("bn_act"), in); err != nil {
		return nil, err
	}
	if b.Conv, err = NewConv(p.Sub("conv_0"), in, out, k, ConvOptions{Stride: max(stride, 1), Padding: k / 2, Bias: true}); err != nil {
		return nil, err
	}
	return b, nil
}

// Forward applies the op to x (N, in, H, W).
func (b *BNSwishConv) Forward(x *ts.Tensor) *ts.Tensor {
	h := b.BN.Forward(x).MustSilu(true)
	if b.Upsample {
		h = upsample(h, false)
	}
	return b.Conv.Forward(h)
}

func (b *BNSwishConv) convs() []*Conv      { return []*Conv{b.Conv} }
func (b *BNSwishConv) norms() []*BatchNorm { return []*BatchNorm{b.BN} }

// ConvBNSwish is conv (no bias, no weight norm) → BN → swish, as
// "conv.0" and "conv.1" (NVAE's ConvBNSwish).
type ConvBNSwish struct {
	Conv *Conv
	BN   *BatchNorm
}

func newConvBNSwish(p nn.Path, in, out, k, groups int64) (c *ConvBNSwish, err error) {
	c = &ConvBNSwish{}
	if c.Conv, err = NewConv(p.Sub("conv").Sub("0"), in, out, k, ConvOptions{Padding: (k - 1) / 2, Groups: groups, NoWeightNorm: true}); err != nil {
		return nil, err
	}
	if c.BN, err = NewBatchNorm(p.Sub("conv").Sub("1"), out); err != nil {
		return nil, err
	}
	return c, nil
}

// Forward applies the op to x.
func (c *ConvBNSwish) Forward(x *ts.Tensor) *ts.Tensor {
	return c.BN.Forward(c.Conv.Forward(x)).MustSilu(true)
}

// InvertedResidual is NVAE's mconv_e{ex}k5g0 op: (nearest ×2 when
// Upsample) → BN → 1×1 conv to ex·in channels → BN → swish → depthwise
// k×k conv → BN → swish → 1×1 conv to out → BN. Its layers are
// "conv.<i>" as in NVAE's nn.Sequential, counting the upsampling as index
// 0 when present; the two lone batch norms sit one level deeper
// ("conv.<i>.bn", NVAE's SyncBatchNorm wrapper), and the convolutions
// have neither bias nor weight norm.
type InvertedResidual struct {
	Upsample  bool
	BNIn      *BatchNorm
	Expand    *ConvBNSwish
	Depthwise *ConvBNSwish
	Project   *Conv
	BNOut     *BatchNorm
	Hidden    int64
}

func newInvertedResidual(p nn.Path, in, out, expand, k int64, up bool) (r *InvertedResidual, err error) {
	r = &InvertedResidual{Upsample: up, Hidden: in * expand}
	i := 0
	if up {
		i = 1
	}
	q := p.Sub("conv")
	if r.BNIn, err = NewBatchNorm(q.Subf("%d", i).Sub("bn"), in); err != nil {
		return nil, err
	}
	if r.Expand, err = newConvBNSwish(q.Subf("%d", i+1), in, r.Hidden, 1, 1); err != nil {
		return nil, err
	}
	if r.Depthwise, err = newConvBNSwish(q.Subf("%d", i+2), r.Hidden, r.Hidden, k, r.Hidden); err != nil {
		return nil, err
	}
	if r.Project, err = NewConv(q.Subf("%d", i+3), r.Hidden, out, 1, ConvOptions{NoWeightNorm: true}); err != nil {
		return nil, err
	}
	if r.BNOut, err = NewBatchNorm(q.Subf("%d", i+4).Sub("bn"), out); err != nil {
		return nil, err
	}
	return r, nil
}

// Forward applies the op to x (N, in, H, W).
func (r *InvertedResidual) Forward(x *ts.Tensor) *ts.Tensor {
	h := x
	if r.Upsample {
		h = upsample(x, false)
	}
	h = r.Expand.Forward(r.BNIn.Forward(h))
	h = r.Depthwise.Forward(h)
	return r.BNOut.Forward(r.Project.Forward(h))
}

func (r *InvertedResidual) convs() []*Conv {
	return []*Conv{r.Expand.Conv, r.Depthwise.Conv, r.Project}
}
func (r *InvertedResidual) norms() []*BatchNorm {
	return []*BatchNorm{r.BNIn, r.Expand.BN, r.Depthwise.BN, r.BNOut}
}
