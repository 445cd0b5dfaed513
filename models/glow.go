package models

import (
	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/flows"
	"github.com/mollify/mollify/nn"
	"github.com/mollify/mollify/train"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

func init() { Register(config.ModelGlow, newGlow) }

// Glow adapts flows.Glow to training, density evaluation and sampling.
// The model is fed the batch exactly as the data package delivers it
// (data.range unit [0,1] or signed [-1,1], uniformly dequantized or not;
// mollified batches may leave the range, which Glow does not mind): the
// loss is the mean negative log-density of that batch in nats per
// example, and BitsPerDim applies the offset of that range and
// dequantization (see imageLikelihood). ActNorm layers initialise on the
// first batch the model sees, i.e. the first (mollified) training batch.
type Glow struct {
	imageLikelihood
	Flow *flows.Glow
}

func newGlow(c *config.Config, p nn.Path) (train.Model, error) {
	lik, err := newImageLikelihood(c.Data)
	if err != nil {
		return nil, err
	}
	g := c.Model.Glow
	scale, err := flows.ParseScale(g.Scale)
	if err != nil {
		return nil, err
	}
	part, err := flows.ParsePartition(g.Split)
	if err != nil {
		return nil, err
	}
	f, err := flows.NewGlow(p, flows.GlowOptions{
		Shape:        c.Data.Shape(),
		Levels:       g.Levels,
		Depth:        g.Depth,
		Hidden:       int64(g.Hidden),
		Partition:    part,
		Scale:        scale,
		LearnedPrior: g.LearnedBase,
	})
	if err != nil {
		return nil, err
	}
	return &Glow{imageLikelihood: lik, Flow: f}, nil
}

// Loss is −mean log p(x) in nats per example; the "bpd" term is it in
// bits/dim.
func (m *Glow) Loss(x *ts.Tensor) (train.Loss, error) {
	lp, err := m.Flow.LogProb(x)
	if err != nil {
		return train.Loss{}, err
	}
	nll := lp.MustMean(gotch.Float, true).MustNeg(true)
	return train.Loss{Total: nll, Terms: map[string]*ts.Tensor{"bpd": m.bpdTensor(nll)}}, nil
}

// LogProb is log p(x) per example in nats, x in the data range.
func (m *Glow) LogProb(x *ts.Tensor) (*ts.Tensor, error) { return m.Flow.LogProb(x) }

// Sample draws n images in the data range (not clipped to it).
func (m *Glow) Sample(n int64, temperature float64) (*ts.Tensor, error) {
	return m.Flow.Sample(n, temperature)
}
