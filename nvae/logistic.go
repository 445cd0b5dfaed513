package nvae

import (
	"fmt"
	"math"
	"slices"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// NVAE's constants for 8-bit data scored in y = 2x−1 ∈ [−1, 1].
const (
	halfBin     = 1.0 / 255 // half the width of a bin in y
	edge        = 0.999     // |y| beyond this is an edge bin (NVAE's code: 0.99 at the top, see doc.go)
	logScaleMin = -7.0      // NVAE's floor on the components' log-scales
	tinyMass    = 1e-5      // below this bin mass, NVAE uses density × bin width
	uniformEps  = 1e-5      // NVAE draws its uniforms in (1e-5, 1−1e-5)
)

// MixLogistic is NVAE's mixture of logistics over the C = 1 or 3 channels
// of each pixel, built from a decoder output. For RGB, each component
// couples the channels autoregressively (NVAE's coefficients): the mean of
// G is m_G + c0·y_R and that of B is m_B + c1·y_R + c2·y_G, where y = 2x−1
// is the data as given.
//
// LogProb is NVAE's discretized likelihood, ContinuousLogProb the density of
// the same mixture; Likelihood picks one as model.nvae.mollified_likelihood
// says. Package doc explains both and what happens to values off the grid
// or outside [0, 1].
//
// It holds views of the decoder output: use it while the scope that owns
// that tensor is open.
type MixLogistic struct {
	Channels, Mixtures int64
	shape              []int64    // the data's (B, C, H, W)
	logits             *ts.Tensor // (B, M, H, W)
	means              *ts.Tensor // (B, C, M, H, W)
	logScales          *ts.Tensor // (B, C, M, H, W), floored at −7
	coeffs             *ts.Tensor // (B, 3, M, H, W) after tanh; nil for one channel
}

// MixLogisticParams is the number of decoder output channels a mixture of
// the given components over 1 or 3 channels needs: NVAE's 10·M for RGB (M
// logits, then per channel M means, M log-scales and M coefficients) and
// 3·M for one channel (no coefficients).
func MixLogisticParams(channels, mixtures int) (int64, error) {
	if channels != 1 && channels != 3 {
		return 0, fmt.Errorf("nvae: the logistic mixture models 1 (grey) or 3 (RGB) channels, got %d", channels)
	}
	if mixtures < 1 {
		return 0, fmt.Errorf("nvae: the logistic mixture needs at least one component (model.nvae.mixtures), got %d", mixtures)
	}
	return int64(mixtures) * (1 + int64(channels)*perChannel(int64(channels))), nil
}

// perChannel is the parameters per channel and component.
func perChannel(c int64) int64 {
	if c == 3 {
		return 3
	}
	return 2
}

// NewMixLogistic reads the mixture from param (B, P, H, W), the decoder
// output, with P = MixLogisticParams(channels, mixtures). The layout is
// NVAE's: channels [0, M) are the mixture logits; then, for each image
// channel in turn, M means, M log-scales and (RGB only) M raw coefficients,
// which pass through tanh. Means and data are in y = 2x−1 units.
func NewMixLogistic(param *ts.Tensor, channels, mixtures int) (d *MixLogistic, err error) {
	want, err := MixLogisticParams(channels, mixtures)
	if err != nil {
		return nil, err
	}
	if param == nil {
		return nil, fmt.Errorf("nvae: NewMixLogistic: no parameter tensor")
	}
	defer nn.Recover(&err)
	s := param.MustSize()
	if len(s) != 4 || s[1] != want {
		return nil, fmt.Errorf("nvae: the logistic mixture's parameters have shape %v, want (B, %d, H, W) for %d components over %d channels", s, want, mixtures, channels)
	}
	if !isFloat(param.DType()) {
		return nil, fmt.Errorf("nvae: the logistic mixture's parameters are %v, want a floating-point tensor", param.DType())
	}
	c, m := int64(channels), int64(mixtures)
	b, h, w := s[0], s[2], s[3]
	per := perChannel(c) * m
	blocks := param.MustNarrow(1, m, c*per, false).MustReshape([]int64{b, c, per, h, w}, false)
	d = &MixLogistic{
		Channels:  c,
		Mixtures:  m,
		shape:     []int64{b, c, h, w},
		logits:    param.MustNarrow(1, 0, m, false),
		means:     blocks.MustNarrow(2, 0, m, false),
		logScales: blocks.MustNarrow(2, m, m, false).MustClampMin(ts.FloatScalar(logScaleMin), false),
	}
	if c == 3 {
		d.coeffs = blocks.MustNarrow(2, 2*m, m, false).MustTanh(false)
	}
	return d, nil
}

func isFloat(k gotch.DType) bool {
	return k == gotch.Float || k == gotch.Double || k == gotch.Half || k == gotch.BFloat16
}

// LogProb is NVAE's discretized log-likelihood of x (B, C, H, W) in nats
// per example, (B): the sum of LogProbPixels over the pixels.
func (d *MixLogistic) LogProb(x *ts.Tensor) (*ts.Tensor, error) {
	return d.perExample(d.LogProbPixels(x))
}

// ContinuousLogProb is the log-density of x (B, C, H, W) in [0, 1] units
// under the same mixture without discretisation, in nats per example, (B).
func (d *MixLogistic) ContinuousLogProb(x *ts.Tensor) (*ts.Tensor, error) {
	return d.perExample(d.ContinuousLogProbPixels(x))
}

// Likelihood is the log-likelihood a batch x is scored with, in nats per
// example: the discretized one (LogProb) on clean batches, and on mollified
// batches the one mollifiedLikelihood names (model.nvae.mollified_likelihood:
// config.NVAELikelihoodDiscretized or config.NVAELikelihoodContinuous).
func (d *MixLogistic) Likelihood(x *ts.Tensor, mollified bool, mollifiedLikelihood string) (*ts.Tensor, error) {
	switch mollifiedLikelihood {
	case config.NVAELikelihoodDiscretized:
		return d.LogProb(x)
	case config.NVAELikelihoodContinuous:
		if mollified {
			return d.ContinuousLogProb(x)
		}
		return d.LogProb(x)
	}
	return nil, fmt.Errorf("nvae: unknown model.nvae.mollified_likelihood %q (want %q or %q)",
		mollifiedLikelihood, config.NVAELikelihoodDiscretized, config.NVAELikelihoodContinuous)
}

// perExample sums per-pixel log-probabilities (B, H, W) to (B).
func (d *MixLogistic) perExample(pix *ts.Tensor, pixErr error) (out *ts.Tensor, err error) {
	if pixErr != nil {
		return nil, pixErr
	}
	defer nn.Recover(&err)
	return pix.MustSumDimIntlist([]int64{1, 2}, false, pix.DType(), false), nil
}

// LogProbPixels is NVAE's discretized log-probability of each pixel of x
// (B, C, H, W) in [0, 1], jointly over its channels: (B, H, W), nats.
// With y = 2x−1, each channel and component scores
//
//	y < −0.999: log σ((y − μ + 1/255)/s)       (lower edge bin, from −∞)
//	y > +0.999: log(1 − σ((y − μ − 1/255)/s))  (upper edge bin, to +∞)
//	otherwise:  log(σ((y − μ + 1/255)/s) − σ((y − μ − 1/255)/s)),
//	            or log pdf(y) + log(2/255) where that mass is ≤ 1e-5
//
// and the pixel is logsumexp_k(log π_k + Σ_c log p_{c,k}). x is used as it
// is: nothing is clamped or rounded (see the package doc).
func (d *MixLogistic) LogProbPixels(x *ts.Tensor) (*ts.Tensor, error) {
	return d.pixels(x, discLogProbs)
}

// ContinuousLogProbPixels is the log-density of each pixel of x (B, C, H,
// W), in [0, 1] units, under the mixture: (B, H, W), nats. Each channel and
// component scores log pdf_logistic(y; μ, s) + log 2 (the Jacobian of
// y = 2x−1); the mixture is combined as in LogProbPixels. It is a density
// on all of R^C, so x may lie anywhere.
func (d *MixLogistic) ContinuousLogProbPixels(x *ts.Tensor) (*ts.Tensor, error) {
	return d.pixels(x, func(yk, mu, logScales *ts.Tensor) *ts.Tensor {
		return logisticLogPDF(yk, mu, logScales).MustAddScalar(ts.FloatScalar(math.Ln2), false)
	})
}

// pixels scores x per channel and component with score(y, μ, log s) and
// combines the mixture; LogProbPixels and ContinuousLogProbPixels differ
// only in score.
func (d *MixLogistic) pixels(x *ts.Tensor, score func(yk, mu, logScales *ts.Tensor) *ts.Tensor) (out *ts.Tensor, err error) {
	y, err := d.data(x)
	if err != nil {
		return nil, err
	}
	defer nn.Recover(&err)
	sc := ts.NewScope()
	defer sc.Close()
	yk, mu := d.condMeans(y)
	out = d.mix(score(yk, mu, d.logScales))
	sc.Keep(out)
	return out, nil
}

// data checks x against the parameters and maps it to y = 2x−1 in the
// parameters' dtype (out of place: x is the caller's).
func (d *MixLogistic) data(x *ts.Tensor) (y *ts.Tensor, err error) {
	if x == nil {
		return nil, fmt.Errorf("nvae: no data tensor")
	}
	defer nn.Recover(&err)
	s := x.MustSize()
	if !slices.Equal(s, d.shape) {
		return nil, fmt.Errorf("nvae: data has shape %v, but the logistic mixture was built for (B, C, H, W) = %v", s, d.shape)
	}
	if !isFloat(x.DType()) {
		return nil, fmt.Errorf("nvae: data is %v, want floating-point values in [0, 1]", x.DType())
	}
	if xd, pd := x.MustDevice(), d.logits.MustDevice(); xd != pd {
		return nil, fmt.Errorf("nvae: data is on %v but the logistic mixture's parameters on %v", xd, pd)
	}
	return x.MustTotype(d.logits.DType(), false).MustMulScalar(ts.FloatScalar(2), false).MustSubScalar(ts.FloatScalar(1), false), nil
}

// condMeans returns y as (B, C, 1, H, W) and each component's mean of each
// channel given the channels before it, (B, C, M, H, W).
func (d *MixLogistic) condMeans(y *ts.Tensor) (yk, mu *ts.Tensor) {
	yk = y.MustUnsqueeze(2, false)
	if d.coeffs == nil {
		return yk, d.means
	}
	m := func(c int64) *ts.Tensor { return d.means.MustSelect(1, c, false) }
	co := func(i int64) *ts.Tensor { return d.coeffs.MustSelect(1, i, false) }
	r, g := yk.MustSelect(1, 0, false), yk.MustSelect(1, 1, false)
	muG := m(1).MustAdd(co(0).MustMul(r, false), false)
	muB := m(2).MustAdd(co(1).MustMul(r, false), false).MustAdd(co(2).MustMul(g, false), false)
	return yk, ts.MustStack([]*ts.Tensor{m(0), muG, muB}, 1)
}

// logisticLogPDF is log pdf(y) of the logistic with mean mu and scale
// exp(logS): z − log s − 2·softplus(z), z = (y−μ)/s.
func logisticLogPDF(y, mu, logS *ts.Tensor) *ts.Tensor {
	z := y.MustSub(mu, false).MustMul(logS.MustNeg(false).MustExp(false), false)
	return z.MustSub(logS, false).MustSub(z.MustSoftplus(false).MustMulScalar(ts.FloatScalar(2), false), false)
}

// discLogProbs is NVAE's per channel and component log-probability, (B, C,
// M, H, W), of y (B, C, 1, H, W) given the means mu (B, C, M, H, W).
func discLogProbs(y, mu, logS *ts.Tensor) *ts.Tensor {
	invS := logS.MustNeg(false).MustExp(false)
	dev := y.MustSub(mu, false)
	up := invS.MustMul(dev.MustAddScalar(ts.FloatScalar(halfBin), false), false)
	lo := invS.MustMul(dev.MustSubScalar(ts.FloatScalar(halfBin), false), false)
	below := up.MustLogSigmoid(false)                // log CDF at the upper edge
	above := lo.MustNeg(false).MustLogSigmoid(false) // log(1 − CDF) at the lower edge
	mass := up.MustSigmoid(false).MustSub(lo.MustSigmoid(false), false)
	approx := logisticLogPDF(y, mu, logS).MustAddScalar(ts.FloatScalar(math.Log(2*halfBin)), false)
	middle := mass.MustClampMin(ts.FloatScalar(1e-10), false).MustLog(false).
		MustWhereSelf(mass.MustGt(ts.FloatScalar(tinyMass), false), approx, false)
	inner := above.MustWhereSelf(y.MustGt(ts.FloatScalar(edge), false), middle, false)
	return below.MustWhereSelf(y.MustLt(ts.FloatScalar(-edge), false), inner, false)
}

// mix combines per channel and component log-probabilities (B, C, M, H, W)
// into the pixel's, (B, H, W).
func (d *MixLogistic) mix(lp *ts.Tensor) *ts.Tensor {
	logPi := d.logits.MustLogSoftmax(1, d.logits.DType(), false)
	joint := logPi.MustAdd(lp.MustSumDimIntlist([]int64{1}, false, lp.DType(), false), false)
	return joint.MustLogsumexp([]int64{1}, false, false)
}

// Mean is NVAE's mean image (B, C, H, W) in [0, 1]: the softmax-weighted
// means and coefficients pushed through the channel autoregression, each
// channel clamped to [0, 1] before the next uses it, as NVAE does. It is
// not the exact expectation of the mixture (that would weight each
// component's coupled means), and it is not differentiable where clamped.
func (d *MixLogistic) Mean() (out *ts.Tensor, err error) {
	defer nn.Recover(&err)
	sc := ts.NewScope()
	defer sc.Close()
	w := d.logits.MustSoftmax(1, d.logits.DType(), false).MustUnsqueeze(1, false)
	weighted := func(t *ts.Tensor) *ts.Tensor {
		return t.MustMul(w, false).MustSumDimIntlist([]int64{2}, false, t.DType(), false)
	}
	var co *ts.Tensor
	if d.coeffs != nil {
		co = weighted(d.coeffs)
	}
	out = autoregress(weighted(d.means), co)
	sc.Keep(out)
	return out, nil
}

// Sample draws an image (B, C, H, W) in [0, 1] at temperature t ≥ 0, as
// NVAE does: a component per pixel by Gumbel-max on logits/t, then
// y_c = μ_c + s_c·t·logit(u) with u uniform in (1e-5, 1−1e-5), coupled
// through the coefficients, each channel clamped to [−1, 1] before the next
// uses it; the result is not rounded to the 256 levels. t = 0 takes the most
// probable component and its mean. NVAE's own code divides the scale by t
// (and never calls it with t ≠ 1); here t scales it, so t → 0 tends to the
// mode component's mean.
func (d *MixLogistic) Sample(t float64) (out *ts.Tensor, err error) {
	if !(t >= 0) || math.IsInf(t, 1) {
		return nil, fmt.Errorf("nvae: sampling temperature must be finite and ≥ 0, got %g", t)
	}
	defer nn.Recover(&err)
	sc := ts.NewScope()
	defer sc.Close()
	uniform := func(shape []int64) *ts.Tensor {
		u := ts.MustRand(shape, d.logits.DType(), d.logits.MustDevice())
		return u.MustMulScalar(ts.FloatScalar(1-2*uniformEps), false).MustAddScalar(ts.FloatScalar(uniformEps), false)
	}
	out = d.sampleWith(t, uniform(d.logits.MustSize()), uniform(d.shape))
	sc.Keep(out)
	return out, nil
}

// sampleWith is Sample with the uniforms given: uGumbel (B, M, H, W) for
// the component choice and uLogistic (B, C, H, W) for the logistic noise.
func (d *MixLogistic) sampleWith(t float64, uGumbel, uLogistic *ts.Tensor) *ts.Tensor {
	var k *ts.Tensor
	if t == 0 {
		k = d.logits.MustArgmax([]int64{1}, true, false)
	} else {
		gumbel := uGumbel.MustLog(false).MustNeg(false).MustLog(false)
		k = d.logits.MustDivScalar(ts.FloatScalar(t), false).MustSub(gumbel, false).MustArgmax([]int64{1}, true, false)
	}
	b, c, h, w := d.shape[0], d.shape[1], d.shape[2], d.shape[3]
	idx := k.MustUnsqueeze(1, false).MustExpand([]int64{b, c, 1, h, w}, false, false)
	pick := func(p *ts.Tensor) *ts.Tensor { return p.MustGather(2, idx, false, false).MustSqueezeDim(2, false) }
	mu := pick(d.means)
	if t != 0 {
		s := pick(d.logScales).MustExp(false)
		logit := uLogistic.MustLog(false).MustSub(uLogistic.MustNeg(false).MustAddScalar(ts.FloatScalar(1), false).MustLog(false), false)
		mu = mu.MustAdd(s.MustMulScalar(ts.FloatScalar(t), false).MustMul(logit, false), false)
	}
	var co *ts.Tensor
	if d.coeffs != nil {
		co = pick(d.coeffs)
	}
	return autoregress(mu, co)
}

// autoregress maps means mu (B, C, H, W) in y units to an image in [0, 1]:
// for RGB G and B add the coefficients (B, 3, H, W) times the channels
// before them, each channel clamped to [−1, 1] first, as NVAE samples.
func autoregress(mu, co *ts.Tensor) *ts.Tensor {
	clamp := func(t *ts.Tensor) *ts.Tensor { return t.MustClamp(ts.FloatScalar(-1), ts.FloatScalar(1), false) }
	var y *ts.Tensor
	if co == nil {
		y = clamp(mu)
	} else {
		m := func(i int64) *ts.Tensor { return mu.MustSelect(1, i, false) }
		c := func(i int64) *ts.Tensor { return co.MustSelect(1, i, false) }
		r := clamp(m(0))
		g := clamp(m(1).MustAdd(c(0).MustMul(r, false), false))
		b := clamp(m(2).MustAdd(c(1).MustMul(r, false), false).MustAdd(c(2).MustMul(g, false), false))
		y = ts.MustStack([]*ts.Tensor{r, g, b}, 1)
	}
	return y.MustDivScalar(ts.FloatScalar(2), false).MustAddScalar(ts.FloatScalar(0.5), false)
}
