package vaes

import (
	"fmt"
	"math"

	"github.com/mollify/mollify/nn"
)

// BetaVAE is the β-VAE (Higgins et al. 2017): the loss is recon + β·KL
// (β = 0.1 in the paper). Its LogLikelihood is the VAE's (β = 1), so that
// it is comparable with the other variants.
type BetaVAE struct {
	*VAE
}

// NewBetaVAE registers a β-VAE under p; beta must be positive.
func NewBetaVAE(p nn.Path, c Config, beta float64) (*BetaVAE, error) {
	if !(beta > 0) || math.IsInf(beta, 0) {
		return nil, fmt.Errorf("vaes: beta must be positive and finite, got %g (the paper uses 0.1)", beta)
	}
	v, err := NewVAE(p, c)
	if err != nil {
		return nil, err
	}
	v.beta = beta
	return &BetaVAE{VAE: v}, nil
}

// Beta is the KL weight.
func (m *BetaVAE) Beta() float64 { return m.beta }
