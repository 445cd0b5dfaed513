package data

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Points is a seeded 2-D point set (the paper's synthetic data, appendix
// D.1) with its train and test splits as N×2 row-major float32.
type Points struct {
	Name        string
	Train, Test []float32
}

// Toy2D names.
const (
	MoG      = "mog"
	VonMises = "vonmises"
)

// NewPoints draws a 2-D data set: "mog" (a mixture of two Gaussians with
// means μ_k = (2 sin πk, 2 cos πk), k = 0, 1, and σ = (2/3)·sin(π/2)) or
// "vonmises" (angles from a von Mises distribution with κ = 1, μ = 0,
// mapped to the unit circle). The same seed gives the same points.
func NewPoints(name string, trainN, testN int, seed uint64) (*Points, error) {
	if trainN <= 0 || testN <= 0 {
		return nil, fmt.Errorf("data: %s needs positive train and test sizes, got %d and %d", name, trainN, testN)
	}
	var sample func(r *rand.Rand) (float64, float64)
	switch name {
	case MoG:
		sample = SampleMoG
	case VonMises:
		sample = func(r *rand.Rand) (float64, float64) {
			th := SampleVonMises(r, 0, 1)
			return math.Cos(th), math.Sin(th)
		}
	default:
		return nil, fmt.Errorf("data: unknown 2-D data set %q (want %q or %q)", name, MoG, VonMises)
	}
	r := rand.New(rand.NewPCG(seed, 0x746f79)) // "toy"
	draw := func(n int) []float32 {
		out := make([]float32, 2*n)
		for i := 0; i < n; i++ {
			x, y := sample(r)
			out[2*i], out[2*i+1] = float32(x), float32(y)
		}
		return out
	}
	return &Points{Name: name, Train: draw(trainN), Test: draw(testN)}, nil
}

// mogSigma is σ = (2/3)·sin(π/2).
var mogSigma = 2.0 / 3 * math.Sin(math.Pi/2)

func mogMean(k int) (float64, float64) {
	return 2 * math.Sin(math.Pi*float64(k)), 2 * math.Cos(math.Pi*float64(k))
}

// SampleMoG draws one point of the two-Gaussian mixture (equal weights).
func SampleMoG(r *rand.Rand) (float64, float64) {
	mx, my := mogMean(r.IntN(2))
	return mx + mogSigma*r.NormFloat64(), my + mogSigma*r.NormFloat64()
}

// MoGLogDensity is the mixture's log-density at (x, y).
func MoGLogDensity(x, y float64) float64 {
	var lp [2]float64
	for k := 0; k < 2; k++ {
		mx, my := mogMean(k)
		d2 := ((x-mx)*(x-mx) + (y-my)*(y-my)) / (mogSigma * mogSigma)
		lp[k] = math.Log(0.5) - 0.5*d2 - math.Log(2*math.Pi*mogSigma*mogSigma)
	}
	m := math.Max(lp[0], lp[1])
	return m + math.Log(math.Exp(lp[0]-m)+math.Exp(lp[1]-m))
}

// SampleVonMises draws an angle in (−π, π] from a von Mises distribution
// with mean mu and concentration kappa (Best & Fisher, 1979).
func SampleVonMises(r *rand.Rand, mu, kappa float64) float64 {
	if kappa < 1e-8 {
		return math.Pi * (2*r.Float64() - 1)
	}
	tau := 1 + math.Sqrt(1+4*kappa*kappa)
	rho := (tau - math.Sqrt(2*tau)) / (2 * kappa)
	rr := (1 + rho*rho) / (2 * rho)
	var f float64
	for {
		u1, u2 := r.Float64(), r.Float64()
		z := math.Cos(math.Pi * u1)
		f = (1 + rr*z) / (rr + z)
		c := kappa * (rr - f)
		if c*(2-c)-u2 > 0 || math.Log(c/u2)+1-c >= 0 {
			break
		}
	}
	th := math.Acos(math.Max(-1, math.Min(1, f)))
	if r.Float64() < 0.5 {
		th = -th
	}
	th += mu
	return math.Remainder(th, 2*math.Pi)
}

// VonMisesLogDensity is the log-density of the angle θ (w.r.t. arc length
// on the unit circle): κ cos(θ−μ) − log(2π I₀(κ)).
func VonMisesLogDensity(theta, mu, kappa float64) float64 {
	return kappa*math.Cos(theta-mu) - math.Log(2*math.Pi*besselI0(kappa))
}

// besselI0 is the modified Bessel function of the first kind, order 0.
func besselI0(x float64) float64 {
	sum, term := 1.0, 1.0
	for k := 1; k < 200; k++ {
		term *= (x / 2) * (x / 2) / float64(k*k)
		sum += term
		if term < 1e-17*sum {
			break
		}
	}
	return sum
}

// PointBatches serves training batches of a point set: each epoch is a
// fresh permutation drawn from (seed, epoch), so the batch of a step is a
// function of the step alone and a resumed run sees the same data. With
// dropLast the last partial batch of an epoch is skipped, else it is
// served short.
type PointBatches struct {
	points    []float32
	batch     int
	dropLast  bool
	seed      uint64
	device    gotch.Device
	perEpoch  int
	permEpoch int
	perm      []int
	buf       []float32
	// rank and world: the rank serves its slice of each global batch
	// (Shard).
	rank, world int
}

// NewPointBatches serves batches of `batch` rows from N×2 points.
func NewPointBatches(points []float32, batch int, dropLast bool, seed uint64, device gotch.Device) (*PointBatches, error) {
	n := len(points) / 2
	if batch <= 0 || batch > n {
		return nil, fmt.Errorf("data: batch size %d must be in [1, %d] for %d points", batch, n, n)
	}
	per := n / batch
	if !dropLast && n%batch != 0 {
		per++
	}
	return &PointBatches{points: points, batch: batch, dropLast: dropLast, seed: seed, device: device, perEpoch: per, permEpoch: -1, world: 1}, nil
}

// Shard makes Batch serve rank's contiguous slice of batch/world rows of
// each global batch (rows rank·batch/world onwards), from the same epoch
// order, for data-parallel training. The error names data.batch_size or
// data.drop_last when the batches do not split evenly.
func (b *PointBatches) Shard(rank, world int) error {
	if err := checkShard(len(b.points)/2, b.batch, b.dropLast, rank, world); err != nil {
		return err
	}
	b.rank, b.world = rank, world
	return nil
}

// BatchesPerEpoch is the number of batches per pass over the data.
func (b *PointBatches) BatchesPerEpoch() int { return b.perEpoch }

// Batch returns the rows of a 0-based step as a (B, 2) float32 tensor on
// the device, in the caller's scope.
func (b *PointBatches) Batch(step int) (*ts.Tensor, error) {
	if step < 0 {
		return nil, fmt.Errorf("data: negative step %d", step)
	}
	epoch, i := step/b.perEpoch, step%b.perEpoch
	n := len(b.points) / 2
	if epoch != b.permEpoch {
		r := rand.New(rand.NewPCG(b.seed, 0x70657270+uint64(epoch))) // "perm"+epoch
		b.perm = r.Perm(n)
		b.permEpoch = epoch
	}
	lo, hi := i*b.batch, min((i+1)*b.batch, n)
	rows := (hi - lo) / b.world
	lo += b.rank * rows
	hi = lo + rows
	b.buf = b.buf[:0]
	for _, j := range b.perm[lo:hi] {
		b.buf = append(b.buf, b.points[2*j], b.points[2*j+1])
	}
	t, err := ts.FromBytes(float32Bytes(b.buf), []int64{int64(hi - lo), 2}, gotch.Float)
	if err != nil {
		return nil, err
	}
	if b.device == gotch.CPU {
		return t, nil
	}
	return t.To(b.device, true)
}

// Tensor returns N×2 points as a float32 tensor on device, in the caller's
// scope.
func Tensor(points []float32, device gotch.Device) (*ts.Tensor, error) {
	t, err := ts.FromBytes(float32Bytes(points), []int64{int64(len(points) / 2), 2}, gotch.Float)
	if err != nil || device == gotch.CPU {
		return t, err
	}
	return t.To(device, true)
}
