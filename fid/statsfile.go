package fid

import (
	"fmt"

	"gonum.org/v1/gonum/mat"

	"github.com/mollify/mollify/fid/npz"
)

// LoadStats reads a pytorch-fid statistics file: an .npz with mu (d,) and
// sigma (d,d), float64 or float32, stored or compressed. Other members are
// ignored, as pytorch-fid ignores them.
func LoadStats(path string) (*Stats, error) {
	m, err := npz.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("fid: loading statistics: %w", err)
	}
	mu, sigma := m["mu"], m["sigma"]
	if mu == nil || sigma == nil {
		return nil, fmt.Errorf("fid: %s has no mu and sigma arrays; statistics files come from pytorch_fid --save-stats or SaveStats", path)
	}
	if len(mu.Shape) != 1 || mu.Shape[0] == 0 {
		return nil, fmt.Errorf("fid: %s: mu has shape %v, want (d,)", path, mu.Shape)
	}
	d := mu.Shape[0]
	if len(sigma.Shape) != 2 || sigma.Shape[0] != d || sigma.Shape[1] != d {
		return nil, fmt.Errorf("fid: %s: sigma has shape %v, want (%d, %d) to match mu", path, sigma.Shape, d, d)
	}
	return &Stats{Mu: mu.Data, Sigma: mat.NewDense(d, d, sigma.Data)}, nil
}

// SaveStats writes s to path as np.savez(path, mu=mu, sigma=sigma) would,
// byte for byte (pytorch-fid's --save-stats writes the deflated
// np.savez_compressed variant; both load the same everywhere).
func SaveStats(path string, s *Stats) error {
	if err := s.validate("saved"); err != nil {
		return err
	}
	d := s.Dim()
	sigma := make([]float64, d*d)
	raw := s.Sigma.RawMatrix()
	for i := 0; i < d; i++ {
		copy(sigma[i*d:i*d+d], raw.Data[i*raw.Stride:])
	}
	err := npz.WriteFile(path,
		npz.Entry{Name: "mu", Array: &npz.Array{Shape: []int{d}, Data: s.Mu}},
		npz.Entry{Name: "sigma", Array: &npz.Array{Shape: []int{d, d}, Data: sigma}})
	if err != nil {
		return fmt.Errorf("fid: saving statistics: %w", err)
	}
	return nil
}
