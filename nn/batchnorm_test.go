package nn

import (
	"math"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// BatchNorm2d against the formulas of torch.nn.BatchNorm2d, computed here
// by hand: training normalises with the batch mean and biased variance and
// moves the running statistics by 0.1 towards the batch mean and the
// unbiased variance; evaluation normalises with the running statistics and
// leaves them alone. The names are the state-dict ones.
func TestBatchNorm2dTrainAndEval(t *testing.T) {
	sc := ts.NewScope()
	defer sc.Close()
	s := NewStore(gotch.CPU)
	defer s.Close()
	bn, err := NewBatchNorm2d(s.Root().Sub("bn"), 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"} {
		if s.Named()[name] == nil {
			t.Fatalf("no tensor %q in the store (have %v)", name, s.Names())
		}
	}
	ts.NoGrad(func() {
		bn.W.Copy_(ts.MustOfSlice([]float32{2, 0.5}))
		bn.B.Copy_(ts.MustOfSlice([]float32{1, -1}))
	})
	// x is (N=2, C=2, 1×2): channel 0 holds 1, 2, 3, 6; channel 1 holds 0, 0, 4, 4.
	vals := []float32{1, 2, 0, 0, 3, 6, 4, 4}
	x := ts.MustOfSlice(vals).MustReshape([]int64{2, 2, 1, 2}, true)
	ch := [2][]float64{{1, 2, 3, 6}, {0, 0, 4, 4}}
	w, b := []float64{2, 0.5}, []float64{1, -1}
	var mean, biased, unbiased [2]float64
	for c := range ch {
		for _, v := range ch[c] {
			mean[c] += v / 4
		}
		for _, v := range ch[c] {
			biased[c] += (v - mean[c]) * (v - mean[c]) / 4
		}
		unbiased[c] = biased[c] * 4 / 3
	}
	// NCHW order of x: n, c, w.
	expect := func(m, v [2]float64) []float64 {
		var out []float64
		for n := 0; n < 2; n++ {
			for c := 0; c < 2; c++ {
				for j := 0; j < 2; j++ {
					xv := ch[c][2*n+j]
					out = append(out, (xv-m[c])/math.Sqrt(v[c]+1e-5)*w[c]+b[c])
				}
			}
		}
		return out
	}
	check := func(what string, got *ts.Tensor, want []float64) {
		t.Helper()
		g := got.MustTotype(gotch.Double, false).Float64Values()
		for i := range want {
			if math.Abs(g[i]-want[i]) > 1e-5*(1+math.Abs(want[i])) {
				t.Fatalf("%s[%d] = %.7g, want %.7g", what, i, g[i], want[i])
			}
		}
	}
	check("training output", bn.Forward(x), expect(mean, biased))
	runMean := [2]float64{0.1 * mean[0], 0.1 * mean[1]}
	runVar := [2]float64{0.9 + 0.1*unbiased[0], 0.9 + 0.1*unbiased[1]}
	check("running_mean", bn.RunningMean, runMean[:])
	check("running_var", bn.RunningVar, runVar[:])

	bn.SetTraining(false)
	check("evaluation output", bn.Forward(x), expect(runMean, runVar))
	check("running_mean after evaluation", bn.RunningMean, runMean[:])
	check("running_var after evaluation", bn.RunningVar, runVar[:])

	if _, err := NewBatchNorm2d(s.Root().Sub("bad"), 0); err == nil || !strings.Contains(err.Error(), "positive channel count") {
		t.Errorf("0 channels: err = %v", err)
	}
}
