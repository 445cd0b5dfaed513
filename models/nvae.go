package models

import (
	"fmt"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/nn"
	"github.com/mollify/mollify/nvae"
	"github.com/mollify/mollify/train"
	"github.com/sugarme/gotch/ts"
)

func init() { Register(config.ModelNVAE, newNVAE) }

// NVAE adapts nvae.Model to training, evaluation and sampling. The batch
// is 8-bit images in [0, 1] (data.range unit, no dequantization).
//
//   - Loss (batch statistics) is NVAE's objective in nats per example:
//     recon + KL warm-up · balanced KL + spectral regulariser. The warm-up
//     runs over run.iterations; the first mollification.Steps steps (when
//     mollification is enabled) count as mollified, which only matters for
//     model.nvae.mollified_likelihood=continuous. Both are read from the
//     model's step buffer on the device, which the trainer sets before
//     every step (SetStep, train.Stepper), skipped steps included.
//   - LogProb, Evaluate and Sample use the running statistics and no
//     autograd. LogProb is the importance-weighted bound with K =
//     model.nvae.iw_samples (1: the ELBO) of the discretized likelihood:
//     a lower bound on log P(x) of the 8-bit values, so bits/dim need no
//     offset (nvae's doc).
//   - With model.nvae.readjust_bn, Sample first readjusts the batch-norm
//     statistics as NVAE does (nvae.Model.SampleReadjusted); the trained
//     statistics are restored after it.
type NVAE struct {
	imageLikelihood
	Net *nvae.Model
	// EvalSamples is the K of LogProb's importance-weighted bound
	// (model.nvae.iw_samples).
	EvalSamples int
	// Readjust, when not nil, readjusts BN statistics before sampling
	// (model.nvae.readjust_bn*).
	Readjust *nvae.Readjust
}

func newNVAE(c *config.Config, p nn.Path) (train.Model, error) {
	lik, err := newImageLikelihood(c.Data)
	if err != nil {
		return nil, err
	}
	lik.offset = 0 // the discretized likelihood is a probability of the 8-bit value
	net, err := nvae.New(p, c.Model.NVAE, c.Data)
	if err != nil {
		return nil, fmt.Errorf("models: building nvae: %w", err)
	}
	moll := 0
	if c.Mollification.Enabled {
		moll = c.Mollification.Steps(c.Run.Iterations)
	}
	if err := net.SetSchedule(c.Run.Iterations, moll); err != nil {
		return nil, fmt.Errorf("models: building nvae: %w", err)
	}
	m := &NVAE{imageLikelihood: lik, Net: net, EvalSamples: c.Model.NVAE.IWSamples}
	if n := c.Model.NVAE; n.ReadjustBN {
		m.Readjust = &nvae.Readjust{Batch: int64(n.ReadjustBNBatch), Iters: n.ReadjustBNIters}
	}
	return m, nil
}

// Loss is the mean training objective in nats per example with terms
// recon, kl, spectral and kl_coeff.
func (m *NVAE) Loss(x *ts.Tensor) (nn.Loss, error) {
	m.Net.SetTraining(true)
	return m.Net.Loss(x)
}

// LogLikelihood is the k-sample importance-weighted bound on log P(x)
// per example in nats.
func (m *NVAE) LogLikelihood(x *ts.Tensor, k int) (*ts.Tensor, error) {
	m.Net.SetTraining(false)
	return m.Net.LogLikelihood(x, k)
}

// LogProb is LogLikelihood(x, EvalSamples).
func (m *NVAE) LogProb(x *ts.Tensor) (*ts.Tensor, error) {
	return m.LogLikelihood(x, m.EvalSamples)
}

// Evaluate returns batch means: "elbo" (nats per example) and "bpd" of
// the EvalSamples-sample importance-weighted bound, the ELBO's when it is
// 1, and with more samples that bound as "log_likelihood" (nats), all
// from the same draws.
func (m *NVAE) Evaluate(x *ts.Tensor) (map[string]*ts.Tensor, error) {
	m.Net.SetTraining(false)
	elbo, iw, err := m.Net.Bounds(x, m.EvalSamples)
	if err != nil {
		return nil, err
	}
	ll := iw.MustMean(iw.DType(), true)
	out := map[string]*ts.Tensor{"elbo": elbo.MustMean(elbo.DType(), true), "bpd": m.bpdTensor(ll.MustNeg(false))}
	if m.EvalSamples > 1 {
		out["log_likelihood"] = ll
	}
	return out, nil
}

// Sample draws n images in [0, 1], latents at the given temperature,
// with readjusted BN statistics when Readjust is set.
func (m *NVAE) Sample(n int64, temperature float64) (*ts.Tensor, error) {
	m.Net.SetTraining(false)
	if m.Readjust != nil {
		return m.Net.SampleReadjusted(n, temperature, *m.Readjust)
	}
	return m.Net.Sample(n, temperature)
}

// SetStep sets the step buffer the warm-up and the mollified phase read
// (train.Stepper).
func (m *NVAE) SetStep(step int) error { return m.Net.SetStep(step) }

// CaptureReady: the step reads nothing on the host (shape checks only;
// the warm-up coefficient and the mollified phase come from the step
// buffer on the device).
func (m *NVAE) CaptureReady() error { return nil }
