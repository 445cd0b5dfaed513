package train

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/mollification"
	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// capFlow declares the 2-D flow capturable.
type capFlow struct{ flowModel }

func (capFlow) CaptureReady() error { return nil }

// capturableTrainer is newTrainer with a capturable optimizer and model.
func capturableTrainer(t *testing.T, c *config.Config, data *ts.Tensor) *Trainer {
	t.Helper()
	tr := newTrainer(t, c, t.TempDir(), data)
	opt, err := nn.NewOptimizer(tr.Store, nn.OptimConfig{Name: "adam", LR: c.Optim.LR, Capturable: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(opt.Close)
	tr.Optim, tr.Model = opt, capFlow{tr.Model.(flowModel)}
	t.Cleanup(tr.Close)
	return tr
}

// A run whose steps after the warm-up replay captured graphs trains as the
// eager run does: same losses at every logged step and the same
// parameters, through the mollification phase, its end (a second capture
// of the loss graph, without noise), gradient clipping and a cosine
// learning-rate schedule. On the CPU the replays give the eager run's
// numbers bit for bit (same kernels, same order, the same generator
// draws), so the comparison is exact.
func TestCapturedStepsTrainAsEagerOnes(t *testing.T) {
	data := toyData()
	defer data.MustDrop()
	c := testConfig(40)
	c.Optim.GradClip = 5
	c.Optim.LRSchedule = config.LRSchedule{Name: "cosine", Warmup: 4, MinLR: 1e-4}
	c.Run.CUDAGraph = config.CUDAGraphOn

	eager := capturableTrainer(t, c, data)
	eager.Options.CUDAGraph = config.CUDAGraphOff
	var eagerLoss []float64
	eager.Hooks = append(eager.Hooks, Hook{Name: "loss", Every: 1, Fn: func(_ *Trainer, s *StepStats) error {
		eagerLoss = append(eagerLoss, s.Loss)
		return nil
	}})
	if err := eager.Run(); err != nil {
		t.Fatal(err)
	}

	g := &RerunGrapher{}
	capt := capturableTrainer(t, c, data)
	capt.Graphs = g
	var captLoss []float64
	capt.Hooks = append(capt.Hooks, Hook{Name: "loss", Every: 1, Fn: func(_ *Trainer, s *StepStats) error {
		captLoss = append(captLoss, s.Loss)
		if s.Step >= captureWarmup && !(s.GradNorm > 0) {
			t.Errorf("step %d: captured step reports gradient norm %v", s.Step, s.GradNorm)
		}
		return nil
	}})
	if err := capt.Run(); err != nil {
		t.Fatal(err)
	}
	if g.Captures != 3 {
		t.Errorf("%d captures, want 3 (mollified loss, update, clean loss)", g.Captures)
	}
	if !strings.Contains(capt.Log.(*bytes.Buffer).String(), "captured as CUDA graphs after 3 eager warm-up steps") {
		t.Errorf("log lacks the capture line:\n%s", capt.Log)
	}
	for i := range eagerLoss {
		if d := math.Abs(captLoss[i] - eagerLoss[i]); d > 0 {
			t.Errorf("step %d: loss %.7f captured, %.7f eager", i, captLoss[i], eagerLoss[i])
		}
	}
	want, got := eager.Store.Named(), capt.Store.Named()
	for n, w := range want {
		wv, gv := w.Float64Values(), got[n].Float64Values()
		for i := range wv {
			if math.Abs(wv[i]-gv[i]) > 0 {
				t.Fatalf("parameter %s[%d]: %.7f captured, %.7f eager", n, i, gv[i], wv[i])
			}
		}
	}
	if s := capt.Optim.Steps(); s != 40 {
		t.Errorf("optimizer counted %d steps, want 40", s)
	}
}

// A NaN batch in a captured step is skipped: no update, buffers back.
// A batch of another shape runs eagerly and the graphs go on after it.
func TestCapturedStepSkipsAndFallsBack(t *testing.T) {
	data := toyData()
	defer data.MustDrop()
	c := testConfig(12)
	tr := capturableTrainer(t, c, data)
	tr.Graphs = &RerunGrapher{}
	tr.Data = oddBatches{nanAt{rowBatches{data, 64}, 6}, 8}
	var skipped []int
	tr.Hooks = append(tr.Hooks, Hook{Name: "look", Every: 1, Fn: func(_ *Trainer, s *StepStats) error {
		if s.Skipped {
			skipped = append(skipped, s.Step)
		}
		return nil
	}})
	if err := tr.Run(); err != nil {
		t.Fatal(err)
	}
	if len(skipped) != 1 || skipped[0] != 6 {
		t.Errorf("skipped steps %v, want [6]", skipped)
	}
	if s := tr.Optim.Steps(); s != 11 {
		t.Errorf("%d updates, want 11 (12 steps, one skipped; the odd batch at step 8 trained eagerly)", s)
	}
	for _, p := range tr.Store.Parameters() {
		for _, v := range p.Float64Values() {
			if math.IsNaN(v) {
				t.Fatal("a parameter is NaN")
			}
		}
	}
}

// oddBatches gives a smaller batch at one step.
type oddBatches struct {
	Batches
	step int
}

func (o oddBatches) Batch(step int) (*ts.Tensor, error) {
	x, err := o.Batches.Batch(step)
	if err != nil || step != o.step {
		return x, err
	}
	return x.MustNarrow(0, 0, 32, false), nil
}

// run.cuda_graph: "on" where the step cannot be captured is an error that
// says why; "auto" falls back to eager with the reason; off is off.
func TestCaptureMode(t *testing.T) {
	flow := capFlow{}
	gauss, err := mollification.NewGaussian(mollification.DefaultSigmoid(), 10)
	if err != nil {
		t.Fatal(err)
	}
	blur := fakeBlur{}
	for _, c := range []struct {
		mode    string
		cuda    bool
		m       Model
		moll    mollification.Mollifier
		capture bool
		err     string
		why     string
	}{
		{config.CUDAGraphAuto, false, flow, gauss, false, "", "the device is the CPU"},
		{config.CUDAGraphOn, false, flow, gauss, false, "run.cuda_graph=on, but the step cannot be captured: the device is the CPU", ""},
		{config.CUDAGraphAuto, true, flow, gauss, true, "", ""},
		{config.CUDAGraphOn, true, flowModel{}, gauss, false, "does not declare that it can be captured", ""},
		{config.CUDAGraphAuto, true, flowModel{}, gauss, false, "", "does not declare that it can be captured"},
		{config.CUDAGraphAuto, true, flow, blur, false, "", "the blur mollifier cannot take its level from a device tensor"},
		{config.CUDAGraphAuto, true, flow, mollification.None{}, true, "", ""},
		{config.CUDAGraphOff, true, flow, gauss, false, "", "run.cuda_graph=off"},
	} {
		capture, why, err := CaptureMode(c.mode, c.cuda, c.m, c.moll)
		if capture != c.capture || (c.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), c.err) || !strings.Contains(why, c.why) {
			t.Errorf("%s cuda=%v %T %T: capture %v, why %q, err %v", c.mode, c.cuda, c.m, c.moll, capture, why, err)
		}
	}
}

// fakeBlur is a mollifier without a device level, like blur.
type fakeBlur struct{ mollification.None }

func (fakeBlur) Steps() int                { return 10 }
func (fakeBlur) At(int) mollification.Info { return mollification.Info{Kind: mollification.KindBlur} }

// A captured run killed between checkpoints and resumed ends with the
// parameters of an uninterrupted captured run: graphs are not saved, the
// resumed run captures again after its own eager warm-up, and the
// optimizer's device step count and the generators travel through the
// checkpoint.
func TestCapturedRunResumes(t *testing.T) {
	data := toyData()
	defer data.MustDrop()
	c := testConfig(30)
	c.Optim.GradClip = 5
	c.Output.CheckpointEvery = 10
	run := func(dir string, stop int, resume bool) *Trainer {
		tr := capturableTrainer(t, c, data)
		tr.Dir, tr.Graphs = dir, &RerunGrapher{}
		tr.Hooks = append(tr.Hooks, CheckpointHook(10))
		if resume {
			if err := tr.Resume(); err != nil {
				t.Fatal(err)
			}
		}
		if err := tr.RunUntil(stop); err != nil {
			t.Fatal(err)
		}
		return tr
	}
	straight := run(t.TempDir(), 30, false)
	dir := t.TempDir()
	run(dir, 17, false)
	nn.Randn([]int64{100}, gotch.CPU).MustDrop() // a new process has another generator state
	resumed := run(dir, 30, true)
	if s := resumed.Optim.Steps(); s != 30 {
		t.Errorf("resumed optimizer at step %d, want 30", s)
	}
	want, got := paramBytes(t, straight.Store), paramBytes(t, resumed.Store)
	for n, w := range want {
		if !bytes.Equal(got[n], w) {
			t.Errorf("parameter %s differs after a captured run resumed", n)
		}
	}
}
