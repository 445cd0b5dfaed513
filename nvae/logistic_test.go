package nvae

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"slices"
	"testing"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/internal/testenv"
	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Helpers of this file carry an ml prefix: other files of the package have
// their own.

// mlBegin opens a scope (which pins the goroutine to its OS thread, where
// torch keeps its state); call the returned function at the end.
func mlBegin(t *testing.T) func() {
	t.Helper()
	sc := ts.NewScope()
	return sc.Close
}

func mlValues(x *ts.Tensor) []float64 {
	return x.MustTotype(gotch.Double, false).MustContiguous(false).Float64Values()
}

func mlTensor(shape []int64, v []float64, dtype gotch.DType) *ts.Tensor {
	return ts.MustOfSlice(v).MustView(shape, false).MustTotype(dtype, false)
}

// mlMaxErr is the largest |got − want| / (1 + |want|).
func mlMaxErr(got, want []float64) (worst float64, at int) {
	for i := range want {
		e := math.Abs(got[i]-want[i]) / (1 + math.Abs(want[i]))
		if !(e <= worst) { // NaN counts as worst
			worst, at = e, i
			if math.IsNaN(e) {
				return math.Inf(1), i
			}
		}
	}
	return worst, at
}

func mlDist(t *testing.T, param *ts.Tensor, channels, mixtures int) *MixLogistic {
	t.Helper()
	d, err := NewMixLogistic(param, channels, mixtures)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// mlMust(t)(f()) is f's tensor, failing the test on f's error.
func mlMust(t *testing.T) func(*ts.Tensor, error) *ts.Tensor {
	t.Helper()
	return func(x *ts.Tensor, err error) *ts.Tensor {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
}

// mlGrad is the gradient of f(param).sum() with respect to param.
func mlGrad(t *testing.T, param *ts.Tensor, f func(p *ts.Tensor) *ts.Tensor) *ts.Tensor {
	t.Helper()
	p := param.MustDetachCopy(false)
	p.MustRequiresGrad_(true)
	g, err := ts.RunBackward([]*ts.Tensor{f(p).MustSum(p.DType(), false)}, []*ts.Tensor{p}, false, false)
	if err != nil {
		t.Fatal(err)
	}
	return g[0]
}

// The discretized and continuous log-likelihoods, their gradients with
// respect to the decoder output, the mean and samples from given uniforms
// match an independent PyTorch transcription of NVAE's formulas
// (testdata/gen_golden.py) on random parameters and data on the 256-level
// grid, off it and outside [0, 1], for RGB (10 and 3 components) and one
// channel, in float32 and float64.
func TestMixLogisticParityWithPyTorch(t *testing.T) {
	defer mlBegin(t)()
	g, meta, err := nn.LoadTensors("testdata/logistic.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"rgb", "gray", "rgb_m3"} {
		var m struct {
			Channels, Mixtures int
			Temperatures       []float64
			Branches           map[string]int
		}
		if err := json.Unmarshal([]byte(meta[name]), &m); err != nil {
			t.Fatalf("%s metadata: %v", name, err)
		}
		for branch, n := range m.Branches {
			if n == 0 {
				t.Errorf("%s: the golden never takes the %s branch", name, branch)
			}
		}
		for _, dt := range []struct {
			tag   string
			kind  gotch.DType
			value float64 // tolerance on log-probabilities, the mean and samples
			grad  float64 // tolerance on gradients, relative to their largest entry
		}{{"f32", gotch.Float, 1e-5, 1e-5}, {"f64", gotch.Double, 1e-10, 1e-10}} {
			t.Run(name+"/"+dt.tag, func(t *testing.T) {
				defer mlBegin(t)()
				want := func(k string) []float64 { return mlValues(g[name+"."+dt.tag+"."+k]) }
				param := g[name+".param"].MustTotype(dt.kind, false)
				x := g[name+".x"].MustTotype(dt.kind, false)
				d := mlDist(t, param, m.Channels, m.Mixtures)
				for _, c := range []struct {
					key   string
					pix   func(*MixLogistic, *ts.Tensor) (*ts.Tensor, error)
					total func(*MixLogistic, *ts.Tensor) (*ts.Tensor, error)
				}{
					{"disc", (*MixLogistic).LogProbPixels, (*MixLogistic).LogProb},
					{"cont", (*MixLogistic).ContinuousLogProbPixels, (*MixLogistic).ContinuousLogProb},
				} {
					got := mlValues(mlMust(t)(c.pix(d, x)))
					w := want(c.key)
					if e, i := mlMaxErr(got, w); e > dt.value {
						t.Errorf("%s log p: pixel %d is %.9g, PyTorch %.9g (error %.2g > %g)", c.key, i, got[i], w[i], e, dt.value)
					}
					// per example: the sum over pixels, against PyTorch's pixels summed here
					tot := mlValues(mlMust(t)(c.total(d, x)))
					per := len(w) / len(tot)
					for b := range tot {
						s := 0.0
						for _, v := range w[b*per : (b+1)*per] {
							s += v
						}
						if e := math.Abs(tot[b]-s) / (1 + math.Abs(s)); e > dt.value {
							t.Errorf("%s log p of example %d = %.9g, PyTorch's pixels sum to %.9g", c.key, b, tot[b], s)
						}
					}
					grad := mlValues(mlGrad(t, param, func(p *ts.Tensor) *ts.Tensor {
						return mlMust(t)(c.pix(mlDist(t, p, m.Channels, m.Mixtures), x))
					}))
					wg := want(c.key + "_grad")
					scale := 0.0
					for _, v := range wg {
						scale = math.Max(scale, math.Abs(v))
					}
					for i := range wg {
						if e := math.Abs(grad[i]-wg[i]) / scale; !(e <= dt.grad) {
							t.Errorf("%s gradient entry %d = %.9g, PyTorch %.9g (error %.2g of the largest, %.3g)", c.key, i, grad[i], wg[i], e, scale)
							break
						}
					}
				}
				mean := mlValues(mlMust(t)(d.Mean()))
				if e, i := mlMaxErr(mean, want("mean")); e > dt.value {
					t.Errorf("mean entry %d = %.9g, PyTorch %.9g", i, mean[i], want("mean")[i])
				}
				if dt.kind != gotch.Double {
					return
				}
				for i, temp := range m.Temperatures {
					var s *ts.Tensor
					ts.NoGrad(func() { s = d.sampleWith(temp, g[name+".u_gumbel"], g[name+".u_logistic"]) })
					got, w := mlValues(s), want(fmt.Sprintf("sample%d", i))
					if e, j := mlMaxErr(got, w); e > dt.value {
						t.Errorf("sample at temperature %g: entry %d = %.9g, PyTorch %.9g", temp, j, got[j], w[j])
					}
				}
			})
		}
	}
}

// mlRandomParam is a decoder output (1, P, 1, 1) for one pixel with
// log-scales in [lsLo, lsHi].
func mlRandomParam(rng *rand.Rand, channels, mixtures int, lsLo, lsHi float64) *ts.Tensor {
	M := mixtures
	per := 2 * M
	if channels == 3 {
		per = 3 * M
	}
	v := make([]float64, M+channels*per)
	for k := 0; k < M; k++ {
		v[k] = 2 * rng.NormFloat64()
	}
	for c := 0; c < channels; c++ {
		b := v[M+c*per:]
		for k := 0; k < M; k++ {
			b[k] = 0.6 * rng.NormFloat64()
			b[M+k] = lsLo + (lsHi-lsLo)*rng.Float64()
			if channels == 3 {
				b[2*M+k] = 1.5 * rng.NormFloat64()
			}
		}
	}
	return mlTensor([]int64{1, int64(len(v)), 1, 1}, v, gotch.Double)
}

// mlLevels is an image (1, 1, 16, 16) holding the 256 levels k/255.
func mlLevels() *ts.Tensor {
	v := make([]float64, 256)
	for k := range v {
		v[k] = float64(k) / 255
	}
	return mlTensor([]int64{1, 1, 16, 16}, v, gotch.Double)
}

// The probabilities of the 256 levels sum to 1: of a grey pixel; for RGB,
// of each channel under each component given the channels before it (the
// autoregressive conditionals, the others held at random levels), and of
// all 256³ colours of a pixel under the whole mixture. Bins whose mass is
// at most 1e-5 are scored by NVAE's density × bin width instead of the
// mass, which is off by less than that per bin: the sums are within 1e-6
// for wide components (log-scales in [−1.5, 0.5], only far tails under the
// cut) and 1e-4 for narrow ones (log-scales down to NVAE's floor of −7).
func TestMixLogisticSumsToOne(t *testing.T) {
	defer mlBegin(t)()
	rng := rand.New(rand.NewSource(14))
	cases := []struct {
		name       string
		lsLo, lsHi float64
		tol        float64
	}{
		{"wide", -1.5, 0.5, 1e-6},
		{"narrow", -8, -3, 1e-4},
	}
	for _, c := range cases {
		t.Run("gray/"+c.name, func(t *testing.T) {
			defer mlBegin(t)()
			for trial := 0; trial < 5; trial++ {
				param := mlRandomParam(rng, 1, 10, c.lsLo, c.lsHi).MustExpand([]int64{1, 30, 16, 16}, false, false)
				lp := mlMust(t)(mlDist(t, param, 1, 10).LogProbPixels(mlLevels()))
				sum := mlValues(lp.MustExp(false).MustSum(gotch.Double, false))[0]
				if math.Abs(sum-1) > c.tol {
					t.Errorf("trial %d: the 256 levels have total probability %.12g", trial, sum)
				}
			}
		})
		t.Run("rgb-conditionals/"+c.name, func(t *testing.T) {
			defer mlBegin(t)()
			const M = 10
			param := mlRandomParam(rng, 3, M, c.lsLo, c.lsHi).MustExpand([]int64{1, 10 * M, 16, 16}, false, false)
			d := mlDist(t, param, 3, M)
			for ch := int64(0); ch < 3; ch++ {
				// channel ch runs over the 256 levels, the others are fixed
				planes := make([]*ts.Tensor, 3)
				for o := int64(0); o < 3; o++ {
					if o == ch {
						planes[o] = mlLevels()
					} else {
						planes[o] = ts.MustFull([]int64{1, 1, 16, 16}, ts.FloatScalar(float64(rng.Intn(256))/255), gotch.Double, gotch.CPU)
					}
				}
				y := ts.MustCat(planes, 1).MustMulScalar(ts.FloatScalar(2), false).MustSubScalar(ts.FloatScalar(1), false)
				yk, mu := d.condMeans(y)
				lp := discLogProbs(yk, mu, d.logScales).MustSelect(1, ch, false) // (1, M, 16, 16)
				sums := mlValues(lp.MustExp(false).MustSumDimIntlist([]int64{0, 2, 3}, false, gotch.Double, false))
				for k, s := range sums {
					if math.Abs(s-1) > c.tol {
						t.Errorf("channel %d, component %d: the 256 levels have total probability %.12g given the others", ch, k, s)
					}
				}
			}
		})
	}
	t.Run("rgb-joint", func(t *testing.T) {
		defer mlBegin(t)()
		// 16 values of R per call, G along H and B along W: 16 calls.
		const M = 2
		param := mlRandomParam(rng, 3, M, -3, 0).MustTotype(gotch.Float, false).MustExpand([]int64{16, 10 * M, 256, 256}, false, false)
		d := mlDist(t, param, 3, M)
		lv := ts.MustArange(ts.IntScalar(256), gotch.Float, gotch.CPU).MustDivScalar(ts.FloatScalar(255), false)
		g := lv.MustView([]int64{1, 1, 256, 1}, false).MustExpand([]int64{16, 1, 256, 256}, false, false)
		b := lv.MustView([]int64{1, 1, 1, 256}, false).MustExpand([]int64{16, 1, 256, 256}, false, false)
		total := 0.0
		for r0 := 0; r0 < 256; r0 += 16 {
			func() {
				sc := ts.NewScope()
				defer sc.Close()
				r := lv.MustNarrow(0, int64(r0), 16, false).MustView([]int64{16, 1, 1, 1}, false).MustExpand([]int64{16, 1, 256, 256}, false, false)
				lp := mlMust(t)(d.LogProbPixels(ts.MustCat([]*ts.Tensor{r, g, b}, 1)))
				total += mlValues(lp.MustTotype(gotch.Double, false).MustExp(false).MustSum(gotch.Double, false))[0]
			}()
		}
		if math.Abs(total-1) > 1e-5 {
			t.Errorf("the 256³ colours of a pixel have total probability %.9g", total)
		}
	})
}

// mlPixel is a 1-channel mixture at one pixel with its parameters read
// back in float64: weights π_k, means μ_k (y units) and scales s_k.
type mlPixel struct {
	d           *MixLogistic
	pi, mu, sca []float64
}

func mlGrayPixel(t *testing.T, rng *rand.Rand, M int) mlPixel {
	t.Helper()
	param := mlRandomParam(rng, 1, M, -3, -1)
	v := mlValues(param)
	p := mlPixel{d: mlDist(t, param, 1, M)}
	z := 0.0
	for k := 0; k < M; k++ {
		z += math.Exp(v[k])
	}
	for k := 0; k < M; k++ {
		p.pi = append(p.pi, math.Exp(v[k])/z)
		p.mu = append(p.mu, v[M+k])
		p.sca = append(p.sca, math.Exp(math.Max(v[2*M+k], logScaleMin)))
	}
	return p
}

// mix is log Σ_k π_k f_k.
func (p mlPixel) mix(f func(mu, s float64) float64) float64 {
	s := 0.0
	for k := range p.pi {
		s += p.pi[k] * f(p.mu[k], p.sca[k])
	}
	return math.Log(s)
}

func mlSigmoid(z float64) float64 { return 1 / (1 + math.Exp(-z)) }

// Values outside [0, 1] take NVAE's edge formulas as they are: x = −0.3
// (y = −1.6) scores log P(Y ≤ −1.6 + 1/255) and x = 1.4 scores
// log P(Y ≥ 2.8 − 1/255), which are below the edge bins' log P(Y ≤ −1 +
// 1/255) and log P(Y ≥ 1 − 1/255) that x = 0 and x = 1 get: the value is
// not clamped (a clamp would score −0.3 as 0). Everything stays finite and
// ≤ 0, far out too. The continuous likelihood is the mixture's density at x
// and differs. The caller's x is left unchanged.
func TestMixLogisticOutOfRange(t *testing.T) {
	defer mlBegin(t)()
	rng := rand.New(rand.NewSource(3))
	p := mlGrayPixel(t, rng, 4)
	score := func(x float64, cont bool) float64 {
		xt := mlTensor([]int64{1, 1, 1, 1}, []float64{x}, gotch.Double)
		before := mlValues(xt)[0]
		var lp *ts.Tensor
		var err error
		if cont {
			lp, err = p.d.ContinuousLogProb(xt)
		} else {
			lp, err = p.d.LogProb(xt)
		}
		v := mlValues(mlMust(t)(lp, err))[0]
		if after := mlValues(xt)[0]; after != before {
			t.Fatalf("scoring changed the caller's x from %g to %g", before, after)
		}
		return v
	}
	below := func(y float64) func(mu, s float64) float64 {
		return func(mu, s float64) float64 { return mlSigmoid((y + halfBin - mu) / s) }
	}
	above := func(y float64) func(mu, s float64) float64 {
		return func(mu, s float64) float64 { return 1 - mlSigmoid((y-halfBin-mu)/s) }
	}
	density := func(y float64) func(mu, s float64) float64 {
		return func(mu, s float64) float64 {
			e := math.Exp(-(y - mu) / s)
			return 2 * e / (s * (1 + e) * (1 + e)) // ×2: density of x = (y+1)/2
		}
	}
	for _, c := range []struct {
		x    float64
		want float64
		name string
	}{
		{0, p.mix(below(-1)), "lower edge bin"},
		{1, p.mix(above(1)), "upper edge bin"},
		{-0.3, p.mix(below(-1.6)), "below 0: lower edge formula at y = −1.6"},
		{1.4, p.mix(above(1.8)), "above 1: upper edge formula at y = 1.8"},
		{-0.0004, p.mix(below(-1.0008)), "just below 0"},
		{0.5 + 0.3/255, p.mix(func(mu, s float64) float64 { return below(0.6/255)(mu, s) - below(0.6/255-2*halfBin)(mu, s) }), "off the grid: a bin-wide window around y"},
	} {
		if got := score(c.x, false); math.Abs(got-c.want) > 1e-9*(1+math.Abs(c.want)) {
			t.Errorf("%s: log p(x=%g) = %.12g, want %.12g", c.name, c.x, got, c.want)
		}
	}
	if lo, edge := score(-0.3, false), score(0, false); !(lo < edge) {
		t.Errorf("log p(x=−0.3) = %g is not below the lower edge bin's %g: the value must not be clamped to 0", lo, edge)
	}
	if hi, edge := score(1.4, false), score(1, false); !(hi < edge) {
		t.Errorf("log p(x=1.4) = %g is not below the upper edge bin's %g", hi, edge)
	}
	for _, x := range []float64{-50, -3, 4, 50} {
		if v := score(x, false); math.IsNaN(v) || math.IsInf(v, 0) || v > 0 {
			t.Errorf("log p(x=%g) = %g, want finite and ≤ 0", x, v)
		}
	}
	for _, x := range []float64{-0.3, 0, 0.5, 1.4} {
		cont, disc := score(x, true), score(x, false)
		if want := p.mix(density(2*x - 1)); math.Abs(cont-want) > 1e-9*(1+math.Abs(want)) {
			t.Errorf("continuous log p(x=%g) = %.12g, want the density %.12g", x, cont, want)
		}
		if math.Abs(cont-disc) < 1e-3 {
			t.Errorf("x=%g: continuous %g and discretized %g agree", x, cont, disc)
		}
	}
}

// Likelihood scores clean batches with the discretized likelihood always,
// and mollified ones with the configured one.
func TestMixLogisticLikelihoodChoice(t *testing.T) {
	defer mlBegin(t)()
	rng := rand.New(rand.NewSource(5))
	param := mlRandomParam(rng, 3, 10, -3, 0).MustExpand([]int64{2, 100, 3, 3}, false, false)
	d := mlDist(t, param, 3, 10)
	x := ts.MustRand([]int64{2, 3, 3, 3}, gotch.Double, gotch.CPU).MustMulScalar(ts.FloatScalar(1.4), false).MustSubScalar(ts.FloatScalar(0.2), false)
	disc := mlValues(mlMust(t)(d.LogProb(x)))
	cont := mlValues(mlMust(t)(d.ContinuousLogProb(x)))
	for _, c := range []struct {
		mollified bool
		setting   string
		want      []float64
	}{
		{false, config.NVAELikelihoodDiscretized, disc},
		{true, config.NVAELikelihoodDiscretized, disc},
		{false, config.NVAELikelihoodContinuous, disc},
		{true, config.NVAELikelihoodContinuous, cont},
	} {
		got := mlValues(mlMust(t)(d.Likelihood(x, c.mollified, c.setting)))
		if e, _ := mlMaxErr(got, c.want); e != 0 {
			t.Errorf("mollified=%v, %s: got %v, want %v", c.mollified, c.setting, got, c.want)
		}
	}
	if config.DefaultNVAE().MollifiedLikelihood != config.NVAELikelihoodDiscretized {
		t.Errorf("default model.nvae.mollified_likelihood is %q, want %q (what the authors ran)", config.DefaultNVAE().MollifiedLikelihood, config.NVAELikelihoodDiscretized)
	}
	bad := config.DefaultNVAE()
	bad.MollifiedLikelihood = "clamp"
	testenv.AssertError(t, bad.Validate(), []string{"model.nvae.mollified_likelihood", `"clamp"`, `"discretized"`, `"continuous"`}, nil)
}

// The log-likelihoods are differentiable in every decoder output: logits,
// means, log-scales above NVAE's floor and the RGB coefficients get finite,
// non-zero gradients; log-scales below −7 get none (the floor is a clamp of
// the parameter, not of the data).
func TestMixLogisticGradients(t *testing.T) {
	defer mlBegin(t)()
	rng := rand.New(rand.NewSource(9))
	const M = 4
	for _, C := range []int{1, 3} {
		for _, cont := range []bool{false, true} {
			t.Run(fmt.Sprintf("C=%d/continuous=%v", C, cont), func(t *testing.T) {
				defer mlBegin(t)()
				param := mlRandomParam(rng, C, M, -9, 0).MustExpand([]int64{2, -1, 4, 4}, false, false).MustContiguous(false).MustTotype(gotch.Float, false)
				param = param.MustAdd(ts.MustRandn(param.MustSize(), gotch.Float, gotch.CPU).MustMulScalar(ts.FloatScalar(0.1), false), false)
				// one log-scale below the floor and one above it, whatever the draw
				param.MustNarrow(1, 2*M, 1, false).MustFill_(ts.FloatScalar(-8))
				param.MustNarrow(1, 2*M+1, 1, false).MustFill_(ts.FloatScalar(-2))
				x := ts.MustRandint(256, []int64{2, int64(C), 4, 4}, gotch.Float, gotch.CPU).MustDivScalar(ts.FloatScalar(255), false)
				grad := mlGrad(t, param, func(p *ts.Tensor) *ts.Tensor {
					d := mlDist(t, p, C, M)
					if cont {
						return mlMust(t)(d.ContinuousLogProb(x))
					}
					return mlMust(t)(d.LogProb(x))
				})
				per := 2 * M
				if C == 3 {
					per = 3 * M
				}
				pv, gv := mlValues(param), mlValues(grad)
				P, HW := M+C*per, 16
				groups := map[string][2]float64{} // name: (largest |grad|, count)
				for b := 0; b < 2; b++ {
					for ch := 0; ch < P; ch++ {
						name := "logits"
						if ch >= M {
							switch j := (ch - M) % per; {
							case j < M:
								name = "means"
							case j < 2*M:
								name = "log-scales"
							default:
								name = "coefficients"
							}
						}
						for i := 0; i < HW; i++ {
							k := (b*P+ch)*HW + i
							if math.IsNaN(gv[k]) || math.IsInf(gv[k], 0) {
								t.Fatalf("gradient of %s entry %d is %g", name, k, gv[k])
							}
							if name == "log-scales" && pv[k] < logScaleMin {
								if gv[k] != 0 {
									t.Errorf("log-scale %g below the floor has gradient %g, want 0", pv[k], gv[k])
								}
								name = "floored log-scales"
							}
							g := groups[name]
							groups[name] = [2]float64{math.Max(g[0], math.Abs(gv[k])), g[1] + 1}
						}
					}
				}
				want := []string{"logits", "means", "log-scales", "floored log-scales"}
				if C == 3 {
					want = append(want, "coefficients")
				}
				for _, n := range want {
					g, ok := groups[n]
					if !ok {
						t.Errorf("no %s in the test parameters", n)
					} else if n != "floored log-scales" && g[0] == 0 {
						t.Errorf("the %s get no gradient", n)
					}
				}
			})
		}
	}
}

// Samples have the data's shape and lie in [0, 1]; temperature 0 is the
// most probable component's mean (the mixture's mean when one component
// holds all the weight) and small temperatures tend to it; the temperature
// scales the logistic noise (the standard deviation at t = 0.5 is half that
// at t = 1) and sharpens the component choice (weights ∝ π^(1/t)).
func TestMixLogisticSampling(t *testing.T) {
	defer mlBegin(t)()
	rng := rand.New(rand.NewSource(11))
	for _, C := range []int{1, 3} {
		t.Run(fmt.Sprintf("C=%d", C), func(t *testing.T) {
			defer mlBegin(t)()
			const M = 5
			base := mlRandomParam(rng, C, M, -4, -1)
			param := base.MustExpand([]int64{3, -1, 4, 5}, false, false).MustContiguous(false)
			param = param.MustAdd(ts.MustRandn(param.MustSize(), gotch.Double, gotch.CPU).MustMulScalar(ts.FloatScalar(0.3), false), false)
			d := mlDist(t, param, C, M)
			for _, temp := range []float64{1, 0.5, 1e-7, 0} {
				s := mlMust(t)(d.Sample(temp))
				if got, want := s.MustSize(), []int64{3, int64(C), 4, 5}; !slices.Equal(got, want) {
					t.Fatalf("t=%g: sample shape %v, want %v", temp, got, want)
				}
				for _, v := range mlValues(s) {
					if !(v >= 0 && v <= 1) {
						t.Fatalf("t=%g: sample value %g outside [0, 1]", temp, v)
					}
				}
			}
			mode := mlValues(mlMust(t)(d.Sample(0)))
			if again := mlValues(mlMust(t)(d.Sample(0))); !mlSame(mode, again) {
				t.Error("temperature 0 is not deterministic")
			}
			if near := mlValues(mlMust(t)(d.Sample(1e-7))); !mlClose(near, mode, 1e-5) {
				t.Error("temperature 1e-7 is not within 1e-5 of temperature 0")
			}
			// One dominant component: temperature 0 is NVAE's mean.
			dom := param.MustDetachCopy(false)
			dom.MustNarrow(1, 0, 1, false).MustFill_(ts.FloatScalar(40))
			dd := mlDist(t, dom, C, M)
			if a, b := mlValues(mlMust(t)(dd.Sample(0))), mlValues(mlMust(t)(dd.Mean())); !mlClose(a, b, 1e-9) {
				t.Error("with one component holding all the weight, temperature 0 differs from Mean")
			}
		})
	}
	t.Run("temperature-statistics", func(t *testing.T) {
		defer mlBegin(t)()
		// Grey, two components: π = (1/4, 3/4), means y = ∓0.5, log-scale −3.
		v := []float64{math.Log(0.25), math.Log(0.75), -0.5, 0.5, -3, -3}
		param := mlTensor([]int64{1, 6, 1, 1}, v, gotch.Double).MustExpand([]int64{4, 6, 100, 100}, false, false)
		d := mlDist(t, param, 1, 2)
		for _, c := range []struct{ temp, upper float64 }{{1, 0.75}, {0.5, 0.9}} {
			s := mlValues(mlMust(t)(d.Sample(c.temp)))
			n, up := 0.0, 0.0
			var sum, sq float64
			for _, x := range s {
				if x > 0.5 {
					up++
					dx := x - 0.75 // mean of the upper component in [0, 1]
					sum += dx
					sq += dx * dx
					n++
				}
			}
			frac := up / float64(len(s))
			if math.Abs(frac-c.upper) > 0.01 {
				t.Errorf("t=%g: %.4f of the samples come from the upper component, want %.2f", c.temp, frac, c.upper)
			}
			std := math.Sqrt(sq/n - (sum/n)*(sum/n))
			want := c.temp * math.Exp(-3) * math.Pi / math.Sqrt(3) / 2 // logistic sd, y → x halves it
			if math.Abs(std/want-1) > 0.03 {
				t.Errorf("t=%g: sample sd %.5f, want %.5f (t·s·π/√3 / 2)", c.temp, std, want)
			}
		}
	})
}

func mlSame(a, b []float64) bool { return mlClose(a, b, 0) }

func mlClose(a, b []float64, tol float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !(math.Abs(a[i]-b[i]) <= tol) {
			return false
		}
	}
	return true
}

// Bad settings, parameters and data are errors that say what is wrong.
func TestMixLogisticErrors(t *testing.T) {
	defer mlBegin(t)()
	good := ts.MustZeros([]int64{2, 30, 4, 4}, gotch.Float, gotch.CPU) // 1 channel, 10 components
	rgb := ts.MustZeros([]int64{2, 100, 4, 4}, gotch.Float, gotch.CPU)
	d, err := NewMixLogistic(good, 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		err  func() error
		want []string
	}{
		{"two channels", func() error { _, err := NewMixLogistic(good, 2, 10); return err }, []string{"1 (grey) or 3 (RGB) channels", "got 2"}},
		{"no components", func() error { _, err := NewMixLogistic(good, 1, 0); return err }, []string{"model.nvae.mixtures", "got 0"}},
		{"nil parameters", func() error { _, err := NewMixLogistic(nil, 1, 10); return err }, []string{"no parameter tensor"}},
		{"3-D parameters", func() error {
			_, err := NewMixLogistic(ts.MustZeros([]int64{30, 4, 4}, gotch.Float, gotch.CPU), 1, 10)
			return err
		}, []string{"shape [30 4 4]", "(B, 30, H, W)"}},
		{"RGB parameters as grey", func() error { _, err := NewMixLogistic(rgb, 1, 10); return err }, []string{"shape [2 100 4 4]", "(B, 30, H, W)", "10 components over 1 channels"}},
		{"grey parameters as RGB", func() error { _, err := NewMixLogistic(good, 3, 10); return err }, []string{"(B, 100, H, W)"}},
		{"integer parameters", func() error {
			_, err := NewMixLogistic(ts.MustZeros([]int64{2, 30, 4, 4}, gotch.Int64, gotch.CPU), 1, 10)
			return err
		}, []string{"floating-point"}},
		{"data of another size", func() error {
			_, err := d.LogProb(ts.MustZeros([]int64{2, 1, 4, 5}, gotch.Float, gotch.CPU))
			return err
		}, []string{"shape [2 1 4 5]", "[2 1 4 4]"}},
		{"data with RGB channels", func() error {
			_, err := d.ContinuousLogProb(ts.MustZeros([]int64{2, 3, 4, 4}, gotch.Float, gotch.CPU))
			return err
		}, []string{"shape [2 3 4 4]"}},
		{"integer data", func() error {
			_, err := d.LogProbPixels(ts.MustZeros([]int64{2, 1, 4, 4}, gotch.Uint8, gotch.CPU))
			return err
		}, []string{"floating-point values in [0, 1]"}},
		{"nil data", func() error { _, err := d.LogProb(nil); return err }, []string{"no data tensor"}},
		{"unknown likelihood", func() error {
			_, err := d.Likelihood(ts.MustZeros([]int64{2, 1, 4, 4}, gotch.Float, gotch.CPU), true, "clamped")
			return err
		}, []string{"model.nvae.mollified_likelihood", `"clamped"`, `"continuous"`}},
		{"negative temperature", func() error { _, err := d.Sample(-0.1); return err }, []string{"temperature", "-0.1"}},
		{"NaN temperature", func() error { _, err := d.Sample(math.NaN()); return err }, []string{"temperature", "NaN"}},
		{"infinite temperature", func() error { _, err := d.Sample(math.Inf(1)); return err }, []string{"temperature", "+Inf"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			testenv.AssertError(t, c.err(), c.want, nil)
		})
	}
	if n, err := MixLogisticParams(3, 10); err != nil || n != 100 {
		t.Errorf("MixLogisticParams(3, 10) = %d, %v; want NVAE's 100", n, err)
	}
	if n, err := MixLogisticParams(1, 10); err != nil || n != 30 {
		t.Errorf("MixLogisticParams(1, 10) = %d, %v; want 30", n, err)
	}
}
