package nn

import (
	"fmt"

	"github.com/sugarme/gotch/ts"
)

// BatchNorm2d is torch.nn.BatchNorm2d (affine, momentum 0.1, eps 1e-5,
// running statistics) over NCHW input. While Training (the default) it
// normalises with the batch statistics and updates the running ones
// (running_var with the unbiased batch variance, as torch does); otherwise
// it uses the running ones and leaves them alone.
type BatchNorm2d struct {
	W, B                    *ts.Tensor // weight and bias, (C)
	RunningMean, RunningVar *ts.Tensor // buffers, (C)
	Training                bool
}

// NewBatchNorm2d registers weight (ones), bias (zeros), running_mean
// (zeros) and running_var (ones) for c channels under p.
func NewBatchNorm2d(p Path, c int64) (b *BatchNorm2d, err error) {
	defer Recover(&err)
	if c <= 0 {
		return nil, fmt.Errorf("nn: BatchNorm2d needs a positive channel count, got %d", c)
	}
	sc := ts.NewScope()
	defer sc.Close()
	b = &BatchNorm2d{Training: true}
	d := p.Device()
	if b.W, err = p.Param("weight", Ones([]int64{c}, d)); err != nil {
		return nil, err
	}
	if b.B, err = p.Param("bias", Zeros([]int64{c}, d)); err != nil {
		return nil, err
	}
	if b.RunningMean, err = p.Buffer("running_mean", Zeros([]int64{c}, d)); err != nil {
		return nil, err
	}
	if b.RunningVar, err = p.Buffer("running_var", Ones([]int64{c}, d)); err != nil {
		return nil, err
	}
	return b, nil
}

// Forward normalises x (N, C, H, W), over the global batch while a
// batch-norm sync is set (SetBatchNormSync) and Training.
func (b *BatchNorm2d) Forward(x *ts.Tensor) *ts.Tensor {
	return BatchNorm(x, b.W, b.B, b.RunningMean, b.RunningVar, b.Training, 0.1, 1e-5)
}

// SetTraining selects batch statistics (true) or running statistics.
func (b *BatchNorm2d) SetTraining(on bool) { b.Training = on }
