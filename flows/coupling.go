package flows

import (
	"fmt"
	"math"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch/ts"
)

// Partition says which elements an affine coupling conditions on.
type Partition int

const (
	// PartitionChannel conditions on the first ⌈C/2⌉ channels (parity 0)
	// or the last ⌊C/2⌋ (parity 1) and transforms the others; the network
	// sees only the conditioning channels.
	PartitionChannel Partition = iota
	// PartitionCheckerboard conditions on the pixels where (i+j)%2 ==
	// parity, in every channel; the network sees x·mask.
	PartitionCheckerboard
)

// Scale is how a coupling turns the network's raw output into the scale s
// of z = (x − shift)·s.
type Scale int

const (
	// ScaleSigmoid is Glow's s = sigmoid(raw + 2), floored at
	// SigmoidScaleFloor in both directions so that sampling cannot divide
	// by a vanishing scale (normflows issue #67).
	ScaleSigmoid Scale = iota
	// ScaleTanhExp is RealNVP's s = exp(c·tanh(raw)), with a learned
	// per-channel c (initialised to 1), which bounds |log s| by |c|.
	ScaleTanhExp
)

// SigmoidScaleFloor bounds the sigmoid scale from below: log s ≥ log(1e-4),
// so the inverse amplifies by at most 1e4 per coupling. A trained model
// never goes near it (it would cost ≥ 9.2 nats per element).
const SigmoidScaleFloor = 1e-4

// ParseScale reads config.GlowScaleSigmoid or config.GlowScaleExp
// (model.glow.scale).
func ParseScale(s string) (Scale, error) {
	switch s {
	case config.GlowScaleSigmoid:
		return ScaleSigmoid, nil
	case config.GlowScaleExp:
		return ScaleTanhExp, nil
	}
	return 0, fmt.Errorf("flows: unknown coupling scale %q (want %s or %s)", s, config.GlowScaleSigmoid, config.GlowScaleExp)
}

// ParsePartition reads config.GlowSplitChannel or
// config.GlowSplitCheckerboard (model.glow.split).
func ParsePartition(s string) (Partition, error) {
	switch s {
	case config.GlowSplitChannel:
		return PartitionChannel, nil
	case config.GlowSplitCheckerboard:
		return PartitionCheckerboard, nil
	}
	return 0, fmt.Errorf("flows: unknown coupling partition %q (want %s or %s)", s, config.GlowSplitChannel, config.GlowSplitCheckerboard)
}

// Net maps the conditioning part of x to 2·k channels: shift in the even
// channels, raw scale in the odd ones (normflows' and Glow's layout).
type Net interface {
	Forward(x *ts.Tensor) *ts.Tensor
}

// AffineCoupling transforms part of x given the rest:
// z_t = (x_t − shift(x_c))·s(x_c), log|det| = Σ log s over the
// transformed elements; the conditioning part passes through.
type AffineCoupling struct {
	C         int64
	Partition Partition
	Parity    int
	Scale     Scale
	Net       Net
	ScaleC    *ts.Tensor // (1,k,1,1), the c of ScaleTanhExp; nil for sigmoid
}

// NetBuilder makes a coupling network from in to out channels under p.
type NetBuilder func(p nn.Path, in, out int64) (Net, error)

// NewAffineCoupling builds a coupling on c channels; the network (from
// newNet, under p.Sub("net")) must start at zero output so that the
// coupling starts as the identity (sigmoid: the identity up to the
// constant scale sigmoid(2)).
func NewAffineCoupling(p nn.Path, c int64, part Partition, parity int, scale Scale, newNet NetBuilder) (a *AffineCoupling, err error) {
	defer nn.Recover(&err)
	if c <= 0 {
		return nil, fmt.Errorf("flows: coupling needs a positive channel count, got %d", c)
	}
	in, out := c, c
	if part == PartitionChannel {
		if c < 2 {
			return nil, fmt.Errorf("flows: a channel-wise coupling needs at least 2 channels, got %d (use a checkerboard coupling or squeeze first)", c)
		}
		cc, ct := channelSizes(c, parity)
		in, out = cc, ct
	}
	a = &AffineCoupling{C: c, Partition: part, Parity: parity % 2, Scale: scale}
	if a.Net, err = newNet(p.Sub("net"), in, 2*out); err != nil {
		return nil, err
	}
	if scale == ScaleTanhExp {
		sc := ts.NewScope()
		defer sc.Close()
		if a.ScaleC, err = p.Param("scale", nn.Ones([]int64{1, out, 1, 1}, p.Device())); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// channelSizes returns (conditioning, transformed) channel counts.
func channelSizes(c int64, parity int) (cond, trans int64) {
	first := (c + 1) / 2
	if parity%2 == 0 {
		return first, c - first
	}
	return c - first, first
}

// split returns the conditioning part (what the net sees) and the part to
// transform (for checkerboard: the whole x and the mask).
func (a *AffineCoupling) split(x *ts.Tensor) (cond, trans, mask *ts.Tensor) {
	_, _, h, w := shape4(x, "AffineCoupling")
	checkChannels(x, a.C, "AffineCoupling")
	if a.Partition == PartitionCheckerboard {
		mask = CheckerboardMask(h, w, a.Parity, x.MustDevice()).MustTotype(x.DType(), true)
		return x.MustMul(mask, false), x, mask
	}
	first := (a.C + 1) / 2
	lo, hi := x.MustNarrow(1, 0, first, false), x.MustNarrow(1, first, a.C-first, false)
	if a.Parity == 0 {
		return lo, hi, nil
	}
	return hi, lo, nil
}

func (a *AffineCoupling) merge(cond, trans *ts.Tensor) *ts.Tensor {
	if a.Parity == 0 {
		return ts.MustCat([]*ts.Tensor{cond, trans}, 1)
	}
	return ts.MustCat([]*ts.Tensor{trans, cond}, 1)
}

// params returns shift and log s for the conditioning part.
func (a *AffineCoupling) params(cond *ts.Tensor) (shift, logs *ts.Tensor) {
	out := a.Net.Forward(cond)
	k := out.MustSize()[1]
	shift = out.MustSlice(1, []int64{0}, []int64{k}, 2, false)
	raw := out.MustSlice(1, []int64{1}, []int64{k}, 2, false)
	switch a.Scale {
	case ScaleSigmoid:
		logs = raw.MustAddScalar(scalar(2), false).MustLogSigmoid(true).
			MustClampMin(scalar(math.Log(SigmoidScaleFloor)), true)
	default:
		logs = raw.MustTanh(false).MustMul(a.ScaleC, true)
	}
	return shift, logs
}

// Forward maps data to latent.
func (a *AffineCoupling) Forward(x *ts.Tensor) (*ts.Tensor, *ts.Tensor) {
	cond, trans, mask := a.split(x)
	shift, logs := a.params(cond)
	if mask != nil {
		inv := oneMinus(mask, false)
		logs = logs.MustMul(inv, true)
		zt := trans.MustSub(shift, false).MustMul(logs.MustExp(false), true).MustMul(inv, true)
		return x.MustMul(mask, false).MustAdd(zt, true), sumPerSample(logs)
	}
	zt := trans.MustSub(shift, false).MustMul(logs.MustExp(false), true)
	return a.merge(cond, zt), sumPerSample(logs)
}

// Inverse maps latent to data: x_t = z_t/s + shift.
func (a *AffineCoupling) Inverse(z *ts.Tensor) (*ts.Tensor, *ts.Tensor) {
	cond, trans, mask := a.split(z)
	shift, logs := a.params(cond)
	if mask != nil {
		inv := oneMinus(mask, false)
		logs = logs.MustMul(inv, true)
		xt := trans.MustMul(logs.MustNeg(false).MustExp(true), false).MustAdd(shift, true).MustMul(inv, true)
		return z.MustMul(mask, false).MustAdd(xt, true), sumPerSample(logs).MustNeg(true)
	}
	xt := trans.MustMul(logs.MustNeg(false).MustExp(true), false).MustAdd(shift, true)
	return a.merge(cond, xt), sumPerSample(logs).MustNeg(true)
}

// GlowNet is Glow's coupling network: conv → ReLU → conv → ReLU → conv,
// with kernels 3×3, 1×1, 3×3 in Glow (config.Glow.CouplingKernels), each
// padded to keep the image size, the last one zero-initialised (names
// net.0, net.2, net.4 as in a torch Sequential).
type GlowNet struct {
	Conv1, Conv2, Conv3 *nn.Conv2d
}

// GlowNetBuilder returns a NetBuilder with the given hidden width and the
// odd kernel sizes of its three convolutions.
func GlowNetBuilder(hidden int64, kernels [3]int64) NetBuilder {
	return func(p nn.Path, in, out int64) (Net, error) {
		if hidden <= 0 {
			return nil, fmt.Errorf("flows: Glow coupling width must be positive, got %d", hidden)
		}
		for _, k := range kernels {
			if k <= 0 || k%2 == 0 {
				return nil, fmt.Errorf("flows: Glow coupling kernels must be odd and positive (to keep the image size), got %v", kernels)
			}
		}
		pad := func(k int64, zero bool) nn.ConvOptions { return nn.ConvOptions{Padding: k / 2, ZeroInit: zero} }
		n := &GlowNet{}
		var err error
		if n.Conv1, err = nn.NewConv2d(p.Sub("0"), in, hidden, kernels[0], pad(kernels[0], false)); err != nil {
			return nil, err
		}
		if n.Conv2, err = nn.NewConv2d(p.Sub("2"), hidden, hidden, kernels[1], pad(kernels[1], false)); err != nil {
			return nil, err
		}
		if n.Conv3, err = nn.NewConv2d(p.Sub("4"), hidden, out, kernels[2], pad(kernels[2], true)); err != nil {
			return nil, err
		}
		return n, nil
	}
}

// Forward runs the network.
func (n *GlowNet) Forward(x *ts.Tensor) *ts.Tensor {
	h := n.Conv1.Forward(x).MustRelu(true)
	h = n.Conv2.Forward(h).MustRelu(true)
	return n.Conv3.Forward(h)
}

// ResNet is RealNVP's coupling network: a 3×3 input conv to `mid`
// channels, pre-activation residual blocks (BN → ReLU → conv3×3 → BN →
// ReLU → conv3×3, added to the input), then BN → ReLU → a zero-initialised
// 3×3 output conv. The batch norms sit inside the network, never as a flow
// layer, so their dependence on the batch enters no log-determinant.
type ResNet struct {
	InConv  *nn.Conv2d
	Blocks  []*ResBlock
	OutBN   *nn.BatchNorm2d
	OutConv *nn.Conv2d
}

// ResBlock is one residual block of ResNet.
type ResBlock struct {
	BN1, BN2     *nn.BatchNorm2d
	Conv1, Conv2 *nn.Conv2d
}

// ResNetBuilder returns a NetBuilder with `blocks` residual blocks of
// `mid` channels.
func ResNetBuilder(mid int64, blocks int) NetBuilder {
	return func(p nn.Path, in, out int64) (Net, error) {
		if mid <= 0 || blocks <= 0 {
			return nil, fmt.Errorf("flows: ResNet coupling needs positive width and block count, got %d and %d", mid, blocks)
		}
		r := &ResNet{}
		var err error
		pad := nn.ConvOptions{Padding: 1}
		if r.InConv, err = nn.NewConv2d(p.Sub("in_conv"), in, mid, 3, pad); err != nil {
			return nil, err
		}
		for i := 0; i < blocks; i++ {
			bp := p.Subf("blocks.%d", i)
			b := &ResBlock{}
			if b.BN1, err = nn.NewBatchNorm2d(bp.Sub("bn1"), mid); err != nil {
				return nil, err
			}
			if b.Conv1, err = nn.NewConv2d(bp.Sub("conv1"), mid, mid, 3, pad); err != nil {
				return nil, err
			}
			if b.BN2, err = nn.NewBatchNorm2d(bp.Sub("bn2"), mid); err != nil {
				return nil, err
			}
			if b.Conv2, err = nn.NewConv2d(bp.Sub("conv2"), mid, mid, 3, pad); err != nil {
				return nil, err
			}
			r.Blocks = append(r.Blocks, b)
		}
		if r.OutBN, err = nn.NewBatchNorm2d(p.Sub("out_bn"), mid); err != nil {
			return nil, err
		}
		if r.OutConv, err = nn.NewConv2d(p.Sub("out_conv"), mid, out, 3, nn.ConvOptions{Padding: 1, ZeroInit: true}); err != nil {
			return nil, err
		}
		return r, nil
	}
}

// Forward runs the network.
func (r *ResNet) Forward(x *ts.Tensor) *ts.Tensor {
	h := r.InConv.Forward(x)
	for _, b := range r.Blocks {
		t := b.Conv1.Forward(b.BN1.Forward(h).MustRelu(true))
		t = b.Conv2.Forward(b.BN2.Forward(t).MustRelu(true))
		h = h.MustAdd(t, true)
	}
	return r.OutConv.Forward(r.OutBN.Forward(h).MustRelu(true))
}

// SetTraining switches the batch norms between batch and running statistics.
func (r *ResNet) SetTraining(on bool) {
	for _, b := range r.Blocks {
		b.BN1.Training, b.BN2.Training = on, on
	}
	r.OutBN.Training = on
}
