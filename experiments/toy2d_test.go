package experiments

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/data"
	"github.com/mollify/mollify/internal/testenv"
	"github.com/mollify/mollify/models"
	"github.com/mollify/mollify/mollification"
	"github.com/mollify/mollify/nn"
	"github.com/mollify/mollify/plots"
	"github.com/mollify/mollify/train"
)

// toyConfig is configs/realnvp_vonmises.yaml shrunk to a 300-step run with
// evaluations, snapshots and checkpoints every 100 steps, figures on.
func toyConfig(t *testing.T, sets ...string) *config.Config {
	t.Helper()
	c, err := config.Load("realnvp_vonmises", append([]string{"run.iterations=300", "run.log_every=20", "run.device=cpu",
		"data.train_size=1000", "data.test_size=400", "data.batch_size=64", "model.realnvp2d.hidden_units=16",
		"eval.every=100", "eval.mmd_samples=400", "output.samples_every=100", "output.checkpoint_every=100",
		"output.keep=2", "output.plots=true"}, sets...))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// toyRun assembles a trainer as cmd/train's trainRun does for 2-D data:
// metrics, the experiment's hooks, checkpoints last. wrap, if set,
// replaces the model the trainer and the experiment see.
func toyRun(t *testing.T, c *config.Config, dir string, wrap func(Model2D) Model2D) *train.Trainer {
	t.Helper()
	nn.SetThreads(1)
	rng, err := nn.Seed(c.Run.Seed)
	if err != nil {
		t.Fatal(err)
	}
	store := nn.NewStore(gotch.CPU)
	t.Cleanup(store.Close)
	built, err := models.Build(c, store.Root())
	if err != nil {
		t.Fatal(err)
	}
	m := built.(Model2D)
	if wrap != nil {
		m = wrap(m)
	}
	opt, err := nn.NewOptimizer(store, nn.OptimConfig{Name: c.Optim.Name, LR: c.Optim.LR})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(opt.Close)
	moll, err := mollification.FromConfig(c, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(moll.Close)
	pts, err := data.NewPoints(c.Data.Dataset, c.Data.TrainSize, c.Data.TestSize, 0)
	if err != nil {
		t.Fatal(err)
	}
	batches, err := data.NewPointBatches(pts.Train, c.Data.BatchSize, c.Data.DropLast, c.Run.Seed, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	exp, err := NewToy2D(c, pts, m, gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(exp.Close)
	tr := &train.Trainer{Options: trainOptions(t, c), Dir: dir, Device: gotch.CPU, Store: store, Model: m.(train.Model), Optim: opt, Mollifier: moll,
		Data: batches, RNG: rng, Log: &bytes.Buffer{}}
	tr.Hooks = append([]train.Hook{train.MetricsHook(c.Run.LogEvery)}, exp.Hooks()...)
	tr.Hooks = append(tr.Hooks, train.CheckpointHook(c.Output.CheckpointEvery))
	t.Cleanup(tr.Close)
	return tr
}

func readSummary(t *testing.T, dir string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// files lists the paths under dir, relative, sorted.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if !testenv.WallClockFile(rel) { // a resumed run opens a second event file
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// A 2-D run killed between checkpoints (after step 250; the last
// checkpoint is at 200) and resumed writes the same summary.json (every
// value, curves included), the same files and byte-identical figures as
// an uninterrupted run: the curves, density snapshots and summary fields
// travel in the checkpoint.
func TestToy2DResumeWritesTheSameOutputs(t *testing.T) {
	c := toyConfig(t)
	straight := toyRun(t, c, t.TempDir(), nil)
	if err := straight.Run(); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	killed := toyRun(t, c, dir, nil)
	if err := killed.RunUntil(250); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "summary.json")); err == nil {
		t.Error("an interrupted run wrote summary.json")
	}
	resumed := toyRun(t, c, dir, nil)
	if err := resumed.Resume(); err != nil {
		t.Fatal(err)
	}
	if resumed.Steps() != 200 {
		t.Fatalf("resumed at step %d, want 200", resumed.Steps())
	}
	if err := resumed.Run(); err != nil {
		t.Fatal(err)
	}

	want, got := readSummary(t, straight.Dir), readSummary(t, dir)
	if !reflect.DeepEqual(got, want) {
		for k := range want {
			if !reflect.DeepEqual(got[k], want[k]) {
				t.Errorf("summary.json %q after resume:\n%v\nuninterrupted:\n%v", k, got[k], want[k])
			}
		}
	}
	curve := want["curve"].(map[string]any)
	if n := len(curve["eval_steps"].([]any)); n != 3 {
		t.Errorf("uninterrupted run has %d evaluations, want 3 (steps 100, 200, 300)", n)
	}
	if want["diverged"] != false {
		t.Errorf("finished run: diverged = %v", want["diverged"])
	}
	if gotF, wantF := files(t, dir), files(t, straight.Dir); !reflect.DeepEqual(gotF, wantF) {
		t.Errorf("files after resume %v, uninterrupted %v", gotF, wantF)
	}
	for _, f := range []string{"density.png", "progression.png", "curves.png"} {
		a, err := os.ReadFile(filepath.Join(straight.Dir, f))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs after resume", f)
		}
	}
}

// The state survives a round trip with its density grids exact, and a
// damaged state is an error.
func TestToy2DStateRoundTrip(t *testing.T) {
	e := &Toy2D{curve: Curve{Steps: []float64{20, 40}, Loss: []float64{1.5, math.NaN()}}, nonFiniteFrom: 37}
	e.summary.MMD2Paper, e.summary.EvalStep = 3e-6, 40
	g := plots.NewGrid(-2, 2, -2, 2, 40, 40)
	copy(g.Z, []float64{float64(float32(0.1)), 2.5, math.Inf(1), math.NaN()})
	e.snapshots = []snapshot{{step: 40, density: g, moll: mollification.Info{Kind: mollification.KindGaussian, Active: true, Sigma2: 0.25}}}
	b, err := e.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 2000+4*len(g.Z) {
		t.Errorf("state of %d bytes for a %d-point grid: not float32", len(b), len(g.Z))
	}
	var r Toy2D
	if err := r.UnmarshalState(b); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(r.curve, r.summary, r.nonFiniteFrom, r.snapshots) != fmt.Sprint(e.curve, e.summary, e.nonFiniteFrom, e.snapshots) {
		t.Errorf("round trip:\n%v\nwant\n%v", r.snapshots, e.snapshots)
	}
	// A grid that float32 cannot hold exactly keeps its float64 values.
	e.snapshots[0].density.Z[0] = 0.1
	if b, err = e.MarshalState(); err != nil {
		t.Fatal(err)
	}
	if err := r.UnmarshalState(b); err != nil || r.snapshots[0].density.Z[0] != 0.1 {
		t.Errorf("float64 grid after round trip: %v (%v)", r.snapshots[0].density.Z[0], err)
	}
	if err := r.UnmarshalState(b[:len(b)/2]); err == nil || !strings.Contains(err.Error(), "decoding the 2-D run's state") {
		t.Errorf("truncated state: %v", err)
	}
}

// nanAfter makes a 2-D model diverge from a given step on: its loss turns
// NaN (the trainer skips, then gives up), or its samples overflow (the
// MMD hook stops the run).
type nanAfter struct {
	Model2D
	steps     *int // training steps seen
	from      int
	lossNaN   bool
	sampleInf bool
}

func (m nanAfter) Loss(x *ts.Tensor) (nn.Loss, error) {
	*m.steps++
	l, err := m.Model2D.(train.Model).Loss(x)
	if err == nil && m.lossNaN && *m.steps > m.from {
		l.Total = l.Total.MustMulScalar(ts.FloatScalar(math.NaN()), false)
	}
	return l, err
}

func (m nanAfter) Sample(n int64, temperature float64) (*ts.Tensor, error) {
	s, err := m.Model2D.Sample(n, temperature)
	if err == nil && m.sampleInf && *m.steps > m.from {
		s = s.MustMulScalar(ts.FloatScalar(1e30), false)
	}
	return s, err
}

// A diverged run is a result: End writes summary.json with "diverged",
// the step and the reason, the records up to then and the figures, and
// the run's error still wraps train.ErrNonFinite.
func TestToy2DDivergedRunWritesSummary(t *testing.T) {
	for _, tc := range []struct {
		name               string
		lossNaN, sampleInf bool
		step, from         int
		reason             string
		evals              int
	}{
		// Steps 151..171 are non-finite; the trainer gives up after the
		// 21st (run.max_nonfinite 20).
		{"loss", true, false, 171, 151, "consecutive steps", 1},
		// The evaluation at step 200 finds overflowing samples.
		{"samples", false, true, 200, 0, "model samples are not finite", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := toyConfig(t)
			steps := 0
			tr := toyRun(t, c, t.TempDir(), func(m Model2D) Model2D {
				return nanAfter{Model2D: m, steps: &steps, from: 150, lossNaN: tc.lossNaN, sampleInf: tc.sampleInf}
			})
			err := tr.Run()
			if !errors.Is(err, train.ErrNonFinite) {
				t.Fatalf("run error %v, want one wrapping ErrNonFinite", err)
			}
			s := readSummary(t, tr.Dir)
			if s["diverged"] != true || s["diverged_step"] != float64(tc.step) || !strings.Contains(fmt.Sprint(s["diverged_reason"]), tc.reason) {
				t.Errorf("summary: diverged %v at %v (%v), want true at %d (%q)", s["diverged"], s["diverged_step"], s["diverged_reason"], tc.step, tc.reason)
			}
			if got, _ := s["nonfinite_from_step"].(float64); int(got) != tc.from {
				t.Errorf("nonfinite_from_step %v, want %d", s["nonfinite_from_step"], tc.from)
			}
			if s["steps"] != float64(tc.step) || s["eval_step"] != 100.0 {
				t.Errorf("steps %v, eval_step %v: want %d, 100", s["steps"], s["eval_step"], tc.step)
			}
			if n := len(s["curve"].(map[string]any)["eval_steps"].([]any)); n != tc.evals {
				t.Errorf("%d evaluations in the curve, want %d", n, tc.evals)
			}
			for _, f := range []string{"density.png", "curves.png", "progression.png"} {
				if _, err := os.Stat(filepath.Join(tr.Dir, f)); err != nil {
					t.Errorf("diverged run lacks %s", f)
				}
			}
		})
	}
}

func TestSummarizeNLL(t *testing.T) {
	inf := math.Inf(1)
	for _, tc := range []struct {
		in                       []float64
		mean, median, max, above float64
		nonFinite                int
	}{
		{[]float64{1, 2, 3}, 2, 2, 3, 0, 0},
		{[]float64{-5, 1, 30, 1e27}, 2.5e26, 15.5, 1e27, 0.5, 0},
		{[]float64{0, inf, 2}, inf, 2, 2, 1.0 / 3, 1},
	} {
		st := summarizeNLL(tc.in)
		if st.mean != tc.mean || st.median != tc.median || st.max != tc.max || st.above != tc.above || st.nonFinite != tc.nonFinite {
			t.Errorf("summarizeNLL(%v) = %+v, want mean %g median %g max %g above %g nonfinite %d", tc.in, st, tc.mean, tc.median, tc.max, tc.above, tc.nonFinite)
		}
	}
}
