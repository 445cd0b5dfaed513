package models

import (
	"fmt"
	"strings"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/nn"
	"github.com/mollify/mollify/train"
	"github.com/sugarme/gotch/ts"
)

// Density evaluates log p(x) per example, in nats.
type Density interface {
	LogProb(x *ts.Tensor) (*ts.Tensor, error)
}

// Sampler draws n samples in data space; temperature scales the latent
// standard deviation (1 is the model itself).
type Sampler interface {
	Sample(n int64, temperature float64) (*ts.Tensor, error)
}

// Evaluator is a model that reports its own validation metrics (the
// VAEs: "elbo", "iwae_bound", "bpd"), as batch means.
type Evaluator interface {
	Evaluate(x *ts.Tensor) (map[string]*ts.Tensor, error)
}

// BitsPerDimer converts a density model's NLL (nats per example, data
// space) to bits/dim of the 8-bit data (the image flows).
type BitsPerDimer interface {
	BitsPerDim(nllNats float64) float64
}

// Capabilities is what a model can do beyond training: each field is the
// model itself behind that interface, or nil when the model lacks it.
type Capabilities struct {
	Density    Density
	Sampler    Sampler
	Evaluator  Evaluator
	BitsPerDim BitsPerDimer
}

// CapabilitiesOf finds the capabilities of m.
func CapabilitiesOf(m train.Model) Capabilities {
	var c Capabilities
	c.Density, _ = m.(Density)
	c.Sampler, _ = m.(Sampler)
	c.Evaluator, _ = m.(Evaluator)
	c.BitsPerDim, _ = m.(BitsPerDimer)
	return c
}

// Require checks that the capabilities cover what the config asks for,
// naming the setting that asks and how to turn it off.
func (k Capabilities) Require(c *config.Config) error {
	name := c.Model.Name
	var missing []string
	if c.Data.Is2D() {
		if k.Density == nil || k.Sampler == nil {
			missing = append(missing, "the 2-D experiments need a density and samples (MMD², figures)")
		}
	} else {
		if c.Eval.Every > 0 && k.Evaluator == nil && k.Density == nil {
			missing = append(missing, fmt.Sprintf("eval.every=%d asks for validation on the test split, which needs Evaluate or LogProb (set eval.every=0)", c.Eval.Every))
		}
		if c.Output.SamplesEvery > 0 && k.Sampler == nil {
			missing = append(missing, fmt.Sprintf("output.samples_every=%d asks for samples (set output.samples_every=0)", c.Output.SamplesEvery))
		}
		if c.Eval.FIDSamples > 0 && k.Sampler == nil {
			missing = append(missing, fmt.Sprintf("eval.fid_samples=%d asks for samples to score (set eval.fid_samples=0)", c.Eval.FIDSamples))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("models: model %q cannot do what the config asks: %s", name, strings.Join(missing, "; "))
}

// Builder makes a model from the config, registering its parameters
// under p.
type Builder func(c *config.Config, p nn.Path) (train.Model, error)

var builders = map[string]Builder{}

// Register adds a builder for a model name; model files call it from init.
func Register(name string, b Builder) { builders[name] = b }

// Build makes the model named by c.Model.Name.
func Build(c *config.Config, p nn.Path) (train.Model, error) {
	b, ok := builders[c.Model.Name]
	if !ok {
		return nil, fmt.Errorf("models: model %q is not implemented yet in this build (available: %v)", c.Model.Name, Names())
	}
	return b(c, p)
}

// BuildFor makes the model and checks at build time that it can do what
// the run asks of it (validation, samples, FID, the 2-D evaluation),
// returning its capabilities for the evaluation hooks.
func BuildFor(c *config.Config, p nn.Path) (train.Model, Capabilities, error) {
	m, err := Build(c, p)
	if err != nil {
		return nil, Capabilities{}, err
	}
	k := CapabilitiesOf(m)
	if err := k.Require(c); err != nil {
		return nil, Capabilities{}, err
	}
	return m, k, nil
}

// Names lists the registered models.
func Names() []string {
	var out []string
	for _, n := range config.Models {
		if _, ok := builders[n]; ok {
			out = append(out, n)
		}
	}
	return out
}
