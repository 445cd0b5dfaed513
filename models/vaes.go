package models

import (
	"fmt"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/nn"
	"github.com/mollify/mollify/train"
	"github.com/mollify/mollify/vaes"
	"github.com/sugarme/gotch/ts"
)

func init() {
	for _, name := range []string{config.ModelVAE, config.ModelBetaVAE, config.ModelIWAE, config.ModelVAEIAF, config.ModelHVAE} {
		Register(name, newVAE)
	}
}

// vaeNet is what VAE needs from a vaes model.
type vaeNet interface {
	Loss(x *ts.Tensor) (nn.Loss, error)
	LogLikelihood(x *ts.Tensor, k int) (*ts.Tensor, error)
	Sample(n int64, temperature float64) (*ts.Tensor, error)
	SetTraining(on bool)
}

// VAE adapts the five VAE variants (vae, beta_vae, iwae, vae_iaf, hvae)
// to training, evaluation and sampling. The batch is fed as the data
// package delivers it, in data.range (unit [0,1] or signed [-1,1]); the
// decoder mean is sigmoid (unit) or tanh (signed), and recon "bce" needs
// unit data.
//
//   - Loss (training mode: batch-norm batch statistics) is the variant's
//     objective in nats per example, with pythae's terms: the mse recon
//     0.5·Σ(x̂−x)² leaves out the Gaussian constant D/2·log 2π.
//   - LogLikelihood, LogProb, Evaluate and Sample use the running
//     statistics and no autograd. LogLikelihood(x, K) is the normalised
//     importance-sampled estimate of log p(x) (constant included), so it
//     is comparable with a flow's log p(x): K = 1 is the ELBO.
type VAE struct {
	imageLikelihood
	Name string
	Net  vaeNet
	// EvalSamples is the K of LogProb: importance_samples for iwae (its
	// training bound), 1 (the ELBO) for the others.
	EvalSamples int
}

func newVAE(c *config.Config, p nn.Path) (train.Model, error) {
	if c.Data.Is2D() {
		return nil, fmt.Errorf("models: %s needs image data, but data.dataset is %q (use realnvp2d for 2-D points)", c.Model.Name, c.Data.Dataset)
	}
	lik, err := newImageLikelihood(c.Data)
	if err != nil {
		return nil, err
	}
	v, d := c.Model.VAE, c.Data
	m := &VAE{imageLikelihood: lik, Name: c.Model.Name, EvalSamples: 1}
	switch c.Model.Name {
	case config.ModelVAE:
		m.Net, err = vaes.NewVAE(p, v, d)
	case config.ModelBetaVAE:
		m.Net, err = vaes.NewBetaVAE(p, v, d)
	case config.ModelIWAE:
		m.Net, err = vaes.NewIWAE(p, v, d)
		m.EvalSamples = v.ImportanceSamples
	case config.ModelVAEIAF:
		m.Net, err = vaes.NewVAEIAF(p, v, d)
	case config.ModelHVAE:
		m.Net, err = vaes.NewHVAE(p, v, d)
	default:
		return nil, fmt.Errorf("models: %q is not a VAE variant", c.Model.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("models: building %s: %w", c.Model.Name, err)
	}
	return m, nil
}

// Loss is the mean training objective in nats per example (negative ELBO;
// β-VAE: recon + β·kl; IWAE: negative bound), with named terms.
func (m *VAE) Loss(x *ts.Tensor) (nn.Loss, error) {
	m.Net.SetTraining(true)
	return m.Net.Loss(x)
}

// LogLikelihood is the K-sample importance-sampled estimate of log p(x)
// per example in nats, normalised; a lower bound in expectation.
func (m *VAE) LogLikelihood(x *ts.Tensor, k int) (*ts.Tensor, error) {
	m.Net.SetTraining(false)
	return m.Net.LogLikelihood(x, k)
}

// LogProb is LogLikelihood(x, EvalSamples).
func (m *VAE) LogProb(x *ts.Tensor) (*ts.Tensor, error) { return m.LogLikelihood(x, m.EvalSamples) }

// Evaluate returns batch means in nats per example for validation: "elbo"
// (LogLikelihood with K = 1), for iwae also "iwae_bound" (K =
// importance_samples), and "bpd", bits/dim of LogProb.
func (m *VAE) Evaluate(x *ts.Tensor) (map[string]*ts.Tensor, error) {
	elbo, err := m.LogLikelihood(x, 1)
	if err != nil {
		return nil, err
	}
	out := map[string]*ts.Tensor{"elbo": elbo.MustMean(elbo.DType(), true)}
	best := out["elbo"]
	if m.Name == config.ModelIWAE {
		b, err := m.LogLikelihood(x, m.EvalSamples)
		if err != nil {
			return nil, err
		}
		out["iwae_bound"] = b.MustMean(b.DType(), true)
		best = out["iwae_bound"]
	}
	out["bpd"] = m.bpdTensor(best.MustNeg(false))
	return out, nil
}

// Sample decodes n latents z ~ N(0, T²I) to decoder means in the data
// range.
func (m *VAE) Sample(n int64, temperature float64) (*ts.Tensor, error) {
	m.Net.SetTraining(false)
	return m.Net.Sample(n, temperature)
}

// CaptureReady: the training step can be captured as a CUDA graph
// (train.Capturable): the encoder, the reparameterised draw, the decoder and the variants' extra terms (IWAE's log-sum-exp, IAF's flows, HVAE's leapfrog gradients) read nothing on the host.
func (m *VAE) CaptureReady() error { return nil }
