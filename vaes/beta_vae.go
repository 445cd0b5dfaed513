package vaes

import (
	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/nn"
)

// BetaVAE is the β-VAE (Higgins et al. 2017): the loss is recon + β·KL
// (β = 0.1 in the paper). Its LogLikelihood is the VAE's (β = 1), so that
// it is comparable with the other variants.
type BetaVAE struct {
	*VAE
}

// NewBetaVAE registers a β-VAE with the settings c (β = c.Beta > 0) for
// the images d describes under p.
func NewBetaVAE(p nn.Path, c config.VAE, d config.Data) (*BetaVAE, error) {
	b, err := newBase(p, c, config.ModelBetaVAE, d)
	if err != nil {
		return nil, err
	}
	return &BetaVAE{VAE: &VAE{Base: b, beta: c.Beta}}, nil
}

// Beta is the KL weight.
func (m *BetaVAE) Beta() float64 { return m.beta }
