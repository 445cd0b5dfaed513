package models

import (
	"fmt"

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
