package models

import (
	"math"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/flows"
	"github.com/mollify/mollify/nn"
	"github.com/mollify/mollify/train"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

func init() { Register(config.ModelRealNVP, newRealNVP) }

// RealNVP adapts the multi-scale flows.RealNVP. The flow itself models
// u ∈ [0,1] (its first layer is the logit with α = model.realnvp.
// logit_alpha); data in the signed range are mapped to u = (x+1)/2 and
// log p(x) = log p(u) − D·ln 2, so LogProb is always the density of x in
// the data range, in nats, and BitsPerDim applies that range's offset (8
// for uniformly dequantized [0,1] data, 7 for [-1,1]).
//
// RealNVP is a train.Preprocessor: data → model space is (x+1)/2 for the
// signed range, then the logit. The trainer mollifies in model space,
// where the density lives and every value is valid (mollifying [0,1] data
// first would push most values out of the logit's domain), and Loss takes
// model-space batches: it is −mean log p(y) of the logits, in nats,
// without the preprocessing's log-det, which is constant in the
// parameters. LogProb (evaluation, bits/dim) takes clean data and adds it.
// Batch norms use batch statistics in Loss and running statistics in
// LogProb and Sample.
type RealNVP struct {
	imageLikelihood
	Flow   *flows.RealNVP
	signed bool
}

func newRealNVP(c *config.Config, p nn.Path) (train.Model, error) {
	lik, err := newImageLikelihood(c.Data)
	if err != nil {
		return nil, err
	}
	f, err := flows.NewRealNVP(p, c.Model.RealNVP, c.Data.Shape())
	if err != nil {
		return nil, err
	}
	return &RealNVP{imageLikelihood: lik, Flow: f, signed: c.Data.Range == config.RangeSigned}, nil
}

// toUnit maps data to the flow's [0,1] and returns the log-density
// correction log|du/dx| per example.
func (m *RealNVP) toUnit(x *ts.Tensor) (u *ts.Tensor, corr float64) {
	if !m.signed {
		return x, 0
	}
	return x.MustAddScalar(ts.FloatScalar(1), false).MustMulScalar(ts.FloatScalar(0.5), true), -float64(m.dims) * math.Ln2
}

func (m *RealNVP) logProb(u *ts.Tensor, corr float64) (*ts.Tensor, error) {
	lp, err := m.Flow.LogProb(u)
	if err != nil {
		return nil, err
	}
	if corr != 0 {
		lp = lp.MustAddScalar(ts.FloatScalar(corr), true)
	}
	return lp, nil
}

// Preprocess maps data to model space: y = logit(α + (1−2α)·u) with
// u = x, or (x+1)/2 for the signed range; logDet is log|det ∂y/∂x| per
// example, in nats.
func (m *RealNVP) Preprocess(x *ts.Tensor) (y, logDet *ts.Tensor, err error) {
	defer nn.Recover(&err)
	if err := m.Flow.CheckInput(x); err != nil {
		return nil, nil, err
	}
	u, corr := m.toUnit(x)
	y, logDet, err = m.Flow.Preprocess(u)
	if err != nil {
		return nil, nil, err
	}
	if corr != 0 {
		logDet = logDet.MustAddScalar(ts.FloatScalar(corr), true)
	}
	return y, logDet, nil
}

// Loss is −mean log p(y) in nats per example, for a batch y in model
// space (Preprocess's output, possibly mollified there).
func (m *RealNVP) Loss(y *ts.Tensor) (l nn.Loss, err error) {
	defer nn.Recover(&err)
	if err := m.Flow.CheckInput(y); err != nil {
		return nn.Loss{}, err
	}
	m.Flow.SetTraining(true)
	lp, err := m.Flow.LogProbPreprocessed(y)
	if err != nil {
		return nn.Loss{}, err
	}
	nll := lp.MustMean(gotch.Float, true).MustNeg(true)
	return nn.Loss{Total: nll}, nil
}

// LogProb is log p(x) per example in nats, x in the data range, with the
// batch norms' running statistics.
func (m *RealNVP) LogProb(x *ts.Tensor) (lp *ts.Tensor, err error) {
	defer nn.Recover(&err)
	if err := m.Flow.CheckInput(x); err != nil {
		return nil, err
	}
	m.Flow.SetTraining(false)
	u, corr := m.toUnit(x)
	return m.logProb(u, corr)
}

// Sample draws n images in the data range (not clipped to it).
func (m *RealNVP) Sample(n int64, temperature float64) (x *ts.Tensor, err error) {
	defer nn.Recover(&err)
	m.Flow.SetTraining(false)
	u, err := m.Flow.Sample(n, temperature)
	if err != nil || !m.signed {
		return u, err
	}
	return u.MustMulScalar(ts.FloatScalar(2), true).MustSubScalar(ts.FloatScalar(1), true), nil
}

// CaptureReady: the training step can be captured as a CUDA graph
// (train.Capturable): the logit, the couplings and the batch norms (batch statistics) read nothing on the host.
func (m *RealNVP) CaptureReady() error { return nil }
