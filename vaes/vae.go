package vaes

import (
	"fmt"
	"math"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch/ts"
)

// Base is what every variant has: the Table 4 encoder q(z|x) =
// N(μ, diag σ²), the decoder p(x|z) and the prior p(z) = N(0, I).
type Base struct {
	Config  config.VAE
	Data    config.Data // the images: data.image_size, data.channels, data.range
	Encoder *Encoder
	Decoder *Decoder
}

// newBase validates the settings of the variant model and registers the
// encoder and decoder under p.
func newBase(p nn.Path, c config.VAE, model string, d config.Data) (*Base, error) {
	if err := validate(c, model, d); err != nil {
		return nil, err
	}
	enc, err := NewEncoder(p.Sub("encoder"), c, d)
	if err != nil {
		return nil, err
	}
	dec, err := NewDecoder(p.Sub("decoder"), c, d)
	if err != nil {
		return nil, err
	}
	return &Base{Config: c, Data: d, Encoder: enc, Decoder: dec}, nil
}

// Dim is the number of pixels times channels, D.
func (b *Base) Dim() int64 {
	return int64(b.Data.Channels) * int64(b.Data.ImageSize) * int64(b.Data.ImageSize)
}

// SetTraining selects batch statistics (true, the default; running
// statistics are updated) or running statistics (false) in every batch
// norm.
func (b *Base) SetTraining(on bool) {
	b.Encoder.SetTraining(on)
	b.Decoder.SetTraining(on)
}

// Sample decodes n latents z ~ N(0, T²I) and returns the decoder means
// (N, C, S, S) in the data range.
func (b *Base) Sample(n int64, temperature float64) (x *ts.Tensor, err error) {
	if n <= 0 {
		return nil, fmt.Errorf("vaes: sample count must be positive, got %d", n)
	}
	if !(temperature >= 0) || math.IsInf(temperature, 0) {
		return nil, fmt.Errorf("vaes: temperature must be finite and non-negative, got %g", temperature)
	}
	defer nn.Recover(&err)
	ts.NoGrad(func() {
		z := nn.Randn([]int64{n, int64(b.Config.Latent)}, b.Decoder.FC.W.MustDevice()).MustMulScalar(ts.FloatScalar(temperature), true)
		x = b.Decoder.Mean(b.Decoder.Forward(z))
	})
	return x, nil
}

// reconNLL is −log p(x|z) per example without the Gaussian constant (see
// ReconConst): 0.5·Σ(mean(a)−x)² for mse, Σ BCE-with-logits(a, x) for
// bce. a and x are (M, C, S, S); the result is (M).
func (b *Base) reconNLL(a, x *ts.Tensor) *ts.Tensor {
	var per *ts.Tensor
	if b.Config.Recon == config.ReconBCE {
		per = a.MustBinaryCrossEntropyWithLogits(x, ts.None, ts.None, 0, false)
	} else {
		per = b.Decoder.Mean(a).MustSub(x, true).MustSquare(true).MustMulScalar(ts.FloatScalar(0.5), true)
	}
	return per.MustSumDimIntlist([]int64{1, 2, 3}, false, per.DType(), true)
}

// ReconConst is the constant that makes reconNLL a normalised negative
// log-density: D/2·log 2π for mse, 0 for bce. Loss terms leave it out
// (pythae's convention); LogLikelihood includes it.
func (b *Base) ReconConst() float64 {
	if b.Config.Recon == config.ReconBCE {
		return 0
	}
	return 0.5 * float64(b.Dim()) * math.Log(2*math.Pi)
}

// reparameterize is z = μ + exp(½ log σ²)·ε; μ and log σ² broadcast
// against ε.
func reparameterize(mu, logvar, eps *ts.Tensor) *ts.Tensor {
	return logvar.MustMulScalar(ts.FloatScalar(0.5), false).MustExp(true).MustMul(eps, true).MustAdd(mu, true)
}

// GaussianKL is KL(N(μ, diag σ²) ‖ N(0, I)) = −½Σ(1 + log σ² − μ² − σ²),
// summed over the last dimension.
func GaussianKL(mu, logvar *ts.Tensor) *ts.Tensor {
	t := logvar.MustAddScalar(ts.FloatScalar(1), false).
		MustSub(mu.MustSquare(false), true).
		MustSub(logvar.MustExp(false), true)
	return t.MustSumDimIntlist([]int64{-1}, false, t.DType(), true).MustMulScalar(ts.FloatScalar(-0.5), true)
}

// logQ is log N(z; μ, σ²) for z = μ + σ·ε, summed over the last
// dimension, without −d/2·log 2π: −½Σ(log σ² + ε²). It cancels with
// logPrior's.
func logQ(eps, logvar *ts.Tensor) *ts.Tensor {
	t := eps.MustSquare(false).MustAdd(logvar, true)
	return t.MustSumDimIntlist([]int64{-1}, false, t.DType(), true).MustMulScalar(ts.FloatScalar(-0.5), true)
}

// logPrior is log N(z; 0, I) summed over the last dimension, without
// −d/2·log 2π: −½Σz².
func logPrior(z *ts.Tensor) *ts.Tensor {
	t := z.MustSquare(false)
	return t.MustSumDimIntlist([]int64{-1}, false, t.DType(), true).MustMulScalar(ts.FloatScalar(-0.5), true)
}

func mean(t *ts.Tensor) *ts.Tensor { return t.MustMean(t.DType(), false) }

// logWeighter draws one importance sample per example and returns its
// normalised log weight log p(x, z) − log q(z|x) (or the variant's
// extended-space equivalent), shape (B).
type logWeighter func(x, mu, logvar *ts.Tensor) *ts.Tensor

// logLikelihood is log (1/K) Σ_k w_k per example, with the encoder run once
// and one scope per sample so memory does not grow with K. It runs without
// autograd.
func (b *Base) logLikelihood(x *ts.Tensor, k int, lw logWeighter) (ll *ts.Tensor, err error) {
	if err := checkImages(b.Data, x); err != nil {
		return nil, err
	}
	if k < 1 {
		return nil, fmt.Errorf("vaes: importance samples must be at least 1, got %d", k)
	}
	defer nn.Recover(&err)
	ts.NoGrad(func() {
		mu, logvar := b.Encoder.Forward(x)
		ws := make([]*ts.Tensor, k)
		for i := range ws {
			ws[i] = kept(func() *ts.Tensor { return lw(x, mu, logvar) })
		}
		ll = logMeanExp(ts.MustStack(ws, 1), 1)
	})
	return ll, nil
}

// kept runs fn in its own scope and keeps only its result.
func kept(fn func() *ts.Tensor) *ts.Tensor {
	sc := ts.NewScope()
	defer sc.Close()
	t := fn()
	sc.Keep(t)
	return t
}

// logMeanExp is log (1/K) Σ exp(t) along dim.
func logMeanExp(t *ts.Tensor, dim int64) *ts.Tensor {
	k := t.MustSize()[dim]
	return t.MustLogsumexp([]int64{dim}, false, false).MustSubScalar(ts.FloatScalar(math.Log(float64(k))), true)
}

// VAE is the variational auto-encoder (Kingma & Welling 2014) with the
// Table 4 networks. Its loss is recon + β·KL with the closed-form KL;
// β = 1 except in BetaVAE.
type VAE struct {
	*Base
	beta float64
}

// NewVAE registers a VAE with the settings c for the images d describes
// under p.
func NewVAE(p nn.Path, c config.VAE, d config.Data) (*VAE, error) {
	b, err := newBase(p, c, config.ModelVAE, d)
	if err != nil {
		return nil, err
	}
	return &VAE{Base: b, beta: 1}, nil
}

// Loss is the negative ELBO of x (N, C, S, S), one z per example:
// recon (−log p(x|z) without constant), kl (closed form). With β ≠ 1 the
// total is recon + β·kl and neg_elbo reports recon + kl.
func (m *VAE) Loss(x *ts.Tensor) (l nn.Loss, err error) {
	if err := checkImages(m.Data, x); err != nil {
		return nn.Loss{}, err
	}
	defer nn.Recover(&err)
	mu, logvar := m.Encoder.Forward(x)
	return m.loss(x, mu, logvar, nn.RandnRowsLike(mu)), nil
}

func (m *VAE) loss(x, mu, logvar, eps *ts.Tensor) nn.Loss {
	z := reparameterize(mu, logvar, eps)
	recon := m.reconNLL(m.Decoder.Forward(z), x)
	kl := GaussianKL(mu, logvar)
	terms := map[string]*ts.Tensor{"recon": mean(recon), "kl": mean(kl)}
	if m.beta == 1 {
		return nn.Loss{Total: mean(recon.MustAdd(kl, false)), Terms: terms}
	}
	terms["neg_elbo"] = mean(recon.MustAdd(kl, false))
	return nn.Loss{Total: mean(kl.MustMulScalar(ts.FloatScalar(m.beta), false).MustAdd(recon, true)), Terms: terms}
}

// LogLikelihood is the importance-sampled estimate
// log (1/K) Σ_k p(x, z_k)/q(z_k|x), z_k ~ q(z|x), per example in nats,
// normalised (it includes ReconConst); K = 1 is the ELBO (β = 1).
func (m *VAE) LogLikelihood(x *ts.Tensor, k int) (*ts.Tensor, error) {
	return m.logLikelihood(x, k, m.logWeight)
}

func (m *VAE) logWeight(x, mu, logvar *ts.Tensor) *ts.Tensor {
	return m.logWeightWith(x, mu, logvar, mu.MustRandnLike(false))
}

func (m *VAE) logWeightWith(x, mu, logvar, eps *ts.Tensor) *ts.Tensor {
	z := reparameterize(mu, logvar, eps)
	recon := m.reconNLL(m.Decoder.Forward(z), x)
	return logPrior(z).MustSub(logQ(eps, logvar), true).MustSub(recon, true).MustSubScalar(ts.FloatScalar(m.ReconConst()), true)
}
