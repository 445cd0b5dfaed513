package nvae

import (
	"fmt"
	"strings"

	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch/ts"
)

// CellType is one of NVAE's eight residual cell types. The part before
// the underscore sets the stride (normal keeps H, W and C; down halves H
// and W and doubles C; up doubles H and W and halves C), the part after it
// the branch, from NVAE's default (and CIFAR-10) architecture res_mbconv:
//   - pre, enc: two BN–swish–conv 3×3 ops (res_bnswish);
//   - dec: an inverted residual with expansion 6 and a depthwise 5×5
//     (mconv_e6k5g0);
//   - post: the same with expansion 3 (mconv_e3k5g0).
type CellType string

// The cell types, named as in NVAE.
const (
	NormalPre  CellType = "normal_pre"
	DownPre    CellType = "down_pre"
	NormalEnc  CellType = "normal_enc"
	DownEnc    CellType = "down_enc"
	NormalDec  CellType = "normal_dec"
	UpDec      CellType = "up_dec"
	NormalPost CellType = "normal_post"
	UpPost     CellType = "up_post"
)

// CellTypes lists every cell type (for tables and messages).
var CellTypes = []CellType{NormalPre, DownPre, NormalEnc, DownEnc, NormalDec, UpDec, NormalPost, UpPost}

// stride is NVAE's get_stride_for_cell_type: 1, 2 (down) or −1 (up).
func (t CellType) stride() int64 {
	switch {
	case strings.HasPrefix(string(t), "down"):
		return 2
	case strings.HasPrefix(string(t), "up"):
		return -1
	}
	return 1
}

func (t CellType) valid() bool {
	switch t {
	case NormalPre, DownPre, NormalEnc, DownEnc, NormalDec, UpDec, NormalPost, UpPost:
		return true
	}
	return false
}

// OutChannels is the channel count a cell of this type maps in to.
func (t CellType) OutChannels(in int64) int64 {
	switch t.stride() {
	case 2:
		return 2 * in
	case -1:
		return in / 2
	}
	return in
}

// cellOp is one op of a cell's branch, or a skip with parameters.
type cellOp interface {
	Forward(x *ts.Tensor) *ts.Tensor
	convs() []*Conv
	norms() []*BatchNorm
}

// Cell is NVAE's residual cell: Forward(x) = Skip(x) + 0.1·Residual(x).
// The skip is the identity (normal), FactorizedReduce (down) or bilinear
// ×2 then a weight-normalised 1×1 conv (up). Parameter names follow
// NVAE's state dict below the cell's path: "skip.…", "_ops.<i>.…" and,
// with squeeze-and-excitation, "se.se.0.…" and "se.se.2.…". NVAE's dict
// also holds num_batches_tracked for each batch norm and, for each conv
// without weight norm, "weight_normalized", an alias of its "weight"; a
// loader of NVAE checkpoints drops both.
type Cell struct {
	Type    CellType
	In, Out int64
	skip    cellOp // nil: identity
	ops     []cellOp
	SE      *SE // nil without squeeze-and-excitation
}

// NewCell registers a cell of type t on in channels under p. Its output
// has t.OutChannels(in) channels; useSE adds squeeze-and-excitation at
// the end of the branch (config.NVAE.UseSE).
func NewCell(p nn.Path, t CellType, in int64, useSE bool) (c *Cell, err error) {
	defer nn.Recover(&err)
	if !t.valid() {
		return nil, fmt.Errorf("nvae: unknown cell type %q (want one of %v)", t, CellTypes)
	}
	if in <= 0 {
		return nil, fmt.Errorf("nvae: %s cell needs a positive channel count, got %d", t, in)
	}
	stride := t.stride()
	if stride == -1 && in%2 != 0 {
		return nil, fmt.Errorf("nvae: %s cell halves the channels and needs an even count, got %d", t, in)
	}
	if stride == 2 && in < 2 {
		return nil, fmt.Errorf("nvae: %s cell's FactorizedReduce needs at least 2 input channels (4 output), got %d", t, in)
	}
	c = &Cell{Type: t, In: in, Out: t.OutChannels(in)}
	wrap := func(e error) error { return fmt.Errorf("nvae: %s cell: %w", t, e) }

	// Construction order is NVAE's (skip, ops, SE), so a seed gives its
	// initial weights.
	switch stride {
	case 2:
		if c.skip, err = NewFactorizedReduce(p.Sub("skip"), in, c.Out); err != nil {
			return nil, wrap(err)
		}
	case -1:
		conv, err := NewConv(p.Sub("skip").Sub("1"), in, c.Out, 1, ConvOptions{})
		if err != nil {
			return nil, wrap(err)
		}
		c.skip = &upSkip{conv: conv}
	}
	ops := p.Sub("_ops")
	switch {
	case strings.HasSuffix(string(t), "_pre") || strings.HasSuffix(string(t), "_enc"):
		for i := range 2 {
			cin, s := in, stride
			if i > 0 {
				cin, s = c.Out, 1
			}
			op, err := newBNSwishConv(ops.Subf("%d", i), cin, c.Out, 3, s)
			if err != nil {
				return nil, wrap(err)
			}
			c.ops = append(c.ops, op)
		}
	default:
		expand := int64(6)
		if strings.HasSuffix(string(t), "_post") {
			expand = 3
		}
		op, err := newInvertedResidual(ops.Sub("0"), in, c.Out, expand, 5, stride == -1)
		if err != nil {
			return nil, wrap(err)
		}
		c.ops = append(c.ops, op)
	}
	if useSE {
		if c.SE, err = NewSE(p.Sub("se"), c.Out); err != nil {
			return nil, wrap(err)
		}
	}
	return c, nil
}

// Skip is the cell's skip connection applied to x (x itself for normal
// cells).
func (c *Cell) Skip(x *ts.Tensor) *ts.Tensor {
	if c.skip == nil {
		return x
	}
	return c.skip.Forward(x)
}

// Residual is the branch f(x), before its 0.1 scale. While training it
// moves the batch norms' running statistics.
func (c *Cell) Residual(x *ts.Tensor) *ts.Tensor {
	h := x
	for _, op := range c.ops {
		h = op.Forward(h)
	}
	if c.SE != nil {
		h = c.SE.Forward(h)
	}
	return h
}

// Forward maps x (N, In, H, W) to Skip(x) + 0.1·Residual(x): (N, Out, H,
// W) for normal cells, (N, Out, H/2, W/2) for down cells (H and W even)
// and (N, Out, 2H, 2W) for up cells.
func (c *Cell) Forward(x *ts.Tensor) *ts.Tensor {
	f := c.Residual(x).MustMulScalar(ts.FloatScalar(residualScale), true)
	return f.MustAdd(c.Skip(x), true) // f + skip == skip + f; x is the caller's
}

// SetTraining switches every batch norm between batch statistics (true)
// and running statistics.
func (c *Cell) SetTraining(on bool) {
	for _, b := range c.BatchNorms() {
		b.SetTraining(on)
	}
}

// Convs lists the cell's convolutions in NVAE's module order (skip, then
// branch); their Weight is what the spectral regulariser bounds.
func (c *Cell) Convs() []*Conv {
	var out []*Conv
	if c.skip != nil {
		out = append(out, c.skip.convs()...)
	}
	for _, op := range c.ops {
		out = append(out, op.convs()...)
	}
	return out
}

// BatchNorms lists the cell's batch norms in module order (for the
// max|γ| penalty and BN readjustment).
func (c *Cell) BatchNorms() []*BatchNorm {
	var out []*BatchNorm
	for _, op := range c.ops {
		out = append(out, op.norms()...)
	}
	return out
}

// ConvWeights returns Weight() of each conv: the normalised weights that
// NVAE's spectral regulariser takes (the raw v of convs without weight
// norm), new differentiable tensors in the caller's scope.
func ConvWeights(convs []*Conv) []*ts.Tensor {
	out := make([]*ts.Tensor, len(convs))
	for i, c := range convs {
		out[i] = c.Weight()
	}
	return out
}

// EncCombiner is NVAE's EncCombinerCell: x1 + conv(x2), with a
// weight-normalised 1×1 conv with bias ("conv") from the decoder's
// channels to the encoder's.
type EncCombiner struct{ Conv *Conv }

// NewEncCombiner registers the combiner of encoder features (enc
// channels) and decoder features (dec channels) under p.
func NewEncCombiner(p nn.Path, enc, dec int64) (*EncCombiner, error) {
	if enc <= 0 || dec <= 0 {
		return nil, fmt.Errorf("nvae: encoder combiner needs positive channel counts, got %d (encoder) and %d (decoder)", enc, dec)
	}
	conv, err := NewConv(p.Sub("conv"), dec, enc, 1, ConvOptions{Bias: true})
	if err != nil {
		return nil, fmt.Errorf("nvae: encoder combiner: %w", err)
	}
	return &EncCombiner{Conv: conv}, nil
}

// Forward combines encoder features x1 (N, enc, H, W) with decoder
// features x2 (N, dec, H, W).
func (e *EncCombiner) Forward(x1, x2 *ts.Tensor) *ts.Tensor {
	return x1.MustAdd(e.Conv.Forward(x2), false)
}

// DecCombiner is NVAE's DecCombinerCell: a weight-normalised 1×1 conv
// with bias ("conv") of the concatenation [s, z] back to s's channels.
type DecCombiner struct{ Conv *Conv }

// NewDecCombiner registers the combiner of decoder features (channels)
// and a latent sample (latents channels) under p.
func NewDecCombiner(p nn.Path, channels, latents int64) (*DecCombiner, error) {
	if channels <= 0 || latents <= 0 {
		return nil, fmt.Errorf("nvae: decoder combiner needs positive channel and latent counts, got %d and %d", channels, latents)
	}
	conv, err := NewConv(p.Sub("conv"), channels+latents, channels, 1, ConvOptions{Bias: true})
	if err != nil {
		return nil, fmt.Errorf("nvae: decoder combiner: %w", err)
	}
	return &DecCombiner{Conv: conv}, nil
}

// Forward combines s (N, channels, H, W) and z (N, latents, H, W).
func (d *DecCombiner) Forward(s, z *ts.Tensor) *ts.Tensor {
	return d.Conv.Forward(ts.MustCat([]*ts.Tensor{s, z}, 1))
}

// BNWeights returns the scale γ ("weight") of each batch norm, the
// tensors the store holds, for NVAE's max|γ| penalty.
func BNWeights(bns []*BatchNorm) []*ts.Tensor {
	out := make([]*ts.Tensor, len(bns))
	for i, b := range bns {
		out[i] = b.W
	}
	return out
}
