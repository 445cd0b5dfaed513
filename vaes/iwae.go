package vaes

import (
	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch/ts"
)

// IWAE is the importance weighted auto-encoder (Burda et al. 2016) with K
// samples per example (5 in the paper).
//
// With log w_k = log p(x|z_k) + log p(z_k) − log q(z_k|x), the bound is
// L_K = log (1/K) Σ_k w_k. Loss.Total is −mean L_K: its value is the bound
// and its autograd gradient is exactly the IWAE estimator
// −Σ_k softmax(log w)_k ∇log w_k, i.e. that of pythae's surrogate
// −Σ_k softmax(log w).detach()_k·log w_k (Surrogate), whose value is not
// the bound.
type IWAE struct {
	*Base
	K int
}

// NewIWAE registers an IWAE with the settings c (K = c.ImportanceSamples)
// for the images d describes under p.
func NewIWAE(p nn.Path, c config.VAE, d config.Data) (*IWAE, error) {
	b, err := newBase(p, c, config.ModelIWAE, d)
	if err != nil {
		return nil, err
	}
	return &IWAE{Base: b, K: c.ImportanceSamples}, nil
}

// Loss returns Total = −mean L_K and the terms recon and kl (means over
// examples and samples of −log p(x|z_k) without constant and of
// log q(z_k|x) − log p(z_k)) and bound (mean L_K, without ReconConst).
func (m *IWAE) Loss(x *ts.Tensor) (l nn.Loss, err error) {
	if err := checkImages(m.Data, x); err != nil {
		return nn.Loss{}, err
	}
	defer nn.Recover(&err)
	mu, logvar := m.Encoder.Forward(x)
	eps := nn.RandnRows([]int64{mu.MustSize()[0], int64(m.K), int64(m.Config.Latent)}, mu.MustDevice())
	return m.loss(x, mu, logvar, eps), nil
}

// loss takes the noise eps (B, K, latent).
func (m *IWAE) loss(x, mu, logvar, eps *ts.Tensor) nn.Loss {
	logw, recon, kl := m.logWeights(x, mu, logvar, eps)
	bound := logMeanExp(logw, 1)
	return nn.Loss{
		Total: mean(bound).MustNeg(true),
		Terms: map[string]*ts.Tensor{"recon": mean(recon), "kl": mean(kl), "bound": mean(bound)},
	}
}

// logWeights returns log w (B, K) without ReconConst, and its parts
// −log p(x|z) and log q − log p.
func (m *IWAE) logWeights(x, mu, logvar, eps *ts.Tensor) (logw, recon, kl *ts.Tensor) {
	s := eps.MustSize()
	b, k, d := s[0], s[1], s[2]
	mu3, lv3 := mu.MustUnsqueeze(1, false), logvar.MustUnsqueeze(1, false)
	z := reparameterize(mu3, lv3, eps)
	xs := x.MustSize()
	xr := x.MustUnsqueeze(1, false).MustExpand([]int64{b, k, xs[1], xs[2], xs[3]}, false, true).MustReshape([]int64{b * k, xs[1], xs[2], xs[3]}, true)
	recon = m.reconNLL(m.Decoder.Forward(z.MustReshape([]int64{b * k, d}, false)), xr).MustReshape([]int64{b, k}, true)
	kl = logQ(eps, lv3).MustSub(logPrior(z), true)
	logw = recon.MustAdd(kl, false).MustNeg(true)
	return logw, recon, kl
}

// Surrogate is pythae's IWAE objective −mean_b Σ_k softmax(log w)_bk·log w_bk
// with the weights detached, for log w of shape (B, K). Its gradient is the
// IWAE gradient; Loss uses −mean L_K, which has the same gradient.
func Surrogate(logw *ts.Tensor) *ts.Tensor {
	wt := logw.MustDetach(false).MustSoftmax(1, logw.DType(), true)
	t := wt.MustMul(logw, true)
	return mean(t.MustSumDimIntlist([]int64{1}, false, t.DType(), true)).MustNeg(true)
}

// LogLikelihood is log (1/K) Σ_k p(x, z_k)/q(z_k|x) per example in nats,
// normalised (it includes ReconConst); k = m.K gives the training bound.
func (m *IWAE) LogLikelihood(x *ts.Tensor, k int) (*ts.Tensor, error) {
	return m.logLikelihood(x, k, func(x, mu, logvar *ts.Tensor) *ts.Tensor {
		eps := mu.MustRandnLike(false).MustUnsqueeze(1, true)
		logw, _, _ := m.logWeights(x, mu, logvar, eps)
		return logw.MustSqueezeDim(1, true).MustSubScalar(ts.FloatScalar(m.ReconConst()), true)
	})
}
