package vaes

import (
	"fmt"
	"math"

	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Reconstruction likelihoods.
const (
	ReconMSE = "mse" // unit-variance Gaussian: 0.5·Σ(x̂−x)² (+ D/2·log 2π when normalised)
	ReconBCE = "bce" // Bernoulli: Σ BCE(sigmoid(a), x)
)

// Data ranges, as config data.range.
const (
	RangeUnit   = "unit"   // [0, 1]: the decoder mean is sigmoid(a)
	RangeSigned = "signed" // [-1, 1]: the decoder mean is tanh(a) (mse only)
)

// Config is what every VAE variant shares: the Table 4 networks and the
// reconstruction likelihood.
type Config struct {
	ImageSize int64   // 32 (CIFAR10, padded MNIST) or 64 (CelebA)
	Channels  int64   // image channels, e.g. 3 or 1
	Latent    int64   // latent size (256 in the paper)
	Width     float64 // multiplies Table 4's channel counts (128…1024); 0 means 1
	Recon     string  // ReconMSE | ReconBCE
	Range     string  // RangeUnit | RangeSigned; "" means RangeUnit
}

func (c Config) width() float64 {
	if c.Width == 0 {
		return 1
	}
	return c.Width
}

// channels is Table 4's channel count n scaled by the width, at least 1.
func (c Config) channels(n int64) int64 {
	return max(1, int64(math.Round(float64(n)*c.width())))
}

func (c Config) dataRange() string {
	if c.Range == "" {
		return RangeUnit
	}
	return c.Range
}

// Dim is the number of pixels times channels, D.
func (c Config) Dim() int64 { return c.Channels * c.ImageSize * c.ImageSize }

// Validate reports the first problem with c.
func (c Config) Validate() error {
	switch {
	case c.ImageSize != 32 && c.ImageSize != 64:
		return fmt.Errorf("vaes: image size %d has no Table 4 network; use 32 (CIFAR10, or MNIST padded to 32) or 64 (CelebA)", c.ImageSize)
	case c.Channels <= 0:
		return fmt.Errorf("vaes: channels must be positive, got %d", c.Channels)
	case c.Latent <= 0:
		return fmt.Errorf("vaes: latent size must be positive, got %d", c.Latent)
	case c.Width < 0 || math.IsNaN(c.Width) || math.IsInf(c.Width, 0):
		return fmt.Errorf("vaes: width multiplier must be positive (1 is Table 4), got %g", c.Width)
	}
	switch c.Recon {
	case ReconMSE, ReconBCE:
	default:
		return fmt.Errorf("vaes: unknown reconstruction likelihood %q; use %q or %q", c.Recon, ReconMSE, ReconBCE)
	}
	switch c.dataRange() {
	case RangeUnit:
	case RangeSigned:
		if c.Recon == ReconBCE {
			return fmt.Errorf("vaes: recon %q needs targets in [0, 1], but the data range is %q; use data.range unit or recon mse", ReconBCE, RangeSigned)
		}
	default:
		return fmt.Errorf("vaes: unknown data range %q; use %q or %q", c.Range, RangeUnit, RangeSigned)
	}
	return nil
}

// checkImages returns an error unless x is a float batch [N, C, S, S] of
// the configured shape.
func (c Config) checkImages(x *ts.Tensor) error {
	if x == nil {
		return fmt.Errorf("vaes: nil input")
	}
	s := x.MustSize()
	if len(s) != 4 || s[1] != c.Channels || s[2] != c.ImageSize || s[3] != c.ImageSize || s[0] < 1 {
		return fmt.Errorf("vaes: input has shape %v, want [N, %d, %d, %d] (NCHW; check data.channels and data.image_size)", s, c.Channels, c.ImageSize, c.ImageSize)
	}
	if x.DType() != gotch.Float {
		return fmt.Errorf("vaes: input has dtype %v, want float32 images in the data range", x.DType())
	}
	return nil
}

// BatchNorm2d is torch.nn.BatchNorm2d (momentum 0.1, eps 1e-5, affine,
// running statistics). In training mode it normalises with the batch
// statistics and updates the running ones; otherwise it uses the running
// ones.
type BatchNorm2d struct {
	W, B, RunningMean, RunningVar *ts.Tensor
	Training                      bool
}

// NewBatchNorm2d registers weight, bias, running_mean and running_var.
func NewBatchNorm2d(p nn.Path, c int64) (bn *BatchNorm2d, err error) {
	defer nn.Recover(&err)
	sc := ts.NewScope()
	defer sc.Close()
	bn = &BatchNorm2d{Training: true}
	d := p.Device()
	if bn.W, err = p.Param("weight", nn.Ones([]int64{c}, d)); err != nil {
		return nil, err
	}
	if bn.B, err = p.Param("bias", nn.Zeros([]int64{c}, d)); err != nil {
		return nil, err
	}
	if bn.RunningMean, err = p.Buffer("running_mean", nn.Zeros([]int64{c}, d)); err != nil {
		return nil, err
	}
	if bn.RunningVar, err = p.Buffer("running_var", nn.Ones([]int64{c}, d)); err != nil {
		return nil, err
	}
	return bn, nil
}

// Forward normalises x (N, C, H, W).
func (bn *BatchNorm2d) Forward(x *ts.Tensor) *ts.Tensor {
	return ts.MustBatchNorm(x, bn.W, bn.B, bn.RunningMean, bn.RunningVar, bn.Training, 0.1, 1e-5, true)
}

// Encoder is Table 4's encoder: four CONV(k4, s2, p1) → BN → ReLU with
// 128·w…1024·w channels, then two FC heads giving μ and log σ² of
// q(z|x) = N(μ, diag σ²).
type Encoder struct {
	Convs      []*nn.Conv2d
	BNs        []*BatchNorm2d
	Mu, LogVar *nn.Linear
	flat       int64
}

// NewEncoder registers the encoder under p.
func NewEncoder(p nn.Path, c Config) (e *Encoder, err error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	e = &Encoder{}
	in := c.Channels
	for i, n := range []int64{128, 256, 512, 1024} {
		out := c.channels(n)
		conv, err := nn.NewConv2d(p.Subf("conv%d", i), in, out, 4, nn.ConvOptions{Stride: 2, Padding: 1})
		if err != nil {
			return nil, err
		}
		bn, err := NewBatchNorm2d(p.Subf("bn%d", i), out)
		if err != nil {
			return nil, err
		}
		e.Convs = append(e.Convs, conv)
		e.BNs = append(e.BNs, bn)
		in = out
	}
	side := c.ImageSize / 16
	e.flat = in * side * side
	if e.Mu, err = nn.NewLinear(p.Sub("mu"), e.flat, c.Latent); err != nil {
		return nil, err
	}
	if e.LogVar, err = nn.NewLinear(p.Sub("logvar"), e.flat, c.Latent); err != nil {
		return nil, err
	}
	return e, nil
}

// Forward returns μ and log σ², each (N, latent).
func (e *Encoder) Forward(x *ts.Tensor) (mu, logvar *ts.Tensor) {
	h := x
	for i, conv := range e.Convs {
		h = e.BNs[i].Forward(conv.Forward(h)).MustRelu(false)
	}
	h = h.MustReshape([]int64{-1, e.flat}, false)
	return e.Mu.Forward(h), e.LogVar.Forward(h)
}

// SetTraining switches the batch norms between batch and running
// statistics.
func (e *Encoder) SetTraining(on bool) {
	for _, bn := range e.BNs {
		bn.Training = on
	}
}

// Decoder is Table 4's decoder: FC to 1024·w×8×8, then transposed
// convolutions (BN and ReLU after all but the last) to C×S×S. Forward
// returns pre-activations a; the mean image is Mean(a).
type Decoder struct {
	FC     *nn.Linear
	ConvTs []*nn.ConvTranspose2d
	BNs    []*BatchNorm2d // one per ConvT except the last
	c      Config
	ch0    int64
}

// convTSpec is one transposed convolution of the decoder.
type convTSpec struct {
	out             int64 // Table 4 channels before the width multiplier; 0: image channels
	k, s, p, outPad int64
}

// decoderSpecs are the transposed convolutions for 32×32 and 64×64. Table 4
// leaves the paddings open; these give the exact sizes
// (out = (in−1)·s − 2p + k + outPad):
//
//	32: 8 →(k4,s2,p1) 16 →(k4,s2,p1,op1) 33 →(k4,s1,p2) 32           (pythae's CIFAR decoder)
//	64: 8 →(k5,s2,p2,op1) 16 →(k5,s2,p2,op1) 32 →(k5,s2,p1) 65 →(k4,s1,p2) 64
var decoderSpecs = map[int64][]convTSpec{
	32: {{512, 4, 2, 1, 0}, {256, 4, 2, 1, 1}, {0, 4, 1, 2, 0}},
	64: {{512, 5, 2, 2, 1}, {256, 5, 2, 2, 1}, {128, 5, 2, 1, 0}, {0, 4, 1, 2, 0}},
}

// NewDecoder registers the decoder under p.
func NewDecoder(p nn.Path, c Config) (d *Decoder, err error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	d = &Decoder{c: c, ch0: c.channels(1024)}
	if d.FC, err = nn.NewLinear(p.Sub("fc"), c.Latent, d.ch0*8*8); err != nil {
		return nil, err
	}
	in := d.ch0
	specs := decoderSpecs[c.ImageSize]
	for i, s := range specs {
		out := c.Channels
		if s.out > 0 {
			out = c.channels(s.out)
		}
		ct, err := nn.NewConvTranspose2d(p.Subf("convt%d", i), in, out, s.k, nn.ConvOptions{Stride: s.s, Padding: s.p, OutputPadding: s.outPad})
		if err != nil {
			return nil, err
		}
		d.ConvTs = append(d.ConvTs, ct)
		if i < len(specs)-1 {
			bn, err := NewBatchNorm2d(p.Subf("bn%d", i), out)
			if err != nil {
				return nil, err
			}
			d.BNs = append(d.BNs, bn)
		}
		in = out
	}
	return d, nil
}

// Forward maps z (N, latent) to pre-activations a (N, C, S, S).
func (d *Decoder) Forward(z *ts.Tensor) *ts.Tensor {
	h := d.FC.Forward(z).MustReshape([]int64{-1, d.ch0, 8, 8}, false)
	for i, ct := range d.ConvTs {
		h = ct.Forward(h)
		if i < len(d.BNs) {
			h = d.BNs[i].Forward(h).MustRelu(false)
		}
	}
	return h
}

// Mean is the decoder's mean image for pre-activations a: sigmoid(a) for
// unit-range data, tanh(a) for signed-range data.
func (d *Decoder) Mean(a *ts.Tensor) *ts.Tensor {
	if d.c.dataRange() == RangeSigned {
		return a.MustTanh(false)
	}
	return a.MustSigmoid(false)
}

// SetTraining switches the batch norms between batch and running
// statistics.
func (d *Decoder) SetTraining(on bool) {
	for _, bn := range d.BNs {
		bn.Training = on
	}
}
