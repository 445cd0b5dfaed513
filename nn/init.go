package nn

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// KaimingUniformBound is the bound of torch.nn.init.kaiming_uniform_ with
// leaky_relu gain for slope a: sqrt(6 / ((1+a²)·fanIn)).
func KaimingUniformBound(fanIn int64, a float64) float64 {
	return math.Sqrt(6 / ((1 + a*a) * float64(fanIn)))
}

// Uniform returns a new float32 tensor with values in [-bound, bound),
// drawn from libtorch's generator on device.
func Uniform(shape []int64, bound float64, device gotch.Device) *ts.Tensor {
	t := ts.MustEmpty(shape, gotch.Float, device)
	t.MustUniform_(-bound, bound)
	return t
}

// Zeros returns a float32 tensor of zeros.
func Zeros(shape []int64, device gotch.Device) *ts.Tensor {
	return ts.MustZeros(shape, gotch.Float, device)
}

// Ones returns a float32 tensor of ones.
func Ones(shape []int64, device gotch.Device) *ts.Tensor {
	return ts.MustOnes(shape, gotch.Float, device)
}

// Randn returns a float32 standard normal tensor.
func Randn(shape []int64, device gotch.Device) *ts.Tensor {
	return ts.MustRandn(shape, gotch.Float, device)
}

func positive(what string, vals ...int64) error {
	for _, v := range vals {
		if v <= 0 {
			return fmt.Errorf("nn: %s must be positive, got %v", what, vals)
		}
	}
	return nil
}
