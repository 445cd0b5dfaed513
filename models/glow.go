package models

import (
	"fmt"
	"strings"

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
	Flow    *flows.Glow
	stepped bool // Loss has run: ActNorm is initialised
}

func newGlow(c *config.Config, p nn.Path) (train.Model, error) {
	lik, err := newImageLikelihood(c.Data)
	if err != nil {
		return nil, err
	}
	f, err := flows.NewGlow(p, c.Model.Glow, c.Data.Shape())
	if err != nil {
		return nil, err
	}
	p.Store().AddLoadHint(glowPriorHint(c.Model.Glow))
	return &Glow{imageLikelihood: lik, Flow: f}, nil
}

// glowPriorHint tells, when weights do not fit, whether they were written
// with another Glow prior and which --set loads them. The prior shows in
// the names: split.prior.* (conditional), split.base.* (per_channel),
// top.* (any learned prior; per-element under conditional, per-channel
// under per_channel, so a top of another shape means the other prior).
func glowPriorHint(g config.Glow) nn.LoadHint {
	return func(missing, unexpected, reshaped []string) string {
		has := func(names []string, part string) bool {
			for _, n := range names {
				if strings.HasPrefix(n, part) || strings.Contains(n, "."+part) {
					return true
				}
			}
			return false
		}
		learned, prior := g.LearnedBase, ""
		switch {
		case has(unexpected, "split.prior."):
			learned, prior = true, config.GlowPriorConditional
		case has(unexpected, "split.base."):
			learned, prior = true, config.GlowPriorPerChannel
		case has(reshaped, "top."):
			prior = config.GlowPriorConditional
			if g.Prior == config.GlowPriorConditional {
				prior = config.GlowPriorPerChannel
			}
		case has(unexpected, "top."):
			learned = true
		case has(missing, "top."):
			learned = false
		}
		var sets []string
		if learned != g.LearnedBase {
			sets = append(sets, fmt.Sprintf("--set model.glow.learned_base=%v", learned))
		}
		if prior != "" && (prior != g.Prior || !g.LearnedBase) {
			sets = append(sets, "--set model.glow.prior="+prior)
		}
		if len(sets) == 0 {
			return ""
		}
		this := "learned_base=false"
		if g.LearnedBase {
			this = "prior=" + g.Prior
		}
		return fmt.Sprintf("the checkpoint was written with a different Glow prior than this model's (model.glow.%s): load it with %s", this, strings.Join(sets, " "))
	}
}

// Loss is −mean log p(x) in nats per example; the "bpd" term is it in
// bits/dim.
func (m *Glow) Loss(x *ts.Tensor) (nn.Loss, error) {
	lp, err := m.Flow.LogProb(x)
	if err != nil {
		return nn.Loss{}, err
	}
	nll := lp.MustMean(gotch.Float, true).MustNeg(true)
	m.stepped = true
	return nn.Loss{Total: nll, Terms: map[string]*ts.Tensor{"bpd": m.bpdTensor(nll)}}, nil
}

// CaptureReady: Glow's step can be captured (train.Capturable) once its
// ActNorm layers have been initialised by a first eager batch; after that
// the forward pass reads nothing on the host (the flag is cached).
func (m *Glow) CaptureReady() error {
	if !m.stepped {
		return fmt.Errorf("models: Glow's ActNorm initialises on its first batch; capture after one eager step")
	}
	return nil
}

// LogProb is log p(x) per example in nats, x in the data range.
func (m *Glow) LogProb(x *ts.Tensor) (*ts.Tensor, error) { return m.Flow.LogProb(x) }

// Sample draws n images in the data range (not clipped to it).
func (m *Glow) Sample(n int64, temperature float64) (*ts.Tensor, error) {
	return m.Flow.Sample(n, temperature)
}
