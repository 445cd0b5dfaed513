package models

import (
	"fmt"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/flows"
	"github.com/mollify/mollify/nn"
	"github.com/mollify/mollify/train"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

func init() { Register(config.ModelRealNVP2D, newRealNVP2D) }

// RealNVP2D adapts flows.RealNVP2D: the loss is the mean negative
// log-likelihood in nats.
type RealNVP2D struct {
	Flow *flows.RealNVP2D
	path nn.Path
}

func newRealNVP2D(c *config.Config, p nn.Path) (train.Model, error) {
	if !c.Data.Is2D() {
		return nil, fmt.Errorf("models: realnvp2d needs 2-D data, but data.dataset is %q (use realnvp or glow for images)", c.Data.Dataset)
	}
	f, err := flows.NewRealNVP2D(p, c.Model.RealNVP2D)
	if err != nil {
		return nil, err
	}
	return &RealNVP2D{Flow: f, path: p}, nil
}

// Loss is −mean log p(x).
func (m *RealNVP2D) Loss(x *ts.Tensor) (nn.Loss, error) {
	nll := m.Flow.LogProb(x).MustMean(gotch.Float, true).MustNeg(true)
	return nn.Loss{Total: nll}, nil
}

// LogProb is log p(x) per point.
func (m *RealNVP2D) LogProb(x *ts.Tensor) (lp *ts.Tensor, err error) {
	defer nn.Recover(&err)
	return m.Flow.LogProb(x), nil
}

// Sample draws n points.
func (m *RealNVP2D) Sample(n int64, temperature float64) (x *ts.Tensor, err error) {
	defer nn.Recover(&err)
	return m.Flow.Sample(n, temperature, m.path), nil
}

// CaptureReady: the training step can be captured as a CUDA graph
// (train.Capturable): the couplings read nothing on the host.
func (m *RealNVP2D) CaptureReady() error { return nil }
