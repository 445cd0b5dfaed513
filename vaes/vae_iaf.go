package vaes

import (
	"fmt"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch/ts"
)

// IAF is an inverse autoregressive flow on the latent space. Transform
// maps the base sample z0 to the posterior sample zK, block by block:
// y ← y·exp(s(y)) + μ(y), with the order of the dimensions reversed
// between blocks, so log|det ∂zK/∂z0| = Σ s. (It is not a flows.Layer:
// neither direction goes from data to latent, so neither is Forward.)
type IAF struct {
	Blocks []*MADE
}

// NewIAF registers the flow with the settings c (model.vae.iaf) for
// dim-dimensional latents under p.
func NewIAF(p nn.Path, dim int64, c config.IAF) (*IAF, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("vaes: IAF: %w", err)
	}
	if dim < 2 {
		return nil, fmt.Errorf("vaes: IAF needs a latent size of at least 2, got %d", dim)
	}
	hidden := c.Hidden()
	f := &IAF{}
	for b := range c.Blocks {
		m, err := NewMADE(p.Subf("%d", b), dim, hidden)
		if err != nil {
			return nil, err
		}
		f.Blocks = append(f.Blocks, m)
	}
	return f, nil
}

// Transform returns zK and log|det ∂zK/∂z0| (N) for z0 (N, dim).
func (f *IAF) Transform(z0 *ts.Tensor) (zK, logdet *ts.Tensor) {
	y := z0
	for b, m := range f.Blocks {
		if b > 0 {
			y = y.MustFlip([]int64{1}, false)
		}
		mu, s := m.Forward(y)
		y = y.MustMul(s.MustExp(false), false).MustAdd(mu, true)
		ld := s.MustSumDimIntlist([]int64{1}, false, s.DType(), false)
		if logdet == nil {
			logdet = ld
		} else {
			logdet = logdet.MustAdd(ld, false)
		}
	}
	return y, logdet
}

// VAEIAF is the VAE with an inverse autoregressive flow posterior (Kingma
// et al. 2016): z0 ~ N(μ, σ²), zK = IAF(z0), and the per-example KL
// estimate is log q(z0|x) − log p(zK) − log|det ∂zK/∂z0|.
type VAEIAF struct {
	*Base
	Flow *IAF
}

// NewVAEIAF registers a VAE-IAF with the settings c (the flow: c.IAF) for
// the images d describes under p (the flow under p.flow).
func NewVAEIAF(p nn.Path, c config.VAE, d config.Data) (*VAEIAF, error) {
	b, err := newBase(p, c, config.ModelVAEIAF, d)
	if err != nil {
		return nil, err
	}
	f, err := NewIAF(p.Sub("flow"), int64(c.Latent), c.IAF)
	if err != nil {
		return nil, err
	}
	return &VAEIAF{Base: b, Flow: f}, nil
}

// Loss is the negative ELBO with terms recon, kl (the single-sample
// estimate above) and log_det.
func (m *VAEIAF) Loss(x *ts.Tensor) (l nn.Loss, err error) {
	if err := checkImages(m.Data, x); err != nil {
		return nn.Loss{}, err
	}
	defer nn.Recover(&err)
	mu, logvar := m.Encoder.Forward(x)
	return m.loss(x, mu, logvar, nn.RandnRowsLike(mu)), nil
}

func (m *VAEIAF) loss(x, mu, logvar, eps *ts.Tensor) nn.Loss {
	recon, kl, logdet := m.parts(x, mu, logvar, eps)
	return nn.Loss{
		Total: mean(recon.MustAdd(kl, false)),
		Terms: map[string]*ts.Tensor{"recon": mean(recon), "kl": mean(kl), "log_det": mean(logdet)},
	}
}

func (m *VAEIAF) parts(x, mu, logvar, eps *ts.Tensor) (recon, kl, logdet *ts.Tensor) {
	z0 := reparameterize(mu, logvar, eps)
	zK, logdet := m.Flow.Transform(z0)
	recon = m.reconNLL(m.Decoder.Forward(zK), x)
	kl = logQ(eps, logvar).MustSub(logPrior(zK), true).MustSub(logdet, true)
	return recon, kl, logdet
}

// LogLikelihood is log (1/K) Σ_k p(x, zK_k)/q(zK_k|x) per example in
// nats, normalised (it includes ReconConst); K = 1 is the ELBO.
func (m *VAEIAF) LogLikelihood(x *ts.Tensor, k int) (*ts.Tensor, error) {
	return m.logLikelihood(x, k, func(x, mu, logvar *ts.Tensor) *ts.Tensor {
		recon, kl, _ := m.parts(x, mu, logvar, mu.MustRandnLike(false))
		return recon.MustAdd(kl, false).MustNeg(true).MustSubScalar(ts.FloatScalar(m.ReconConst()), true)
	})
}
