package flows

import (
	"fmt"
	"math"

	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Layer is one invertible map on NCHW tensors. Forward maps data to latent
// and returns log|det ∂z/∂x| per sample (N); Inverse maps back and returns
// the log-determinant of its own direction, so the two cancel.
//
// Layers panic (like gotch's Must ops) on tensors of the wrong shape, with
// an error saying what was expected; the public model methods validate
// their input and recover such panics into errors.
type Layer interface {
	Forward(x *ts.Tensor) (z, logdet *ts.Tensor)
	Inverse(z *ts.Tensor) (x, logdet *ts.Tensor)
}

// shape4 returns the NCHW sizes of x, or panics with a clear error.
func shape4(x *ts.Tensor, who string) (n, c, h, w int64) {
	s := x.MustSize()
	if len(s) != 4 {
		panic(fmt.Errorf("flows: %s expects an NCHW tensor, got shape %v", who, s))
	}
	return s[0], s[1], s[2], s[3]
}

// checkChannels panics unless x is NCHW with c channels.
func checkChannels(x *ts.Tensor, c int64, who string) {
	_, got, _, _ := shape4(x, who)
	if got != c {
		panic(fmt.Errorf("flows: %s was built for %d channels, got a tensor of shape %v", who, c, x.MustSize()))
	}
}

// sumPerSample sums t over every dimension but the first.
func sumPerSample(t *ts.Tensor) *ts.Tensor {
	s := t.MustSize()
	dims := make([]int64, 0, len(s)-1)
	for d := 1; d < len(s); d++ {
		dims = append(dims, int64(d))
	}
	return t.MustSumDimIntlist(dims, false, t.DType(), false)
}

// perSample broadcasts a one-element log-determinant to the n samples.
func perSample(ld *ts.Tensor, n int64) *ts.Tensor {
	return ld.MustReshape([]int64{1}, false).MustExpand([]int64{n}, false, true)
}

func zerosN(n int64, like *ts.Tensor) *ts.Tensor {
	return ts.MustZeros([]int64{n}, like.DType(), like.MustDevice())
}

func scalar(v float64) *ts.Scalar { return ts.FloatScalar(v) }

// oneMinus is 1 − t.
func oneMinus(t *ts.Tensor, del bool) *ts.Tensor {
	return t.MustNeg(del).MustAddScalar(scalar(1), true)
}

// Squeeze reshapes (N,C,H,W) to (N,4C,H/2,W/2): each 2×2 spatial block
// becomes 4 channels, output channel 4c+2i+j holding x[c, 2h+i, 2w+j]
// (normflows' and Glow's order).
func Squeeze(x *ts.Tensor) (out *ts.Tensor, err error) {
	defer nn.Recover(&err)
	s := x.MustSize()
	if len(s) != 4 {
		return nil, fmt.Errorf("flows: squeeze expects an NCHW tensor, got shape %v", s)
	}
	n, c, h, w := s[0], s[1], s[2], s[3]
	if h%2 != 0 || w%2 != 0 {
		return nil, fmt.Errorf("flows: cannot squeeze %d×%d images: height and width must be even (got shape %v; pick an image size divisible by 2^levels)", h, w, s)
	}
	return x.MustReshape([]int64{n, c, h / 2, 2, w / 2, 2}, false).
		MustPermute([]int64{0, 1, 3, 5, 2, 4}, true).
		MustReshape([]int64{n, 4 * c, h / 2, w / 2}, true), nil
}

// Unsqueeze inverts Squeeze: (N,4C,H,W) to (N,C,2H,2W).
func Unsqueeze(z *ts.Tensor) (out *ts.Tensor, err error) {
	defer nn.Recover(&err)
	s := z.MustSize()
	if len(s) != 4 {
		return nil, fmt.Errorf("flows: unsqueeze expects an NCHW tensor, got shape %v", s)
	}
	n, c, h, w := s[0], s[1], s[2], s[3]
	if c%4 != 0 {
		return nil, fmt.Errorf("flows: cannot unsqueeze %d channels: the channel count must be divisible by 4 (got shape %v)", c, s)
	}
	return z.MustReshape([]int64{n, c / 4, 2, 2, h, w}, false).
		MustPermute([]int64{0, 1, 4, 2, 5, 3}, true).
		MustReshape([]int64{n, c / 4, 2 * h, 2 * w}, true), nil
}

// SqueezeLayer is Squeeze as a Layer (log-determinant 0).
type SqueezeLayer struct{}

func must(t *ts.Tensor, err error) *ts.Tensor {
	if err != nil {
		panic(err)
	}
	return t
}

// Forward squeezes.
func (SqueezeLayer) Forward(x *ts.Tensor) (*ts.Tensor, *ts.Tensor) {
	z := must(Squeeze(x))
	return z, zerosN(z.MustSize()[0], z)
}

// Inverse unsqueezes.
func (SqueezeLayer) Inverse(z *ts.Tensor) (*ts.Tensor, *ts.Tensor) {
	x := must(Unsqueeze(z))
	return x, zerosN(x.MustSize()[0], x)
}

// CheckerboardMask is a (1,1,H,W) float32 mask with 1 where (i+j)%2 ==
// parity: the pixels a checkerboard coupling conditions on.
func CheckerboardMask(h, w int64, parity int, device gotch.Device) *ts.Tensor {
	i := ts.MustArange(scalar(float64(h)), gotch.Float, device).MustReshape([]int64{h, 1}, true)
	j := ts.MustArange(scalar(float64(w)), gotch.Float, device).MustReshape([]int64{1, w}, true)
	odd := i.MustAdd(j, true).MustRemainder(scalar(2), true)
	if parity%2 == 0 {
		odd = oneMinus(odd, true)
	}
	return odd.MustReshape([]int64{1, 1, h, w}, true)
}

// ChannelMask is a (1,C,1,1) float32 mask with 1 on the channels a
// channel-wise coupling conditions on: the first ⌈C/2⌉ for parity 0, the
// last ⌊C/2⌋ for parity 1. (Couplings slice the channels instead of
// multiplying by this mask; it documents and tests the partition.)
func ChannelMask(c int64, parity int, device gotch.Device) *ts.Tensor {
	first := (c + 1) / 2
	v := make([]float32, c)
	for k := range v {
		if (int64(k) < first) == (parity%2 == 0) {
			v[k] = 1
		}
	}
	return ts.MustOfSlice(v).MustReshape([]int64{1, c, 1, 1}, true).MustTo(device, true)
}

// ActNorm is a per-channel affine map z = (x − bias)·exp(−logs) whose
// parameters are set from the first batch it sees (data-dependent init:
// bias = mean, logs = log(std + 1e-6) over batch and space, so that batch
// comes out with zero mean and unit variance per channel). The
// "initialised" buffer is saved with the weights, so a loaded model is not
// re-initialised.
type ActNorm struct {
	C           int64
	Bias, Logs  *ts.Tensor // (1,C,1,1)
	Initialised *ts.Tensor // (1): 0 until the data-dependent init ran
	inited      bool       // cached Initialised == 1
}

// NewActNorm registers bias, logs and the initialised flag under p.
func NewActNorm(p nn.Path, c int64) (a *ActNorm, err error) {
	defer nn.Recover(&err)
	if c <= 0 {
		return nil, fmt.Errorf("flows: ActNorm needs a positive channel count, got %d", c)
	}
	sc := ts.NewScope()
	defer sc.Close()
	a = &ActNorm{C: c}
	shape := []int64{1, c, 1, 1}
	if a.Bias, err = p.Param("bias", nn.Zeros(shape, p.Device())); err != nil {
		return nil, err
	}
	if a.Logs, err = p.Param("logs", nn.Zeros(shape, p.Device())); err != nil {
		return nil, err
	}
	if a.Initialised, err = p.Buffer("initialised", nn.Zeros([]int64{1}, p.Device())); err != nil {
		return nil, err
	}
	return a, nil
}

// IsInitialised reads the flag (a loaded checkpoint may have set it). Once
// true it is cached, so training does not read the buffer (a device sync)
// every step; load weights before the first Forward.
func (a *ActNorm) IsInitialised() bool {
	if !a.inited {
		v, err := a.Initialised.Float64()
		a.inited = err == nil && v != 0
	}
	return a.inited
}

// Initialise sets bias and logs from the batch x and sets the flag.
func (a *ActNorm) Initialise(x *ts.Tensor) {
	checkChannels(x, a.C, "ActNorm")
	ts.NoGrad(func() {
		d := x.MustDetach(false)
		dims := []int64{0, 2, 3}
		mean := d.MustMeanDim(dims, true, d.DType(), false)
		std := d.MustStdDim(dims, true, true, false)
		a.Bias.Copy_(mean)
		a.Logs.Copy_(std.MustAddScalar(scalar(1e-6), true).MustLog(true))
		a.Initialised.MustFill_(scalar(1))
	})
	a.inited = true
}

// Forward normalises x, initialising on the first call.
func (a *ActNorm) Forward(x *ts.Tensor) (*ts.Tensor, *ts.Tensor) {
	n, _, h, w := shape4(x, "ActNorm")
	checkChannels(x, a.C, "ActNorm")
	if !a.IsInitialised() {
		a.Initialise(x)
	}
	z := x.MustSub(a.Bias, false).MustMul(a.Logs.MustNeg(false).MustExp(true), true)
	ld := a.Logs.MustSum(a.Logs.DType(), false).MustMulScalar(scalar(-float64(h*w)), true)
	return z, perSample(ld, n)
}

// Inverse maps z back: x = z·exp(logs) + bias. It never initialises.
func (a *ActNorm) Inverse(z *ts.Tensor) (*ts.Tensor, *ts.Tensor) {
	n, _, h, w := shape4(z, "ActNorm")
	checkChannels(z, a.C, "ActNorm")
	x := z.MustMul(a.Logs.MustExp(false), false).MustAdd(a.Bias, true)
	ld := a.Logs.MustSum(a.Logs.DType(), false).MustMulScalar(scalar(float64(h*w)), true)
	return x, perSample(ld, n)
}

// InvConv1x1 is Glow's invertible 1×1 convolution in LU form:
// W = P·(tril(Lower,−1)+I)·(triu(Upper,1)+diag(SignS·exp(LogS))), with the
// permutation P and the signs fixed buffers. It starts as a random
// rotation (Q of a QR of a Gaussian matrix). log|det| = H·W·Σ LogS; the
// inverse matrix is computed in float64.
type InvConv1x1 struct {
	C                  int64
	Lower, Upper, LogS *ts.Tensor // (C,C), (C,C), (C)
	Perm, SignS        *ts.Tensor // buffers (C,C), (C)
}

// NewInvConv1x1 registers the LU factors of a random rotation under p,
// drawing from libtorch's generator.
func NewInvConv1x1(p nn.Path, c int64) (l *InvConv1x1, err error) {
	defer nn.Recover(&err)
	if c <= 0 {
		return nil, fmt.Errorf("flows: InvConv1x1 needs a positive channel count, got %d", c)
	}
	sc := ts.NewScope()
	defer sc.Close()
	g := ts.MustRandn([]int64{c, c}, gotch.Double, gotch.CPU)
	q, _ := ts.MustLinalgQr(g, "reduced")
	perm, lower, upper := ts.MustLinalgLu(q, true)
	s := upper.MustDiag(0, false)
	f := func(t *ts.Tensor) *ts.Tensor { return t.MustTotype(gotch.Float, false) }
	l = &InvConv1x1{C: c}
	if l.Lower, err = p.Param("lower", f(lower)); err != nil {
		return nil, err
	}
	if l.Upper, err = p.Param("upper", f(upper.MustTriu(1, false))); err != nil {
		return nil, err
	}
	if l.LogS, err = p.Param("log_s", f(s.MustAbs(false).MustLog(true))); err != nil {
		return nil, err
	}
	if l.Perm, err = p.Buffer("perm", f(perm)); err != nil {
		return nil, err
	}
	if l.SignS, err = p.Buffer("sign_s", f(s.MustSign(false))); err != nil {
		return nil, err
	}
	return l, nil
}

// Weight is W = P·L·U as a (C,C) matrix in the parameters' dtype.
func (l *InvConv1x1) Weight() *ts.Tensor { return l.weight(l.Lower.DType()) }

// weight assembles W in dtype (the factors are cast first).
func (l *InvConv1x1) weight(dtype gotch.DType) *ts.Tensor {
	cast := func(t *ts.Tensor) *ts.Tensor {
		if t.DType() == dtype {
			return t
		}
		return t.MustTotype(dtype, false)
	}
	eye := ts.MustEye(l.C, dtype, l.Lower.MustDevice())
	lower := cast(l.Lower).MustTril(-1, false).MustAdd(eye, true)
	diag := cast(l.SignS).MustMul(cast(l.LogS).MustExp(false), false).MustDiagEmbed(0, -2, -1, true)
	upper := cast(l.Upper).MustTriu(1, false).MustAdd(diag, true)
	return cast(l.Perm).MustMatmul(lower, false).MustMatmul(upper, true)
}

func (l *InvConv1x1) logdet(h, w, n int64, sign float64) *ts.Tensor {
	ld := l.LogS.MustSum(l.LogS.DType(), false).MustMulScalar(scalar(sign*float64(h*w)), true)
	return perSample(ld, n)
}

func conv1x1(x, w *ts.Tensor) *ts.Tensor {
	c := w.MustSize()[0]
	k := w.MustReshape([]int64{c, c, 1, 1}, false)
	return ts.MustConv2d(x, k, ts.None, []int64{1, 1}, []int64{0, 0}, []int64{1, 1}, 1)
}

// Forward applies W to every pixel's channel vector.
func (l *InvConv1x1) Forward(x *ts.Tensor) (*ts.Tensor, *ts.Tensor) {
	n, _, h, w := shape4(x, "InvConv1x1")
	checkChannels(x, l.C, "InvConv1x1")
	return conv1x1(x, l.Weight()), l.logdet(h, w, n, 1)
}

// InverseWeight is W⁻¹ as a float64 (C,C) matrix: W is assembled from its
// LU factors and inverted in float64, so that float32 round-off in the
// inversion does not accumulate over the K·L convolutions when sampling.
func (l *InvConv1x1) InverseWeight() *ts.Tensor {
	return ts.MustLinalgInv(l.weight(gotch.Double))
}

// Inverse applies W⁻¹.
func (l *InvConv1x1) Inverse(z *ts.Tensor) (*ts.Tensor, *ts.Tensor) {
	n, _, h, w := shape4(z, "InvConv1x1")
	checkChannels(z, l.C, "InvConv1x1")
	return conv1x1(z, l.InverseWeight().MustTotype(z.DType(), true)), l.logdet(h, w, n, -1)
}

// Logit is RealNVP's preprocessing of data in [0,1]:
// z = logit(α + (1−2α)·x), which keeps z finite at x = 0 and 1.
// log|det| = Σ log(1−2α) − log p − log(1−p), with p = α + (1−2α)·x. Inputs
// outside (−α/(1−2α), (1−α)/(1−2α)) give NaN; callers clamp mollified data.
type Logit struct {
	Alpha float64
}

// NewLogit checks α ∈ [0, 0.5).
func NewLogit(alpha float64) (*Logit, error) {
	if !(alpha >= 0 && alpha < 0.5) {
		return nil, fmt.Errorf("flows: logit α must be in [0, 0.5), got %g", alpha)
	}
	return &Logit{Alpha: alpha}, nil
}

// Forward maps [0,1] data to logit space.
func (l *Logit) Forward(x *ts.Tensor) (*ts.Tensor, *ts.Tensor) {
	p := x.MustMulScalar(scalar(1-2*l.Alpha), false).MustAddScalar(scalar(l.Alpha), true)
	logp := p.MustLog(false)
	log1mp := oneMinus(p, false).MustLog(true)
	z := logp.MustSub(log1mp, false)
	per := logp.MustAdd(log1mp, true).MustNeg(true).MustAddScalar(scalar(math.Log(1-2*l.Alpha)), true)
	return z, sumPerSample(per)
}

// Inverse maps logits back to [0,1].
func (l *Logit) Inverse(z *ts.Tensor) (*ts.Tensor, *ts.Tensor) {
	x := z.MustSigmoid(false).MustSubScalar(scalar(l.Alpha), true).MustDivScalar(scalar(1-2*l.Alpha), true)
	// log σ(z) + log σ(−z) − log(1−2α) per element.
	per := z.MustLogSigmoid(false).MustAdd(z.MustNeg(false).MustLogSigmoid(true), true).
		MustSubScalar(scalar(math.Log(1-2*l.Alpha)), true)
	return x, sumPerSample(per)
}
