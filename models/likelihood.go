package models

import (
	"fmt"
	"math"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/metrics"
	"github.com/sugarme/gotch/ts"
)

// imageLikelihood is the bits/dim convention of the image flows. Their
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
	width := 1.0
	switch d.Range {
	case config.RangeUnit, "":
	case config.RangeSigned:
		width = 2
	default:
		return imageLikelihood{}, fmt.Errorf("models: data.range %q: want %s ([0,1]) or %s ([-1,1])", d.Range, config.RangeUnit, config.RangeSigned)
	}
	levels := 256.0
	switch d.Dequantization {
	case "uniform":
	case "none", "":
		levels = 255
	default:
		return imageLikelihood{}, fmt.Errorf("models: data.dequantization %q: want uniform or none", d.Dequantization)
	}
	s := d.Shape()
	return imageLikelihood{dims: s[0] * s[1] * s[2], offset: math.Log2(levels / width)}, nil
}

// bpdTensor converts a mean NLL tensor (nats per example) to bits/dim.
func (l imageLikelihood) bpdTensor(nll *ts.Tensor) *ts.Tensor {
	return nll.MustMulScalar(ts.FloatScalar(1/(float64(l.dims)*math.Ln2)), false).MustAddScalar(ts.FloatScalar(l.offset), true)
}

// BitsPerDim converts a mean NLL in nats per example to bits/dim.
func (l imageLikelihood) BitsPerDim(nllNats float64) float64 {
	return metrics.BitsPerDim(nllNats, l.dims, l.offset)
}

// BitsPerDimOffset is log2(levels/width), added to nll/(D·ln 2).
func (l imageLikelihood) BitsPerDimOffset() float64 { return l.offset }

// Dims is D = C·H·W.
func (l imageLikelihood) Dims() int64 { return l.dims }
