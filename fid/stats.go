package fid

import (
	"errors"
	"fmt"
	"math"

	"github.com/sugarme/gotch/ts"
	"gonum.org/v1/gonum/mat"

	"github.com/mollify/mollify/nn"
)

// Stats are the activation statistics FID compares: the mean and the
// unbiased (ddof=1) covariance, as in pytorch-fid's .npz files.
type Stats struct {
	Mu    []float64
	Sigma *mat.Dense // d×d, symmetric
}

// Dim is the feature dimension.
func (s *Stats) Dim() int { return len(s.Mu) }

// validate checks shapes and finiteness; name says which argument in errors.
func (s *Stats) validate(name string) error {
	if s == nil || s.Sigma == nil {
		return fmt.Errorf("fid: %s statistics are missing (nil Stats or Sigma)", name)
	}
	d := len(s.Mu)
	if d == 0 {
		return fmt.Errorf("fid: %s mean is empty", name)
	}
	if r, c := s.Sigma.Dims(); r != d || c != d {
		return fmt.Errorf("fid: %s sigma is %d×%d but its mean has %d entries", name, r, c, d)
	}
	for i, v := range s.Mu {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("fid: %s mean[%d] is %v", name, i, v)
		}
	}
	raw := s.Sigma.RawMatrix()
	for i := 0; i < d; i++ {
		for j, v := range raw.Data[i*raw.Stride : i*raw.Stride+d] {
			if v-v != 0 {
				return fmt.Errorf("fid: %s sigma[%d,%d] is %v", name, i, j, v)
			}
		}
	}
	return nil
}

// chunkRows is how many rows the Accumulator buffers before folding them in:
// enough for the covariance update to run at matmul speed.
const chunkRows = 512

// Accumulator streams feature rows into their mean and covariance. Rows are
// buffered in chunks; each chunk's mean and centred scatter matrix are
// merged into the running ones with Chan et al.'s pairwise update, which is
// as accurate as numpy's two-pass np.cov. The scatter matrices are float64
// matmuls on libtorch (CPU).
type Accumulator struct {
	dim   int
	count int
	mean  []float64
	m2    []float64 // Σ (x−mean)(x−mean)ᵀ, upper triangle, row-major
	buf   []float64 // pending rows, row-major
	nbuf  int
	err   error // a failed flush; the accumulator is unusable after it
}

// NewAccumulator returns an empty accumulator for dim-dimensional features.
func NewAccumulator(dim int) (*Accumulator, error) {
	if dim <= 0 {
		return nil, fmt.Errorf("fid: accumulator dimension must be positive, got %d", dim)
	}
	return &Accumulator{
		dim:  dim,
		mean: make([]float64, dim),
		m2:   make([]float64, dim*dim),
		buf:  make([]float64, chunkRows*dim),
	}, nil
}

// Dim is the feature dimension.
func (a *Accumulator) Dim() int { return a.dim }

// Count is the number of rows added so far.
func (a *Accumulator) Count() int { return a.count + a.nbuf }

// AddFloat32 adds a batch of rows: len(rows) must be a multiple of Dim,
// row-major. Non-finite values are rejected and the batch is not added.
func (a *Accumulator) AddFloat32(rows []float32) error {
	if err := a.checkBatch(len(rows)); err != nil {
		return err
	}
	for i, v := range rows {
		if v-v != 0 { // NaN or ±Inf
			return fmt.Errorf("fid: feature row %d, column %d is %v; batch not added", i/a.dim, i%a.dim, v)
		}
	}
	for len(rows) > 0 {
		n := min(chunkRows-a.nbuf, len(rows)/a.dim)
		dst := a.buf[a.nbuf*a.dim : (a.nbuf+n)*a.dim]
		for i, v := range rows[:n*a.dim] {
			dst[i] = float64(v)
		}
		rows = rows[n*a.dim:]
		a.nbuf += n
		if a.nbuf == chunkRows {
			if err := a.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// AddFloat64 is AddFloat32 for float64 rows.
func (a *Accumulator) AddFloat64(rows []float64) error {
	if err := a.checkBatch(len(rows)); err != nil {
		return err
	}
	for i, v := range rows {
		if v-v != 0 { // NaN or ±Inf
			return fmt.Errorf("fid: feature row %d, column %d is %v; batch not added", i/a.dim, i%a.dim, v)
		}
	}
	for len(rows) > 0 {
		n := min(chunkRows-a.nbuf, len(rows)/a.dim)
		copy(a.buf[a.nbuf*a.dim:], rows[:n*a.dim])
		rows = rows[n*a.dim:]
		a.nbuf += n
		if a.nbuf == chunkRows {
			if err := a.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (a *Accumulator) checkBatch(n int) error {
	if a.err != nil {
		return a.err
	}
	if n%a.dim != 0 {
		return fmt.Errorf("fid: batch of %d values is not a whole number of %d-dimensional rows", n, a.dim)
	}
	return nil
}

// flush folds the buffered rows into mean and m2.
func (a *Accumulator) flush() error {
	if a.err != nil {
		return a.err
	}
	nb, d := a.nbuf, a.dim
	if nb == 0 {
		return nil
	}
	rows := a.buf[:nb*d]
	bmean := make([]float64, d)
	for i := 0; i < nb; i++ {
		for j, v := range rows[i*d : i*d+d] {
			bmean[j] += v
		}
	}
	for j := range bmean {
		bmean[j] /= float64(nb)
	}
	for i := 0; i < nb; i++ {
		r := rows[i*d : i*d+d]
		for j := range r {
			r[j] -= bmean[j]
		}
	}
	s, err := scatter(rows, nb, d)
	if err != nil {
		a.err = fmt.Errorf("fid: accumulating the covariance: %w", err)
		return a.err
	}
	for j := 0; j < d; j++ {
		dst := a.m2[j*d+j : j*d+d]
		for i, v := range s[j*d+j : j*d+d] {
			dst[i] += v
		}
	}
	na := a.count
	n := na + nb
	if na > 0 {
		// m2 += δ·δᵀ·na·nb/n, δ = bmean − mean.
		delta := make([]float64, d)
		for j := range delta {
			delta[j] = bmean[j] - a.mean[j]
		}
		c := float64(na) * float64(nb) / float64(n)
		for j := 0; j < d; j++ {
			cj := c * delta[j]
			row := a.m2[j*d+j : j*d+d]
			for i, di := range delta[j:] {
				row[i] += di * cj
			}
		}
		f := float64(nb) / float64(n)
		for j := range a.mean {
			a.mean[j] += delta[j] * f
		}
	} else {
		copy(a.mean, bmean)
	}
	a.count = n
	a.nbuf = 0
	return nil
}

// scatter returns Xᵀ·X (d×d, row-major) of the n×d row-major rows X.
func scatter(rows []float64, n, d int) (s []float64, err error) {
	defer nn.Recover(&err)
	sc := ts.NewScope()
	defer sc.Close()
	x, err := float64Tensor(rows, int64(n), int64(d))
	if err != nil {
		return nil, err
	}
	return x.MustTranspose(0, 1, false).MustMatmul(x, false).Float64Values(), nil
}

// ErrTooFewSamples is returned by Accumulator.Stats with fewer than 2 rows.
var ErrTooFewSamples = errors.New("fid: the covariance needs at least 2 feature rows")

// Stats returns the mean and unbiased covariance of the rows added so far.
// The accumulator stays usable.
func (a *Accumulator) Stats() (*Stats, error) {
	if err := a.flush(); err != nil {
		return nil, err
	}
	if a.count < 2 {
		return nil, fmt.Errorf("%w (have %d)", ErrTooFewSamples, a.count)
	}
	d := a.dim
	data := make([]float64, d*d)
	s := 1 / float64(a.count-1)
	// The upper triangle, then mirrored in cache-sized tiles.
	for j := 0; j < d; j++ {
		dst := data[j*d+j : j*d+d]
		for i, v := range a.m2[j*d+j : j*d+d] {
			dst[i] = v * s
		}
	}
	const tile = 64
	for i0 := 0; i0 < d; i0 += tile {
		for j0 := 0; j0 <= i0; j0 += tile {
			for i := i0; i < min(i0+tile, d); i++ {
				for j := j0; j < min(j0+tile, i); j++ {
					data[i*d+j] = data[j*d+i]
				}
			}
		}
	}
	return &Stats{Mu: append([]float64(nil), a.mean...), Sigma: mat.NewDense(d, d, data)}, nil
}
