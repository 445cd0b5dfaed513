package vaes

import (
	"math"
	"testing"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// twin builds a VAE and an IWAE with identical weights (same seed, same
// construction order).
func twin(t *testing.T, c setup, k int) (*VAE, *nn.Store, *IWAE, *nn.Store) {
	t.Helper()
	seed(t, 11)
	sv := nn.NewStore(gotch.CPU)
	v, err := NewVAE(sv.Root(), c.VAE, c.Data)
	if err != nil {
		t.Fatal(err)
	}
	randomize(sv, 0.1)
	seed(t, 11)
	si := nn.NewStore(gotch.CPU)
	c.ImportanceSamples = k
	w, err := NewIWAE(si.Root(), c.VAE, c.Data)
	if err != nil {
		t.Fatal(err)
	}
	randomize(si, 0.1)
	return v, sv, w, si
}

// With K = 1 and the same noise, the IWAE bound is the single-sample ELBO,
// its recon term the VAE's, and its gradient the ELBO's gradient.
func TestIWAEWithOneSampleIsTheELBO(t *testing.T) {
	defer begin(t)()
	c := tiny(config.ReconMSE)
	v, sv, w, si := twin(t, c, 1)
	defer sv.Close()
	defer si.Close()
	x := images(4, c.Data)
	eps := nn.Randn([]int64{4, int64(c.Latent)}, gotch.CPU)

	mu, lv := v.Encoder.Forward(x)
	elbo := mean(v.logWeightWith(x, mu, lv, eps)).MustAddScalar(ts.FloatScalar(v.ReconConst()), true)
	vl := v.loss(x, mu, lv, eps)
	gv := grads(t, elbo.MustNeg(false), sv)

	mu2, lv2 := w.Encoder.Forward(x)
	il := w.loss(x, mu2, lv2, eps.MustUnsqueeze(1, false))
	gi := grads(t, il.Total, si)

	if a, b := scalar(t, il.Terms["bound"]), scalar(t, elbo); !relClose(a, b, 1e-5) {
		t.Errorf("IWAE K=1 bound %.5f, VAE single-sample ELBO %.5f", a, b)
	}
	if a, b := scalar(t, il.Total), -scalar(t, elbo); !relClose(a, b, 1e-5) {
		t.Errorf("IWAE K=1 loss %.5f, −ELBO %.5f", a, b)
	}
	if a, b := scalar(t, il.Terms["recon"]), scalar(t, vl.Terms["recon"]); !relClose(a, b, 1e-5) {
		t.Errorf("IWAE K=1 recon %.5f, VAE recon %.5f", a, b)
	}
	if e := maxRelErr(gi, gv, 0); e > 1e-4 {
		t.Errorf("IWAE K=1 gradient differs from the ELBO gradient by %.2g", e)
	}
}

// Loss.Total is −mean logmeanexp(log w): its value is the bound, and its
// gradient is that of the surrogate −mean Σ softmax(log w).detach()·log w,
// whose value is not the bound.
func TestIWAEGradientIsTheSurrogateGradient(t *testing.T) {
	defer begin(t)()
	c := tiny(config.ReconMSE)
	_, sv, w, s := twin(t, c, 5)
	sv.Close()
	defer s.Close()
	x := images(3, c.Data)
	eps := nn.Randn([]int64{3, 5, int64(c.Latent)}, gotch.CPU)
	mu, lv := w.Encoder.Forward(x)
	l := w.loss(x, mu, lv, eps)
	logw, _, _ := w.logWeights(x, mu, lv, eps)
	sur := Surrogate(logw)
	if a, b := scalar(t, l.Total), -scalar(t, l.Terms["bound"]); a != b {
		t.Errorf("Total %g is not −bound %g", a, b)
	}
	if a, b := scalar(t, sur), scalar(t, l.Total); math.Abs(a-b) < 1e-2 {
		t.Fatalf("surrogate value %g equals the bound %g: the weights are degenerate, the test proves nothing", a, b)
	}
	gl, gs := grads(t, l.Total, s), grads(t, sur, s)
	if e := maxRelErr(gl, gs, 0); e > 1e-4 {
		t.Errorf("gradient of Total differs from the surrogate's by %.2g", e)
	}
	// The ELBO (uniform weights) has a different gradient: the check can fail.
	elbo := mean(logw.MustMeanDim([]int64{1}, false, gotch.Float, false)).MustNeg(true)
	e := maxRelErr(grads(t, elbo, s), gs, 0)
	t.Logf("ELBO vs IWAE gradient: %.2g", e)
	if e < 1e-2 {
		t.Errorf("the ELBO gradient matches the IWAE gradient (%.2g): the weights are uniform", e)
	}
}

// The IWAE bound is above the ELBO on average and rises with K.
func TestIWAEBoundRisesWithK(t *testing.T) {
	defer begin(t)()
	c := tiny(config.ReconMSE)
	_, sv, w, s := twin(t, c, 5)
	sv.Close()
	defer s.Close()
	randomize(s, 0.3) // a decoder that depends on z, so the weights vary
	w.SetTraining(false)
	x := images(16, c.Data)
	var prev float64
	for i, k := range []int{1, 5, 50} {
		seed(t, 12)
		ll, err := w.LogLikelihood(x, k)
		if err != nil {
			t.Fatal(err)
		}
		m := scalar(t, mean(ll))
		t.Logf("K=%d: mean bound %.3f nats", k, m)
		if i > 0 && m <= prev {
			t.Errorf("mean bound with K=%d is %.3f, not above %.3f", k, m, prev)
		}
		prev = m
	}
}
