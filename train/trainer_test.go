package train

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/flows"
	"github.com/mollify/mollify/mollification"
	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

func TestMain(m *testing.M) {
	nn.SetThreads(1)
	if name := os.Getenv(distWorkerVar); name != "" { // a rank of distributed_test.go
		os.Exit(runDistWorker(name))
	}
	os.Exit(m.Run())
}

// rowBatches is a Batches over a fixed dataset: step i takes rows
// [(i·B) mod (N−B), +B).
type rowBatches struct {
	data  *ts.Tensor
	batch int64
}

func (s rowBatches) Batch(step int) (*ts.Tensor, error) {
	n := s.data.MustSize()[0]
	return s.data.MustNarrow(0, (int64(step)*s.batch)%(n-s.batch), s.batch, false), nil
}

type flowModel struct{ f *flows.RealNVP2D }

func (m flowModel) Loss(x *ts.Tensor) (nn.Loss, error) {
	nll := m.f.LogProb(x).MustMean(gotch.Float, true).MustNeg(true)
	return nn.Loss{Total: nll, Terms: map[string]*ts.Tensor{"nll": nll}}, nil
}

func testConfig(iters int) *config.Config {
	c := config.Default()
	c.Run.Iterations = iters
	c.Optim.LR = 1e-3
	c.Mollification.Enabled = true
	c.Mollification.Fraction = 0.5
	c.Output.Keep = 0
	return &c
}

func newTrainer(t *testing.T, c *config.Config, dir string, data *ts.Tensor) *Trainer {
	t.Helper()
	rng, err := nn.Seed(c.Run.Seed)
	if err != nil {
		t.Fatal(err)
	}
	store := nn.NewStore(gotch.CPU)
	t.Cleanup(store.Close)
	f, err := flows.NewRealNVP2D(store.Root(), config.RealNVP2D{Couplings: 3, HiddenLayers: 2, HiddenUnits: 16})
	if err != nil {
		t.Fatal(err)
	}
	opt, err := nn.NewOptimizer(store, nn.OptimConfig{Name: "adam", LR: c.Optim.LR})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(opt.Close)
	moll, err := mollification.FromConfig(c, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	return &Trainer{
		Options: options(t, c), Dir: dir, Device: gotch.CPU, Store: store, Model: flowModel{f}, Optim: opt,
		Mollifier: moll, Data: rowBatches{data, 64}, RNG: rng, Log: &bytes.Buffer{},
		Hooks: []Hook{MetricsHook(10), ProgressHook(10)},
	}
}

func options(t *testing.T, c *config.Config) Options {
	t.Helper()
	o, err := NewOptions(c)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func paramBytes(t *testing.T, s *nn.Store) map[string][]byte {
	out := map[string][]byte{}
	for n, v := range s.Named() {
		b, err := v.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		out[n] = b
	}
	return out
}

func toyData() *ts.Tensor {
	sc := ts.NewScope()
	defer sc.Close()
	x := nn.Randn([]int64{2000, 2}, gotch.CPU).MustMulScalar(ts.FloatScalar(1.5), true)
	sc.Detach(x)
	return x
}

// A run interrupted at step 30 and resumed ends with bit-identical
// parameters to an uninterrupted one, with mollification noise (torch RNG)
// active across the interruption.
func TestResumeIsBitwiseIdentical(t *testing.T) {
	data := toyData()
	defer data.MustDrop()
	c := testConfig(60)

	straight := newTrainer(t, c, t.TempDir(), data)
	if err := straight.Run(); err != nil {
		t.Fatal(err)
	}
	want := paramBytes(t, straight.Store)

	dir := t.TempDir()
	first := newTrainer(t, c, dir, data)
	if err := first.RunUntil(30); err != nil {
		t.Fatal(err)
	}
	if _, err := first.SaveCheckpoint(); err != nil {
		t.Fatal(err)
	}
	// Move the torch RNG on, as a new process would have a different state.
	nn.Randn([]int64{100}, gotch.CPU).MustDrop()

	resumed := newTrainer(t, c, dir, data)
	if err := resumed.Resume(); err != nil {
		t.Fatal(err)
	}
	if resumed.Steps() != 30 {
		t.Fatalf("resumed at step %d, want 30", resumed.Steps())
	}
	if err := resumed.Run(); err != nil {
		t.Fatal(err)
	}
	got := paramBytes(t, resumed.Store)
	for n, w := range want {
		if !bytes.Equal(got[n], w) {
			t.Errorf("parameter %s differs after resume", n)
		}
	}
	metrics, err := os.ReadFile(filepath.Join(dir, "metrics.jsonl"))
	if err != nil || !bytes.Contains(metrics, []byte(`"kind":"train"`)) || !bytes.Contains(metrics, []byte(`"sigma2"`)) {
		t.Errorf("metrics.jsonl missing train records: %v %s", err, metrics)
	}
}

func TestResumeWithoutCheckpoint(t *testing.T) {
	data := toyData()
	defer data.MustDrop()
	tr := newTrainer(t, testConfig(10), t.TempDir(), data)
	if err := tr.Resume(); !errors.Is(err, nn.ErrNoCheckpoint) {
		t.Errorf("Resume on an empty folder: %v", err)
	}
}

// An attempt killed before its first checkpoint left rows and event files;
// resuming without a checkpoint starts the run over, so they go, and the
// rerun logs each step once.
func TestResumeWithoutCheckpointStartsTheLogsOver(t *testing.T) {
	data := toyData()
	defer data.MustDrop()
	dir := t.TempDir()
	logRows := Hook{Name: "log", Every: 1, Fn: func(t *Trainer, st *StepStats) error {
		return t.Metric("attempt", map[string]any{"loss": st.Loss})
	}}
	killed := newTrainer(t, testConfig(10), dir, data)
	killed.Hooks = append(killed.Hooks, logRows)
	if err := killed.RunUntil(4); err != nil {
		t.Fatal(err)
	}
	killed.Close()
	events, _ := filepath.Glob(filepath.Join(dir, "events.out.tfevents.*"))
	if _, err := os.Stat(filepath.Join(dir, "metrics.jsonl")); err != nil || len(events) == 0 {
		t.Fatalf("the killed attempt left no logs to clear (metrics: %v, %d event files)", err, len(events))
	}
	tr := newTrainer(t, testConfig(10), dir, data)
	tr.Hooks = append(tr.Hooks, logRows)
	if err := tr.Resume(); !errors.Is(err, nn.ErrNoCheckpoint) {
		t.Fatalf("Resume: %v", err)
	}
	if err := tr.Run(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[float64]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		if rec["kind"] == "attempt" {
			seen[rec["step"].(float64)]++
		}
	}
	if len(seen) != 10 {
		t.Errorf("steps logged: %v, want 1 to 10", seen)
	}
	for step, n := range seen {
		if n != 1 {
			t.Errorf("step %v logged %d times:\n%s", step, n, b)
		}
	}
	if events, _ = filepath.Glob(filepath.Join(dir, "events.out.tfevents.*")); len(events) != 1 {
		t.Errorf("%d event files, want the rerun's one", len(events))
	}
}

// nanModel returns a NaN loss on the steps in bad.
type nanModel struct {
	flowModel
	calls int
	bad   func(call int) bool
}

func (m *nanModel) Loss(x *ts.Tensor) (nn.Loss, error) {
	m.calls++
	l, err := m.flowModel.Loss(x)
	if m.bad(m.calls - 1) {
		l.Total = l.Total.MustMulScalar(ts.FloatScalar(math.NaN()), false)
	}
	return l, err
}

func TestNonFiniteStepsAreSkippedThenAbort(t *testing.T) {
	data := toyData()
	defer data.MustDrop()
	c := testConfig(40)
	c.Run.MaxNonFinite = 3
	tr := newTrainer(t, c, t.TempDir(), data)
	m := &nanModel{flowModel: tr.Model.(flowModel), bad: func(i int) bool { return i%10 == 5 }}
	tr.Model = m
	before := paramBytes(t, tr.Store)
	if err := tr.Run(); err != nil {
		t.Fatalf("isolated NaN steps should be skipped: %v", err)
	}
	if tr.Skipped() != 4 {
		t.Errorf("skipped %d steps, want 4", tr.Skipped())
	}
	if after := paramBytes(t, tr.Store); bytes.Equal(after["couplings.0.net.0.weight"], before["couplings.0.net.0.weight"]) {
		t.Error("the finite steps did not train")
	}

	c2 := testConfig(40)
	c2.Run.MaxNonFinite = 3
	tr2 := newTrainer(t, c2, t.TempDir(), data)
	tr2.Model = &nanModel{flowModel: tr2.Model.(flowModel), bad: func(i int) bool { return i >= 12 }}
	tr2.Hooks = append(tr2.Hooks, CheckpointHook(10))
	err := tr2.Run()
	if !errors.Is(err, ErrNonFinite) {
		t.Fatalf("consecutive NaNs: %v", err)
	}
	if !strings.Contains(err.Error(), "ckpt-000000010.safetensors") || !strings.Contains(err.Error(), "4 consecutive steps") {
		t.Errorf("error should name the count and the last good checkpoint: %v", err)
	}
	if all, _ := Checkpoints(tr2.Dir); len(all) != 1 {
		t.Errorf("checkpoints %v: only the good one at step 10 should exist", all)
	}
}

func TestProgressPlainLines(t *testing.T) {
	data := toyData()
	defer data.MustDrop()
	tr := newTrainer(t, testConfig(20), t.TempDir(), data)
	if err := tr.Run(); err != nil {
		t.Fatal(err)
	}
	out := tr.Log.(*bytes.Buffer).String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "step 10/20 loss") || !strings.Contains(lines[0], "σ²=") ||
		!strings.Contains(lines[1], "clean") || !strings.Contains(lines[1], "it/s") || strings.Contains(out, "\r") {
		t.Errorf("non-TTY progress should be plain lines every 10 steps:\n%s", out)
	}
}

// bnModel is a flow whose loss goes through a batch norm, so that every
// forward pass updates running statistics.
type bnModel struct {
	flowModel
	bn *nn.BatchNorm2d
}

func (m bnModel) Loss(x *ts.Tensor) (nn.Loss, error) {
	n := x.MustSize()[0]
	h := m.bn.Forward(x.MustView([]int64{n, 2, 1, 1}, false)).MustView([]int64{n, 2}, true)
	return m.flowModel.Loss(h)
}

// A batch whose loss is NaN is skipped, and the batch-norm running
// statistics its forward pass changed are put back (defect 4 of issue 11):
// one NaN batch must not poison evaluation.
func TestSkippedStepRestoresBatchNormBuffers(t *testing.T) {
	data := toyData()
	defer data.MustDrop()
	c := testConfig(3)
	c.Mollification.Enabled = false
	tr := newTrainer(t, c, t.TempDir(), data)
	bn, err := nn.NewBatchNorm2d(tr.Store.Root().Sub("bn"), 2)
	if err != nil {
		t.Fatal(err)
	}
	tr.Model = bnModel{tr.Model.(flowModel), bn}
	tr.Data = nanAt{rowBatches{data, 64}, 1}
	defer tr.Close()
	var afterFirst []byte
	tr.Hooks = append(tr.Hooks, Hook{Name: "look", Every: 1, Fn: func(tr *Trainer, s *StepStats) error {
		b, _ := bn.RunningMean.Bytes()
		switch s.Step {
		case 0:
			afterFirst = b
		case 1:
			if !s.Skipped {
				t.Error("the NaN batch was not skipped")
			}
			if !bytes.Equal(b, afterFirst) {
				t.Errorf("running mean changed by the skipped step: %v", bn.RunningMean.Float64Values())
			}
		}
		return nil
	}})
	if err := tr.Run(); err != nil {
		t.Fatal(err)
	}
	for _, v := range append(bn.RunningMean.Float64Values(), bn.RunningVar.Float64Values()...) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Fatalf("running statistics not finite after the run: mean %v var %v", bn.RunningMean.Float64Values(), bn.RunningVar.Float64Values())
		}
	}
	if tr.Skipped() != 1 {
		t.Errorf("skipped %d, want 1", tr.Skipped())
	}
}

// nanAt gives a batch full of NaN at one step.
type nanAt struct {
	rowBatches
	step int
}

func (n nanAt) Batch(step int) (*ts.Tensor, error) {
	x, err := n.rowBatches.Batch(step)
	if step == n.step {
		x = x.MustMulScalar(ts.FloatScalar(math.NaN()), false)
	}
	return x, err
}

// countState is a hook state: the steps the hook has seen.
type countState struct{ Seen []int }

func (c *countState) MarshalState() ([]byte, error) { return json.Marshal(c) }
func (c *countState) UnmarshalState(b []byte) error { *c = countState{}; return json.Unmarshal(b, c) }

// A hook's state travels through the checkpoint, metrics rows written
// after the last checkpoint by a killed run are dropped on resume, and
// hooks run in priority order with Start and End callbacks.
func TestHookStateAndMetricsSurviveResume(t *testing.T) {
	data := toyData()
	defer data.MustDrop()
	c := testConfig(40)
	c.Run.LogEvery = 5
	var order []string
	hooks := func(st *countState) []Hook {
		return []Hook{
			CheckpointHook(10),
			{Name: "count", Every: 5, State: st, Fn: func(tr *Trainer, s *StepStats) error {
				st.Seen = append(st.Seen, tr.Steps())
				order = append(order, "count")
				return nil
			}},
			{Name: "first", Priority: -1, Every: 5, Fn: func(*Trainer, *StepStats) error { order = append(order, "first"); return nil }},
			MetricsHook(5),
		}
	}
	straightState := &countState{}
	straight := newTrainer(t, c, t.TempDir(), data)
	straight.Hooks = hooks(straightState)
	if err := straight.Run(); err != nil {
		t.Fatal(err)
	}
	if order[0] != "first" || order[1] != "count" {
		t.Errorf("hooks ran in order %v, want priority order", order[:2])
	}

	dir := t.TempDir()
	firstState := &countState{}
	first := newTrainer(t, c, dir, data)
	first.Hooks = hooks(firstState)
	if err := first.RunUntil(27); err != nil { // killed at 27, last checkpoint at 20
		t.Fatal(err)
	}
	resumedState := &countState{Seen: []int{-1}}
	resumed := newTrainer(t, c, dir, data)
	resumed.Hooks = hooks(resumedState)
	var resumedAt, started, ended bool
	resumed.Hooks = append(resumed.Hooks, Hook{Name: "life",
		Resume: func(tr *Trainer) error {
			resumedAt = tr.Steps() == 20 && fmt.Sprint(resumedState.Seen) == "[5 10 15 20]"
			return nil
		},
		Start: func(tr *Trainer) error { started = resumedAt && tr.Steps() == 20; return nil },
		End:   func(tr *Trainer, err error) error { ended = err == nil && tr.Steps() == 40; return nil }})
	if err := resumed.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := resumed.Run(); err != nil {
		t.Fatal(err)
	}
	if !resumedAt || !started || !ended {
		t.Errorf("Resume ran at step 20 with the state restored: %v; Start ran after it: %v; End ran after step 40: %v", resumedAt, started, ended)
	}
	if fmt.Sprint(resumedState.Seen) != fmt.Sprint(straightState.Seen) {
		t.Errorf("hook state after resume %v, uninterrupted %v", resumedState.Seen, straightState.Seen)
	}
	rows := func(dir string) []string {
		b, err := os.ReadFile(filepath.Join(dir, "metrics.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var r map[string]any
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%v/%v/%v", r["kind"], r["step"], r["loss"]))
		}
		return out
	}
	if got, want := rows(dir), rows(straight.Dir); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("metrics rows after resume:\n%v\nuninterrupted:\n%v", got, want)
	}
}

// shifted is a Preprocessor whose model space is the data moved by +1000;
// its Loss records the mean of the batches it gets.
type shifted struct {
	flowModel
	means []float64
}

func (m *shifted) Preprocess(x *ts.Tensor) (*ts.Tensor, *ts.Tensor, error) {
	return x.MustAddScalar(ts.FloatScalar(1000), false), nn.Zeros([]int64{x.MustSize()[0]}, gotch.CPU), nil
}

func (m *shifted) Loss(y *ts.Tensor) (nn.Loss, error) {
	v, _ := y.MustMean(gotch.Float, false).Float64()
	m.means = append(m.means, v)
	return m.flowModel.Loss(y.MustSubScalar(ts.FloatScalar(1000), false))
}

// The trainer mollifies after the model's preprocessing (issue 11, defect
// 3): with σ² = 1/2 the model sees √½·(x+1000) + noise, mean ≈ 707, not
// the (mollify-then-preprocess) 1000.
func TestMollifiesInModelSpace(t *testing.T) {
	data := toyData()
	defer data.MustDrop()
	c := testConfig(4)
	c.Mollification.Schedule = config.ScheduleLinear
	c.Mollification.Iterations = 4
	tr := newTrainer(t, c, t.TempDir(), data)
	m := &shifted{flowModel: tr.Model.(flowModel)}
	tr.Model = m
	defer tr.Close()
	if err := tr.Run(); err != nil {
		t.Fatal(err)
	}
	for i, v := range m.means {
		info := tr.Mollifier.At(i)
		want := 1000 * math.Sqrt(1-info.Sigma2)
		if !info.Active {
			want = 1000
		}
		if math.Abs(v-want) > 5 {
			t.Errorf("step %d (σ²=%.3f): the model saw mean %.1f, want %.1f (mollified in model space)", i, info.Sigma2, v, want)
		}
	}
}

// The trainer's settings come from the config in one place; the schedule
// warms up linearly and decays along a cosine to its floor.
func TestOptionsFromConfig(t *testing.T) {
	c := testConfig(110)
	c.Optim.LR, c.Optim.GradClip = 0.01, 2.5
	c.Optim.LRSchedule = config.LRSchedule{Name: "cosine", Warmup: 10, MinLR: 0.001}
	c.Run.MaxNonFinite, c.Run.LogEvery, c.Output.CheckpointEvery, c.Output.Keep = 7, 0, 50, 3
	o := options(t, c)
	if o.Iterations != 110 || o.GradClip != 2.5 || o.MaxNonFinite != 7 || o.LogEvery != 1 || o.CheckpointEvery != 50 || o.Keep != 3 ||
		!strings.Contains(o.RunConfig, "iterations: 110") {
		t.Errorf("options %+v", o)
	}
	for _, c := range []struct {
		step int
		want float64
	}{{0, 0.001}, {4, 0.005}, {9, 0.01}, {10, 0.01}, {60, 0.0055}, {109, 0.001 + 0.0045*(1+math.Cos(math.Pi*0.99))}, {200, 0.001}} {
		if got := o.LR.At(c.step, o.Iterations); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("lr at step %d: %g, want %g", c.step, got, c.want)
		}
	}
	if got := (LRSchedule{Base: 0.3}).At(5, 10); got != 0.3 {
		t.Errorf("constant schedule: %g", got)
	}
}
