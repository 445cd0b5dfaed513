package data

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Dequantization of 8-bit values.
type Dequantization string

const (
	// DequantNone maps the 256 levels to evenly spaced points: k/255.
	DequantNone Dequantization = "none"
	// DequantUniform adds u ~ U[0,1) to each level: (k+u)/256, a
	// continuous density whose likelihood bounds the discrete one.
	DequantUniform Dequantization = "uniform"
)

// Range is the interval the model sees.
type Range string

// The values are config's (data.range).
const (
	RangeUnit   = Range(config.RangeUnit)   // [0, 1]
	RangeSigned = Range(config.RangeSigned) // [-1, 1]: 2·unit − 1
)

// Transform turns uint8 images into the model's float input.
type Transform struct {
	Dequantization Dequantization
	Range          Range
}

// Per-family defaults: flows train on uniformly dequantised [0,1] data
// (bits/dim in the standard convention); VAEs on k/255 in [0,1].
var (
	FlowTransform = Transform{DequantUniform, RangeUnit}
	VAETransform  = Transform{DequantNone, RangeUnit}
)

// ParseTransform reads the run config's data.dequantization and
// data.range.
func ParseTransform(dequantization, valueRange string) (Transform, error) {
	t := Transform{Dequantization(dequantization), Range(valueRange)}
	return t, t.Validate()
}

// Validate checks the two settings.
func (t Transform) Validate() error {
	if t.Dequantization != DequantNone && t.Dequantization != DequantUniform {
		return fmt.Errorf("data: dequantization %q: want %q or %q", t.Dequantization, DequantNone, DequantUniform)
	}
	if t.Range != RangeUnit && t.Range != RangeSigned {
		return fmt.Errorf("data: range %q: want %q ([0,1]) or %q ([-1,1])", t.Range, RangeUnit, RangeSigned)
	}
	return nil
}

func (t Transform) width() float64 {
	if t.Range == RangeSigned {
		return 2
	}
	return 1
}

// BitsPerDimOffset is the constant to add to nll/(D·ln 2), with nll in
// nats of the model's density over its input, to get bits per dimension of
// the 8-bit data: −log2 of a quantisation bin's width in model units,
// 8 for uniform dequantisation to [0,1] and 7 to [-1,1]. Without
// dequantisation the bins are the grid spacing (1/255 of the range) and
// the figure is not a bound on the discrete likelihood.
func (t Transform) BitsPerDimOffset() float64 {
	levels := 256.0
	if t.Dequantization == DequantNone {
		levels = 255
	}
	return math.Log2(levels / t.width())
}

// Apply maps a uint8 tensor (any shape, any device) to float32 on the same
// device: (k+u)/256 or k/255, then 2x−1 for the signed range. The noise u
// comes from libtorch's generator of that device (seeded by nn.Seed and
// saved in checkpoints). The result belongs to the caller's scope.
func (t Transform) Apply(u8 *ts.Tensor) (out *ts.Tensor, err error) {
	return t.ApplyRows(u8, 0, 0)
}

// ApplyRows is Apply for rows offset.. of a batch of total rows (a rank's
// slice of a global batch): the dequantisation noise is drawn for all
// total rows and sliced, so each row gets the noise it gets in a
// one-process run (one seed, the same noise for any world size), at the
// cost of drawing the whole batch's noise. total 0 means u8's own rows.
func (t Transform) ApplyRows(u8 *ts.Tensor, offset, total int) (out *ts.Tensor, err error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	defer recoverTorch(&err, "data: Transform.Apply")
	sc := ts.NewScope()
	defer sc.Close()
	if k := u8.DType(); k != gotch.Uint8 {
		return nil, fmt.Errorf("data: Transform.Apply takes uint8 pixels, got %v", k)
	}
	// Out-of-place ops only: Totype returns its input when the dtype
	// already matches, and an in-place op would then change the caller's
	// tensor (CONVENTIONS.md, "Aliasing").
	x := u8.MustTotype(gotch.Float, false)
	if t.Dequantization == DequantUniform {
		shape := x.MustSize()
		rows := shape[0]
		if total == 0 {
			total = int(rows)
		}
		if offset < 0 || int64(offset)+rows > int64(total) {
			return nil, fmt.Errorf("data: rows %d..%d of a batch of %d", offset, int64(offset)+rows, total)
		}
		var u *ts.Tensor
		if int64(total) == rows {
			u = x.MustRandLike(false)
		} else {
			dev := x.MustDevice()
			u = ts.MustRand(append([]int64{int64(total)}, shape[1:]...), gotch.Float, dev).MustNarrow(0, int64(offset), rows, false)
		}
		x = x.MustAdd(u, false).MustDivScalar(ts.FloatScalar(256/t.width()), true)
	} else {
		x = x.MustDivScalar(ts.FloatScalar(255/t.width()), false)
	}
	if t.Range == RangeSigned {
		x = x.MustAddScalar(ts.FloatScalar(-1), true)
	}
	sc.Keep(x)
	return x, nil
}

// ErrNonFiniteSamples is wrapped by Quantize's error for samples with NaN
// or Inf, which have no pixel value.
var ErrNonFiniteSamples = errors.New("data: samples are not finite")

// Quantize is the inverse map for model outputs (samples): float values in
// the transform's range back to uint8 levels, clamped, on the CPU; for
// saving images and for FID. Non-finite values are an error wrapping
// ErrNonFiniteSamples (a cast to uint8 would be undefined). x is not
// changed. The result belongs to the caller's scope.
func (t Transform) Quantize(x *ts.Tensor) (out *ts.Tensor, err error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	defer recoverTorch(&err, "data: Transform.Quantize")
	sc := ts.NewScope()
	defer sc.Close()
	// Out-of-place ops only: Totype returns x itself for float32 input,
	// and an in-place op would overwrite the caller's samples.
	y := x.MustTotype(gotch.Float, false)
	if bad := y.MustIsfinite(false).MustLogicalNot(true).MustSum(gotch.Int64, true).Int64Values()[0]; bad > 0 {
		return nil, fmt.Errorf("%w: %d of %d values are NaN or infinite; the model diverged or the temperature is too high, and such samples are neither saved nor scored", ErrNonFiniteSamples, bad, y.Numel())
	}
	if t.Range == RangeSigned {
		y = y.MustAddScalar(ts.FloatScalar(1), false)
	}
	if t.Dequantization == DequantUniform {
		y = y.MustMulScalar(ts.FloatScalar(256/t.width()), false).MustFloor(true)
	} else {
		y = y.MustMulScalar(ts.FloatScalar(255/t.width()), false).MustRound(true)
	}
	y = y.MustClamp(ts.FloatScalar(0), ts.FloatScalar(255), true)
	q := y.MustTo(gotch.CPU, false).MustTotype(gotch.Uint8, false)
	sc.Keep(q)
	return q, nil
}

// Tensor copies the batch into a uint8 tensor, moves it to the device (a
// quarter of the bytes of float32) and applies the transform there. Call it
// on the training goroutine; the result belongs to the caller's scope, and
// b can be released right after.
func (b *Batch) Tensor(device gotch.Device, t Transform) (out *ts.Tensor, err error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	defer recoverTorch(&err, "data: Batch.Tensor")
	sc := ts.NewScope()
	defer sc.Close()
	shape := []int64{int64(b.Shape[0]), int64(b.Shape[1]), int64(b.Shape[2]), int64(b.Shape[3])}
	u8, err := ts.FromBytes(b.Pixels, shape, gotch.Uint8)
	if err != nil {
		return nil, err
	}
	if device != gotch.CPU {
		u8 = u8.MustTo(device, false)
	}
	x, err := t.ApplyRows(u8, b.Offset, b.Total)
	if err != nil {
		return nil, err
	}
	sc.Keep(x)
	return x, nil
}

// LabelTensor returns the labels as an int64 CPU tensor in the caller's
// scope, or an error for an unlabelled batch.
func (b *Batch) LabelTensor() (*ts.Tensor, error) {
	if b.Labels == nil {
		return nil, errors.New("data: the batch has no labels")
	}
	l := make([]int64, len(b.Labels))
	for i, v := range b.Labels {
		l[i] = int64(v)
	}
	return ts.OfSlice(l)
}

// recoverTorch turns a panic of a gotch Must op into an error; Go bugs
// (runtime errors) keep their stack.
func recoverTorch(err *error, what string) { nn.RecoverValue(recover(), err, what) }

// Stream serves the training batch of each step as a device tensor:
// train.Batches for image data. Consecutive steps come from one
// prefetching producer; any other step (the first, or a resume) restarts
// it at that step's epoch and index.
type Stream struct {
	loader    *Loader
	device    gotch.Device
	transform Transform
	it        *Iterator
	next      int
	wait      time.Duration
}

// Stream returns a step-indexed view of the loader's batches.
func (l *Loader) Stream(device gotch.Device, t Transform) (*Stream, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return &Stream{loader: l, device: device, transform: t}, nil
}

// Host returns the host batch of a 0-based step; Release it when done.
func (s *Stream) Host(step int) (*Batch, error) {
	if step < 0 {
		return nil, fmt.Errorf("data: negative step %d", step)
	}
	if s.it == nil || step != s.next {
		s.Close()
		epoch, index := s.loader.Position(step)
		it, err := s.loader.Start(epoch, index)
		if err != nil {
			return nil, err
		}
		s.it = it
	}
	b, err := s.it.Next()
	if err != nil {
		return nil, err
	}
	s.next = step + 1
	s.wait = b.Wait
	return b, nil
}

// Batch returns the batch of a 0-based step on the device, transformed,
// in the caller's scope.
func (s *Stream) Batch(step int) (*ts.Tensor, error) {
	b, err := s.Host(step)
	if err != nil {
		return nil, err
	}
	defer b.Release()
	return b.Tensor(s.device, s.transform)
}

// DataWait is how long the last Batch or Host call waited for the
// producer (the step's data_wait metric); tensor conversion is not in it.
func (s *Stream) DataWait() time.Duration { return s.wait }

// BatchesPerEpoch is the number of steps per pass over the data.
func (s *Stream) BatchesPerEpoch() int { return s.loader.perEpoch }

// Close stops the producer; the next Batch restarts it.
func (s *Stream) Close() {
	if s.it != nil {
		s.it.Close()
		s.it = nil
	}
}
