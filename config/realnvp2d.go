package config

// RealNVP2D is the toy flow of appendix D.3.1 (model.realnvp2d): affine
// couplings on R² whose scale and shift nets are MLPs of HiddenLayers ×
// HiddenUnits ReLU units. flows.NewRealNVP2D takes it.
type RealNVP2D struct {
	Couplings    int `mapstructure:"couplings" yaml:"couplings"`
	HiddenLayers int `mapstructure:"hidden_layers" yaml:"hidden_layers"`
	HiddenUnits  int `mapstructure:"hidden_units" yaml:"hidden_units"`
}

// DefaultRealNVP2D is the paper's: 5 couplings of 2 × 64 units.
func DefaultRealNVP2D() RealNVP2D {
	return RealNVP2D{Couplings: 5, HiddenLayers: 2, HiddenUnits: 64}
}

// Hidden is the hidden layer sizes of each coupling's MLP.
func (c RealNVP2D) Hidden() []int64 {
	h := make([]int64, max(c.HiddenLayers, 0))
	for i := range h {
		h[i] = int64(c.HiddenUnits)
	}
	return h
}

// Validate returns a *ValidationError listing every problem, or nil.
func (c RealNVP2D) Validate() error {
	var k checker
	c.check(&k)
	return k.err()
}

func (c RealNVP2D) check(k *checker) {
	k.positive("model.realnvp2d.couplings", c.Couplings)
	k.positive("model.realnvp2d.hidden_layers", c.HiddenLayers)
	k.positive("model.realnvp2d.hidden_units", c.HiddenUnits)
}
