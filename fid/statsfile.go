package fid

import (
	"errors"
	"fmt"
	"slices"

	"codeberg.org/sbinet/npyio/npy"
	"codeberg.org/sbinet/npyio/npz"
	"gonum.org/v1/gonum/mat"
)

// LoadStats reads a pytorch-fid statistics file: an .npz with mu (d,) and
// sigma (d,d), float64 or float32, in C or Fortran order, stored or
// compressed (np.savez or np.savez_compressed). Other members are ignored,
// as pytorch-fid ignores them.
func LoadStats(path string) (*Stats, error) {
	r, err := npz.Open(path)
	if err != nil {
		return nil, fmt.Errorf("fid: loading statistics: %w", err)
	}
	defer r.Close()
	mu, muShape, err := readFloats(r, "mu")
	if err != nil {
		return nil, fmt.Errorf("fid: %s: %w", path, err)
	}
	sigma, sigmaShape, err := readFloats(r, "sigma")
	if err != nil {
		return nil, fmt.Errorf("fid: %s: %w", path, err)
	}
	if mu == nil || sigma == nil {
		return nil, fmt.Errorf("fid: %s has no mu and sigma arrays; statistics files come from pytorch_fid --save-stats or SaveStats", path)
	}
	if len(muShape) != 1 || muShape[0] == 0 {
		return nil, fmt.Errorf("fid: %s: mu has shape %v, want (d,)", path, muShape)
	}
	d := muShape[0]
	if len(sigmaShape) != 2 || sigmaShape[0] != d || sigmaShape[1] != d {
		return nil, fmt.Errorf("fid: %s: sigma has shape %v, want (%d, %d) to match mu", path, sigmaShape, d, d)
	}
	return &Stats{Mu: mu, Sigma: mat.NewDense(d, d, sigma)}, nil
}

// readFloats reads the array name of r (member name.npy, as np.savez names
// it, or name) as float64 in C order. A missing member is nil, not an error.
func readFloats(r *npz.Reader, name string) ([]float64, []int, error) {
	key := name + ".npy"
	if !slices.Contains(r.Keys(), key) {
		if key = name; !slices.Contains(r.Keys(), key) {
			return nil, nil, nil
		}
	}
	var a npy.Array
	if err := r.Read(key, &a); err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", name, err)
	}
	shape := a.Shape()
	n := 1
	for _, s := range shape {
		n *= s
	}
	var data []float64
	switch v := a.Data().(type) {
	case []float64:
		data = v
	case []float32:
		data = make([]float64, len(v))
		for i, x := range v {
			data[i] = float64(x)
		}
	default:
		return nil, nil, fmt.Errorf("%s has dtype %v; statistics are float64 or float32", name, a.Descr())
	}
	if len(data) != n {
		return nil, nil, fmt.Errorf("%s holds %d values but its shape %v needs %d; the file is truncated or corrupt", name, len(data), shape, n)
	}
	if a.Fortran() && len(shape) == 2 {
		c := make([]float64, n)
		for i := 0; i < shape[0]; i++ {
			for j := 0; j < shape[1]; j++ {
				c[i*shape[1]+j] = data[j*shape[0]+i]
			}
		}
		data = c
	}
	return data, shape, nil
}

// SaveStats writes s to path as np.savez_compressed(path, mu=mu,
// sigma=sigma) does (float64, C order, deflated), which is what pytorch-fid's
// --save-stats writes.
func SaveStats(path string, s *Stats) (err error) {
	if err := s.validate("saved"); err != nil {
		return err
	}
	w, err := npz.Create(path)
	if err != nil {
		return fmt.Errorf("fid: saving statistics: %w", err)
	}
	err = errors.Join(w.Write("mu.npy", s.Mu), w.Write("sigma.npy", s.Sigma), w.Close())
	if err != nil {
		return fmt.Errorf("fid: saving statistics to %s: %w", path, err)
	}
	return nil
}
