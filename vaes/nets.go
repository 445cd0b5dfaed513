package vaes

import (
	"fmt"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// validate checks the settings of the variant model for the images d
// describes; every problem is listed, named by its config key.
func validate(c config.VAE, model string, d config.Data) error {
	if err := c.Validate(model, d); err != nil {
		return fmt.Errorf("vaes: %s: %w", model, err)
	}
	return nil
}

// checkImages returns an error unless x is a float batch [N, C, S, S] of
// the shape d describes.
func checkImages(d config.Data, x *ts.Tensor) error {
	if x == nil {
		return fmt.Errorf("vaes: nil input")
	}
	c, size := int64(d.Channels), int64(d.ImageSize)
	s := x.MustSize()
	if len(s) != 4 || s[1] != c || s[2] != size || s[3] != size || s[0] < 1 {
		return fmt.Errorf("vaes: input has shape %v, want [N, %d, %d, %d] (NCHW; check data.channels and data.image_size)", s, c, size, size)
	}
	if x.DType() != gotch.Float {
		return fmt.Errorf("vaes: input has dtype %v, want float32 images in the data range", x.DType())
	}
	return nil
}

// Encoder is Table 4's encoder (config.VAE.EncoderLayers): four
// CONV(k4, s2, p1) → BN → ReLU with 128·w…1024·w channels, then two FC
// heads giving μ and log σ² of q(z|x) = N(μ, diag σ²).
type Encoder struct {
	Convs      []*nn.Conv2d
	BNs        []*nn.BatchNorm2d
	Mu, LogVar *nn.Linear
	flat       int64
}

// NewEncoder registers the encoder for the images d describes under p.
func NewEncoder(p nn.Path, c config.VAE, d config.Data) (e *Encoder, err error) {
	if err := validate(c, config.ModelVAE, d); err != nil {
		return nil, err
	}
	e = &Encoder{}
	in, side := int64(d.Channels), int64(d.ImageSize)
	for i, l := range c.EncoderLayers() {
		conv, err := nn.NewConv2d(p.Subf("conv%d", i), in, l.Out, l.Kernel, nn.ConvOptions{Stride: l.Stride, Padding: l.Padding})
		if err != nil {
			return nil, err
		}
		bn, err := nn.NewBatchNorm2d(p.Subf("bn%d", i), l.Out)
		if err != nil {
			return nil, err
		}
		e.Convs = append(e.Convs, conv)
		e.BNs = append(e.BNs, bn)
		in, side = l.Out, (side+2*l.Padding-l.Kernel)/l.Stride+1
	}
	e.flat = in * side * side
	if e.Mu, err = nn.NewLinear(p.Sub("mu"), e.flat, int64(c.Latent)); err != nil {
		return nil, err
	}
	if e.LogVar, err = nn.NewLinear(p.Sub("logvar"), e.flat, int64(c.Latent)); err != nil {
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

// Decoder is Table 4's decoder: FC to 1024·w×8×8 (config.VAE.DecoderInput),
// then transposed convolutions (config.VAE.DecoderLayers; BN and ReLU
// after all but the last) to C×S×S. Forward returns pre-activations a;
// the mean image is Mean(a).
type Decoder struct {
	FC     *nn.Linear
	ConvTs []*nn.ConvTranspose2d
	BNs    []*nn.BatchNorm2d // one per ConvT except the last
	signed bool              // data.range signed: the mean is tanh(a)
	ch0    int64
	side0  int64
}

// NewDecoder registers the decoder for the images d describes under p.
// Its transposed convolutions take libtorch's own backward when
// c.NativeConvTBackward is set (an ablation).
func NewDecoder(p nn.Path, c config.VAE, d config.Data) (dec *Decoder, err error) {
	if err := validate(c, config.ModelVAE, d); err != nil {
		return nil, err
	}
	dec = &Decoder{signed: d.Range == config.RangeSigned}
	dec.ch0, dec.side0 = c.DecoderInput()
	if dec.FC, err = nn.NewLinear(p.Sub("fc"), int64(c.Latent), dec.ch0*dec.side0*dec.side0); err != nil {
		return nil, err
	}
	in := dec.ch0
	layers := c.DecoderLayers(int64(d.ImageSize), int64(d.Channels))
	for i, l := range layers {
		o := nn.ConvOptions{Stride: l.Stride, Padding: l.Padding, OutputPadding: l.OutputPadding, NativeBackward: c.NativeConvTBackward}
		ct, err := nn.NewConvTranspose2d(p.Subf("convt%d", i), in, l.Out, l.Kernel, o)
		if err != nil {
			return nil, err
		}
		dec.ConvTs = append(dec.ConvTs, ct)
		if i < len(layers)-1 {
			bn, err := nn.NewBatchNorm2d(p.Subf("bn%d", i), l.Out)
			if err != nil {
				return nil, err
			}
			dec.BNs = append(dec.BNs, bn)
		}
		in = l.Out
	}
	return dec, nil
}

// Forward maps z (N, latent) to pre-activations a (N, C, S, S).
func (d *Decoder) Forward(z *ts.Tensor) *ts.Tensor {
	h := d.FC.Forward(z).MustReshape([]int64{-1, d.ch0, d.side0, d.side0}, false)
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
	if d.signed {
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
