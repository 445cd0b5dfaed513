package models

import (
	"fmt"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/data"
	"github.com/mollify/mollify/metrics"
	"github.com/sugarme/gotch/ts"
)

// imageLikelihood is the bits/dim convention of the image models (flows
// and VAEs), the one place bits/dim are computed: metrics.BitsPerDim's
// formula with data.Transform.BitsPerDimOffset's offset. Their
// LogProb is the density, in nats, of x in the space the model is fed
// (data.range: unit [0,1] or signed [-1,1]). Bits per dimension of the
// 8-bit data are
//
//	bpd = −log p(x) / (D·ln 2) + log2(levels / width)
//
// with width 1 (unit) or 2 (signed) and levels 256 for uniform
// dequantization ((k+u)/256: offset 8 on [0,1], 7 on [-1,1]) or 255
// without it (k/255: the grid spacing; then bpd is the usual figure but
// not a bound on the discrete likelihood).
type imageLikelihood struct {
	dims   int64
	offset float64
}

func newImageLikelihood(d config.Data) (imageLikelihood, error) {
	if d.Is2D() {
		return imageLikelihood{}, fmt.Errorf("models: image flows need image data, but data.dataset is %q (use realnvp2d for 2-D points)", d.Dataset)
	}
	deq, rng := d.Dequantization, d.Range
	if deq == "" {
		deq = string(data.DequantNone)
	}
	if rng == "" {
		rng = config.RangeUnit
	}
	// The offset is the data transform's: one definition of the bins.
	tr, err := data.ParseTransform(deq, rng)
	if err != nil {
		return imageLikelihood{}, fmt.Errorf("models: data.range %q, data.dequantization %q: %w", d.Range, d.Dequantization, err)
	}
	s := d.Shape()
	return imageLikelihood{dims: s[0] * s[1] * s[2], offset: tr.BitsPerDimOffset()}, nil
}

// bpdTensor converts a mean NLL tensor (nats per example) to bits/dim,
// with metrics.BitsPerDim's formula.
func (l imageLikelihood) bpdTensor(nll *ts.Tensor) *ts.Tensor {
	return nll.MustMulScalar(ts.FloatScalar(metrics.BitsPerDim(1, l.dims, 0)), false).MustAddScalar(ts.FloatScalar(l.offset), true)
}

// BitsPerDim converts a mean NLL in nats per example to bits/dim.
func (l imageLikelihood) BitsPerDim(nllNats float64) float64 {
	return metrics.BitsPerDim(nllNats, l.dims, l.offset)
}

// BitsPerDimOffset is log2(levels/width), added to nll/(D·ln 2).
func (l imageLikelihood) BitsPerDimOffset() float64 { return l.offset }

// Dims is D = C·H·W.
func (l imageLikelihood) Dims() int64 { return l.dims }
