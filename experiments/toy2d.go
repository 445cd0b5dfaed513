package experiments

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/data"
	"github.com/mollify/mollify/metrics"
	"github.com/mollify/mollify/models"
	"github.com/mollify/mollify/mollification"
	"github.com/mollify/mollify/nn"
	"github.com/mollify/mollify/plots"
	"github.com/mollify/mollify/train"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
)

// Model2D is a 2-D density model that can sample.
type Model2D interface {
	models.Density
	models.Sampler
}

// Toy2D evaluates and plots a run on 2-D data.
type Toy2D struct {
	Config *config.Config
	Points *data.Points
	Model  Model2D
	Device gotch.Device

	test *ts.Tensor
	grid plots.Grid
	// What the run accumulates; checkpoints keep it (MarshalState) so that
	// a resumed run writes the same summary.json and figures as an
	// uninterrupted one.
	snapshots []snapshot
	curve     Curve
	summary   Summary
	// nonFiniteFrom is the 1-based step that began the current run of
	// skipped (non-finite) steps; 0 when the last step was finite.
	nonFiniteFrom int
}

type snapshot struct {
	step    int
	density plots.Grid
	moll    mollification.Info
}

// Curve is the learning curve recorded during a run.
type Curve struct {
	Steps     []float64 `json:"steps"`
	Loss      []float64 `json:"loss"`
	EvalSteps []float64 `json:"eval_steps"`
	MMD2Paper []float64 `json:"mmd2_paper"`
	MMD2Unit  []float64 `json:"mmd2_unit"`
}

// Summary is written to summary.json at the end of a run.
type Summary struct {
	Name       string  `json:"name"`
	Dataset    string  `json:"dataset"`
	Seed       uint64  `json:"seed"`
	Mollified  bool    `json:"mollified"`
	Kind       string  `json:"kind"`
	Schedule   string  `json:"schedule"`
	Steps      int     `json:"steps"`
	Skipped    int     `json:"skipped"`
	MMD2Paper  float64 `json:"mmd2_paper_kernel"` // RBF l=1, σ²=1e-4 (eq. 17)
	MMD2Unit   float64 `json:"mmd2_unit_kernel"`  // RBF l=1, σ²=1
	TestNLL    float64 `json:"test_nll_nats"`
	MMDSamples int     `json:"mmd_samples"`
	// Non-finite values are written as -1e300 (JSON has no NaN).
	// For data with a density (MoG): the test NLL under the true density
	// (the floor TestNLL can reach), and the agreement of the model's score
	// ∇x log p with the true one over a uniform grid on the plot box, which
	// weighs the low-density regions the paper's Fig. 1 is about: the mean
	// cosine of the angle between them (1 is perfect) and the median
	// squared error.
	TrueTestNLL      *float64 `json:"true_test_nll_nats,omitempty"`
	ScoreCosine      *float64 `json:"score_cosine_grid,omitempty"`
	ScoreMedianSqErr *float64 `json:"score_median_sq_err_grid,omitempty"`
	// Grid points where the model's score is not finite (left out of the
	// score statistics).
	ScoreGridNonFinite int `json:"score_grid_nonfinite,omitempty"`

	// EvalStep is the step of the MMD² and test NLL above (the last
	// evaluation: the end for a finished run, earlier for a diverged one).
	EvalStep int `json:"eval_step"`
	// The per-point test NLL: its mean (TestNLL) is dominated by the few
	// points a flow puts far off the manifold it has learned (1e27 nats on
	// von Mises data), so the summary also gives the median, the largest
	// value, the fraction of points above NLLBound nats (density below
	// e^-20: points the model treats as impossible), and how many are
	// not finite.
	TestNLLMedian    float64 `json:"test_nll_median_nats"`
	TestNLLMax       float64 `json:"test_nll_max_nats"`
	TestNLLAbove     float64 `json:"test_nll_frac_above_bound"`
	TestNLLBound     float64 `json:"test_nll_bound_nats"`
	TestNLLNonFinite int     `json:"test_nll_nonfinite,omitempty"`
	// MMD² under eq. 17 with the paper's two kernel numbers swapped
	// (l = 1e-4, σ² = 1: a kernel of width 0.01 that sees how sharply the
	// model concentrates), at the end of a finished run; see docs/toy2d.md.
	MMD2Swapped *float64 `json:"mmd2_swapped_kernel,omitempty"`

	// A diverged run (the trainer stopped after too many consecutive
	// non-finite steps, or the model's samples overflowed at an
	// evaluation) is a result: Diverged, the step it stopped at, the first
	// step of the final run of non-finite steps (0 if none), and why.
	// Steps are counted from 1 (steps done), as in Steps and the curves.
	Diverged       bool   `json:"diverged"`
	DivergedStep   int    `json:"diverged_step,omitempty"`
	NonFiniteFrom  int    `json:"nonfinite_from_step,omitempty"`
	DivergedReason string `json:"diverged_reason,omitempty"`
}

// NLLBound is the per-point test NLL (nats) above which a test point
// counts as off the model's support: the true MoG density is above e^-12
// at every one of 10k test points, and a model's density below e^-20
// there means it has no mass near the point.
const NLLBound = 20.0

// nan is what JSON, which has no NaN or Inf, gets for a non-finite value.
const nan = -1e300

func finiteOr(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nan
	}
	return v
}

func finiteAll(xs []float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = finiteOr(x)
	}
	return out
}

// finite replaces non-finite values by -1e300 so that the summary can be
// written as JSON.
func (s Summary) finite() Summary {
	s.MMD2Paper, s.MMD2Unit, s.TestNLL = finiteOr(s.MMD2Paper), finiteOr(s.MMD2Unit), finiteOr(s.TestNLL)
	s.TestNLLMedian, s.TestNLLMax = finiteOr(s.TestNLLMedian), finiteOr(s.TestNLLMax)
	for _, p := range []**float64{&s.ScoreCosine, &s.ScoreMedianSqErr, &s.MMD2Swapped} {
		if *p != nil {
			v := finiteOr(**p)
			*p = &v
		}
	}
	return s
}

func (c Curve) finite() Curve {
	return Curve{Steps: finiteAll(c.Steps), Loss: finiteAll(c.Loss), EvalSteps: finiteAll(c.EvalSteps), MMD2Paper: finiteAll(c.MMD2Paper), MMD2Unit: finiteAll(c.MMD2Unit)}
}

// NewToy2D prepares evaluation on the test split of points.
func NewToy2D(c *config.Config, pts *data.Points, m Model2D, device gotch.Device) (*Toy2D, error) {
	t, err := func() (t *ts.Tensor, err error) {
		sc := ts.NewScope()
		defer sc.Close()
		t, err = data.Tensor(pts.Test, device)
		if err == nil {
			sc.Detach(t)
		}
		return t, err
	}()
	if err != nil {
		return nil, err
	}
	lim := 4.0
	if pts.Name == data.VonMises {
		lim = 2
	}
	return &Toy2D{Config: c, Points: pts, Model: m, Device: device, test: t, grid: plots.NewGrid(-lim, lim, -lim, lim, 120, 120)}, nil
}

// Close frees the test tensor.
func (e *Toy2D) Close() { e.test.MustDrop() }

// density evaluates p(x) of the model on the plot grid.
func (e *Toy2D) density() (plots.Grid, error) {
	sc := ts.NewScope()
	defer sc.Close()
	g := plots.NewGrid(e.grid.X0, e.grid.X1, e.grid.Y0, e.grid.Y1, e.grid.Cols, e.grid.Rows)
	var out plots.Grid
	var err error
	ts.NoGrad(func() {
		var x, lp *ts.Tensor
		if x, err = data.Tensor(g.Points(), e.Device); err != nil {
			return
		}
		if lp, err = e.Model.LogProb(x); err != nil {
			return
		}
		vals := lp.MustExp(false).Float64Values()
		copy(g.Z, vals)
		out = g
	})
	return out, err
}

// score evaluates ∇ₓ log p(x) of the model on a coarse grid.
func (e *Toy2D) score(g plots.Grid) (vx, vy []float64, err error) {
	sc := ts.NewScope()
	defer sc.Close()
	defer nn.Recover(&err)
	x, err := data.Tensor(g.Points(), e.Device)
	if err != nil {
		return nil, nil, err
	}
	x.MustRequiresGrad_(true)
	lp, err := e.Model.LogProb(x)
	if err != nil {
		return nil, nil, err
	}
	grads, err := ts.RunBackward([]*ts.Tensor{lp.MustSum(gotch.Float, false)}, []*ts.Tensor{x}, false, false)
	if err != nil {
		return nil, nil, err
	}
	v := grads[0].Float64Values()
	vx, vy = make([]float64, len(v)/2), make([]float64, len(v)/2)
	for i := range vx {
		vx[i], vy[i] = v[2*i], v[2*i+1]
	}
	return vx, vy, nil
}

// evalResult is one evaluation: MMD² (paper and unit kernel, and at the
// end the swapped kernel) and the per-point test NLL.
type evalResult struct {
	paper, unit float64
	swapped     *float64
	nll         nllStats
}

// nllStats summarises per-point NLLs (nats).
type nllStats struct {
	mean, median, max, above float64
	nonFinite                int
}

// summarizeNLL returns the mean, the median (non-finite values sort last),
// the largest finite value, the fraction above NLLBound (non-finite ones
// included) and the count of non-finite values.
func summarizeNLL(nll []float64) nllStats {
	if len(nll) == 0 {
		return nllStats{mean: math.NaN(), median: math.NaN(), max: math.NaN(), above: math.NaN()}
	}
	var st nllStats
	st.max = math.Inf(-1)
	sorted := make([]float64, len(nll))
	var above int
	for i, v := range nll {
		st.mean += v
		if math.IsNaN(v) || math.IsInf(v, 0) {
			st.nonFinite++
			v = math.Inf(1) // as far off the model's support as it gets
		} else {
			st.max = math.Max(st.max, v)
		}
		if v > NLLBound {
			above++
		}
		sorted[i] = v
	}
	st.mean /= float64(len(nll))
	sort.Float64s(sorted)
	if n := len(sorted); n%2 == 1 {
		st.median = sorted[n/2]
	} else {
		st.median = (sorted[n/2-1] + sorted[n/2]) / 2
	}
	st.above = float64(above) / float64(len(nll))
	return st
}

// overflow is the magnitude beyond which a float32 sample's square
// overflows, so that MMD²'s kernel sums turn NaN.
const overflow = 1e18

// swappedRBF is eq. 17 with the paper's l and σ² swapped.
var swappedRBF = metrics.RBF{Lengthscale: 1e-4, Variance: 1}

// evaluate computes MMD² (both kernels; with swapped, also the swapped
// one) on the test set against as many model samples, and the per-point
// test NLL. Samples that are not finite (or overflow) make the error wrap
// train.ErrNonFinite: the model has diverged.
func (e *Toy2D) evaluate(swapped bool) (r evalResult, err error) {
	sc := ts.NewScope()
	defer sc.Close()
	defer nn.Recover(&err)
	n := int64(e.Config.Eval.MMDSamples)
	test := e.test
	if n <= 0 || n > test.MustSize()[0] {
		n = test.MustSize()[0]
	}
	test = test.MustNarrow(0, 0, n, false)
	ts.NoGrad(func() {
		var s, lp *ts.Tensor
		if s, err = e.Model.Sample(n, 1); err != nil {
			return
		}
		var b []byte
		if b, err = s.MustTo(gotch.CPU, false).MustTotype(gotch.Float, true).Bytes(); err != nil {
			return
		}
		bad := 0
		for _, v := range bytesToFloat32(b) {
			if !(math.Abs(float64(v)) < overflow) { // NaN, ±Inf or too large
				bad++
			}
		}
		if bad > 0 {
			err = fmt.Errorf("%d of %d coordinates of %d model samples are not finite or beyond %g (the flow's inverse overflows), so MMD² cannot be computed: %w",
				bad, 2*n, n, overflow, train.ErrNonFinite)
			return
		}
		// MMD² is linear in the kernel variance: one kernel pass gives both.
		if r.unit, err = metrics.MMD2(test, s, metrics.RBF{Lengthscale: e.Config.Eval.MMDLengthscale, Variance: 1}); err != nil {
			return
		}
		r.paper = r.unit * e.Config.Eval.MMDVariance
		if swapped {
			var v float64
			if v, err = metrics.MMD2(test, s, swappedRBF); err != nil {
				return
			}
			r.swapped = &v
		}
		if lp, err = e.Model.LogProb(test); err != nil {
			return
		}
		if b, err = lp.MustNeg(false).MustTo(gotch.CPU, true).MustTotype(gotch.Double, true).Bytes(); err != nil {
			return
		}
		nll := make([]float64, len(b)/8)
		for i := range nll {
			nll[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
		}
		r.nll = summarizeNLL(nll)
	})
	return r, err
}

// Hooks returns the experiment's hooks: loss curve every run.log_every,
// MMD² every eval.every and at the end, density snapshots every
// output.samples_every, and figures plus summary.json at the end. The
// summary hook carries the experiment's State; its End callback writes
// summary.json for a run that diverged (an error wrapping
// train.ErrNonFinite) with what was recorded up to then.
func (e *Toy2D) Hooks() []train.Hook {
	c := e.Config
	hooks := []train.Hook{{Name: "curve", Every: max(c.Run.LogEvery, 1), Fn: func(t *train.Trainer, s *train.StepStats) error {
		e.curve.Steps = append(e.curve.Steps, float64(t.Steps()))
		e.curve.Loss = append(e.curve.Loss, s.Loss)
		return nil
	}}}
	// The first step of a run of non-finite steps, for a diverged run's
	// summary (the trainer stops before the hooks of the step that gives up).
	hooks = append(hooks, train.Hook{Name: "nonfinite", Every: 1, Fn: func(t *train.Trainer, s *train.StepStats) error {
		switch {
		case !s.Skipped:
			e.nonFiniteFrom = 0
		case e.nonFiniteFrom == 0:
			e.nonFiniteFrom = t.Steps()
		}
		return nil
	}})
	hooks = append(hooks, train.Hook{Name: "mmd", Every: c.Eval.Every, AtEnd: true, Fn: func(t *train.Trainer, s *train.StepStats) error {
		r, err := e.evaluate(t.Steps() == c.Run.Iterations)
		if err != nil {
			return err
		}
		e.curve.EvalSteps = append(e.curve.EvalSteps, float64(t.Steps()))
		e.curve.MMD2Paper = append(e.curve.MMD2Paper, r.paper)
		e.curve.MMD2Unit = append(e.curve.MMD2Unit, r.unit)
		e.summary.MMD2Paper, e.summary.MMD2Unit, e.summary.TestNLL, e.summary.EvalStep = r.paper, r.unit, r.nll.mean, t.Steps()
		e.summary.TestNLLMedian, e.summary.TestNLLMax, e.summary.TestNLLAbove = r.nll.median, r.nll.max, r.nll.above
		e.summary.TestNLLNonFinite = r.nll.nonFinite
		if r.swapped != nil {
			e.summary.MMD2Swapped = r.swapped
		}
		fmt.Fprintf(t.Log, "eval step %d: MMD² %.4g (paper kernel σ²=%g) %.4g (unit kernel), test NLL mean %.4g, median %.4f nats, %.2g%% of points above %g nats\n",
			t.Steps(), r.paper, c.Eval.MMDVariance, r.unit, r.nll.mean, r.nll.median, 100*r.nll.above, NLLBound)
		rec := map[string]any{"mmd2_paper_kernel": r.paper, "mmd2_unit_kernel": r.unit, "test_nll": r.nll.mean,
			"test_nll_median": r.nll.median, "test_nll_frac_above_bound": r.nll.above}
		if r.swapped != nil {
			rec["mmd2_swapped_kernel"] = *r.swapped
		}
		return t.Metric("eval", rec)
	}})
	if c.Output.Plots {
		hooks = append(hooks, train.Hook{Name: "snapshot", Every: c.Output.SamplesEvery, AtEnd: true, Fn: func(t *train.Trainer, s *train.StepStats) error {
			g, err := e.density()
			if err != nil {
				return err
			}
			e.snapshots = append(e.snapshots, snapshot{step: t.Steps(), density: g, moll: t.Mollifier.At(max(t.Steps()-1, 0))})
			return nil
		}})
	}
	hooks = append(hooks, train.Hook{Name: "summary", AtEnd: true, State: e,
		Fn: func(t *train.Trainer, s *train.StepStats) error {
			return e.finish(t, nil)
		},
		End: func(t *train.Trainer, runErr error) error {
			if !errors.Is(runErr, train.ErrNonFinite) {
				// Finished (the Fn above wrote the summary), interrupted, or
				// failed for a reason that is not a result.
				return nil
			}
			return e.finish(t, runErr)
		}})
	return hooks
}

// finish writes figures and summary.json: for a finished run (diverged ==
// nil) any failure is an error; for a diverged one, the figures are drawn
// where they can be and the summary is always written.
func (e *Toy2D) finish(t *train.Trainer, diverged error) error {
	c := e.Config
	e.summary.Name, e.summary.Dataset, e.summary.Seed = c.Run.Name, c.Data.Dataset, c.Run.Seed
	e.summary.Mollified, e.summary.Kind, e.summary.Schedule = c.Mollification.Enabled, c.Mollification.Kind, c.Mollification.Schedule
	e.summary.Steps, e.summary.Skipped, e.summary.MMDSamples = t.Steps(), t.Skipped(), c.Eval.MMDSamples
	e.summary.TestNLLBound = NLLBound
	if diverged != nil {
		e.summary.Diverged, e.summary.DivergedStep, e.summary.DivergedReason = true, t.Steps(), diverged.Error()
		e.summary.NonFiniteFrom = e.nonFiniteFrom
		fmt.Fprintf(t.Log, "run diverged at step %d; writing its summary with the records so far\n", t.Steps())
	}
	// soft reports a failure of a diverged run's extras and carries on.
	soft := func(what string, err error) error {
		if err == nil || diverged == nil {
			return err
		}
		fmt.Fprintf(t.Log, "diverged run: no %s (%v)\n", what, err)
		return nil
	}
	// guard runs f; for a diverged run it also turns any panic (a plot of
	// non-finite values) into an error.
	guard := func(f func() error) (err error) {
		defer func() {
			if diverged == nil {
				return
			}
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		defer nn.Recover(&err)
		return f()
	}
	if e.Points.Name == data.MoG {
		err := guard(func() error {
			nll, cos, med, err := e.againstTruth()
			if err == nil {
				e.summary.TrueTestNLL, e.summary.ScoreCosine, e.summary.ScoreMedianSqErr = &nll, &cos, &med
			}
			return err
		})
		if err := soft("comparison with the true density", err); err != nil {
			return err
		}
	}
	if c.Output.Plots {
		err := guard(func() error { return e.figures(t) })
		if err := soft("figures", err); err != nil {
			return err
		}
	}
	b, err := json.MarshalIndent(struct {
		Summary
		Curve Curve `json:"curve"`
	}{e.summary.finite(), e.curve.finite()}, "", "  ")
	if err != nil {
		return fmt.Errorf("writing summary.json: %w", err)
	}
	return os.WriteFile(filepath.Join(t.Dir, "summary.json"), b, 0o644)
}

// toyState is the checkpointed form of what a run accumulates. Density
// grids are stored as float32 little-endian: the model computes them in
// float32, so the bytes are exact (a grid that is not exactly float32 is
// stored as float64).
type toyState struct {
	Version       int
	Curve         Curve
	Summary       Summary
	NonFiniteFrom int
	Snapshots     []snapshotState
}

type snapshotState struct {
	Step           int
	Moll           mollification.Info
	X0, X1, Y0, Y1 float64
	Cols, Rows     int
	Float64        bool // Z holds float64 values
	Z              []byte
}

const toyStateVersion = 1

// MarshalState encodes the curves, the summary so far and the density
// snapshots for a checkpoint (train.HookState).
func (e *Toy2D) MarshalState() ([]byte, error) {
	st := toyState{Version: toyStateVersion, Curve: e.curve, Summary: e.summary, NonFiniteFrom: e.nonFiniteFrom}
	for _, s := range e.snapshots {
		g := s.density
		ss := snapshotState{Step: s.step, Moll: s.moll, X0: g.X0, X1: g.X1, Y0: g.Y0, Y1: g.Y1, Cols: g.Cols, Rows: g.Rows}
		exact := true
		for _, z := range g.Z {
			if float64(float32(z)) != z && !math.IsNaN(z) {
				exact = false
				break
			}
		}
		if exact {
			ss.Z = make([]byte, 4*len(g.Z))
			for i, z := range g.Z {
				binary.LittleEndian.PutUint32(ss.Z[4*i:], math.Float32bits(float32(z)))
			}
		} else {
			ss.Float64, ss.Z = true, make([]byte, 8*len(g.Z))
			for i, z := range g.Z {
				binary.LittleEndian.PutUint64(ss.Z[8*i:], math.Float64bits(z))
			}
		}
		st.Snapshots = append(st.Snapshots, ss)
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(st); err != nil {
		return nil, fmt.Errorf("experiments: encoding the 2-D run's state: %w", err)
	}
	return buf.Bytes(), nil
}

// UnmarshalState restores what MarshalState saved.
func (e *Toy2D) UnmarshalState(b []byte) error {
	var st toyState
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&st); err != nil {
		return fmt.Errorf("experiments: decoding the 2-D run's state: %w", err)
	}
	if st.Version != toyStateVersion {
		return fmt.Errorf("experiments: 2-D run state version %d, this build reads %d", st.Version, toyStateVersion)
	}
	snaps := make([]snapshot, 0, len(st.Snapshots))
	for _, ss := range st.Snapshots {
		g := plots.NewGrid(ss.X0, ss.X1, ss.Y0, ss.Y1, ss.Cols, ss.Rows)
		width := 4
		if ss.Float64 {
			width = 8
		}
		if len(ss.Z) != width*len(g.Z) {
			return fmt.Errorf("experiments: 2-D run state: density snapshot of step %d has %d bytes for a %d×%d grid", ss.Step, len(ss.Z), ss.Cols, ss.Rows)
		}
		for i := range g.Z {
			if ss.Float64 {
				g.Z[i] = math.Float64frombits(binary.LittleEndian.Uint64(ss.Z[8*i:]))
			} else {
				g.Z[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(ss.Z[4*i:])))
			}
		}
		snaps = append(snaps, snapshot{step: ss.Step, density: g, moll: ss.Moll})
	}
	e.curve, e.summary, e.nonFiniteFrom, e.snapshots = st.Curve, st.Summary, st.NonFiniteFrom, snaps
	return nil
}

// mogScore is the true score ∇ log p of the MoG at (x, y).
func mogScore(x, y float64) (float64, float64) {
	const h = 1e-4
	return (data.MoGLogDensity(x+h, y) - data.MoGLogDensity(x-h, y)) / (2 * h),
		(data.MoGLogDensity(x, y+h) - data.MoGLogDensity(x, y-h)) / (2 * h)
}

// againstTruth compares the model with the true MoG: the test NLL under
// the true density, and how well the model's score ∇x log p points along
// the true score on a uniform 60×60 grid over the plot box (the arrows of
// the paper's Fig. 1 and 4, mostly in low-density regions): the mean
// cosine between the two vectors, and the median squared error (the mean
// is dominated by the steep tails a flow grows far from the data).
func (e *Toy2D) againstTruth() (trueNLL, cosine, medianSq float64, err error) {
	n := len(e.Points.Test) / 2
	for i := 0; i < n; i++ {
		trueNLL -= data.MoGLogDensity(float64(e.Points.Test[2*i]), float64(e.Points.Test[2*i+1]))
	}
	trueNLL /= float64(n)
	g := plots.NewGrid(e.grid.X0, e.grid.X1, e.grid.Y0, e.grid.Y1, 60, 60)
	vx, vy, err := e.score(g)
	if err != nil {
		return 0, 0, 0, err
	}
	var sq []float64
	for r := 0; r < g.Rows; r++ {
		for c := 0; c < g.Cols; c++ {
			tx, ty := mogScore(g.X(c), g.Y(r))
			i := r*g.Cols + c
			d := (vx[i]-tx)*(vx[i]-tx) + (vy[i]-ty)*(vy[i]-ty)
			nm, nt := math.Hypot(vx[i], vy[i]), math.Hypot(tx, ty)
			if math.IsNaN(d) || math.IsInf(d, 0) || nm == 0 || nt == 0 {
				// The model's density underflows far out; its score is
				// undefined there and counted apart.
				continue
			}
			sq = append(sq, d)
			cosine += (vx[i]*tx + vy[i]*ty) / (nm * nt)
		}
	}
	e.summary.ScoreGridNonFinite = g.Cols*g.Rows - len(sq)
	if len(sq) == 0 {
		return trueNLL, math.NaN(), math.NaN(), nil
	}
	sort.Float64s(sq)
	return trueNLL, cosine / float64(len(sq)), sq[len(sq)/2], nil
}

// trueDensity is the data density on the grid (MoG: analytic; von Mises,
// which has no density in R²: a histogram of the test set).
func (e *Toy2D) trueDensity() *plot.Plot {
	if e.Points.Name == data.MoG {
		g := plots.NewGrid(e.grid.X0, e.grid.X1, e.grid.Y0, e.grid.Y1, e.grid.Cols, e.grid.Rows)
		for r := 0; r < g.Rows; r++ {
			for c := 0; c < g.Cols; c++ {
				g.Z[r*g.Cols+c] = math.Exp(data.MoGLogDensity(g.X(c), g.Y(r)))
			}
		}
		return plots.Heatmap("true density", g)
	}
	return plots.Histogram2D("test data", e.grid, e.Points.Test)
}

// mollifiedData is the test set mollified as the training data were at a
// mollification state (Fig. 4, bottom row).
func mollifiedData(pts []float32, info mollification.Info, seed uint64) []float32 {
	if !info.Active || info.Kind != mollification.KindGaussian {
		return pts
	}
	r := rand.New(rand.NewPCG(seed, 7))
	a, s := math.Sqrt(1-info.Sigma2), math.Sqrt(info.Sigma2)
	out := make([]float32, len(pts))
	for i, v := range pts {
		out[i] = float32(a*float64(v) + s*r.NormFloat64())
	}
	return out
}

func (e *Toy2D) figures(t *train.Trainer) error {
	est, err := e.density()
	if err != nil {
		return err
	}
	coarse := plots.NewGrid(e.grid.X0, e.grid.X1, e.grid.Y0, e.grid.Y1, 22, 22)
	vx, vy, err := e.score(coarse)
	if err != nil {
		return err
	}
	var samples []float32
	err = func() (err error) {
		sc := ts.NewScope()
		defer sc.Close()
		defer nn.Recover(&err)
		ts.NoGrad(func() {
			var s *ts.Tensor
			if s, err = e.Model.Sample(int64(len(e.Points.Test)/2), 1); err == nil {
				var b []byte
				if b, err = s.MustTo(gotch.CPU, false).Bytes(); err == nil {
					samples = bytesToFloat32(b)
				}
			}
		})
		return err
	}()
	if err != nil {
		return err
	}
	row := []*plot.Plot{
		e.trueDensity(),
		plots.Heatmap(fmt.Sprintf("estimated density (MMD² %.3g)", e.summary.MMD2Paper), est),
		plots.Histogram2D("model samples", e.grid, samples),
		plots.ScoreField("estimated score ∇x log p", coarse, vx, vy),
	}
	if e.Points.Name == data.MoG {
		tx, ty := make([]float64, len(vx)), make([]float64, len(vy))
		for r := 0; r < coarse.Rows; r++ {
			for c := 0; c < coarse.Cols; c++ {
				tx[r*coarse.Cols+c], ty[r*coarse.Cols+c] = mogScore(coarse.X(c), coarse.Y(r))
			}
		}
		row = append(row, plots.ScoreField("true score", coarse, tx, ty))
	}
	if err := plots.SaveTiles(filepath.Join(t.Dir, "density.png"), [][]*plot.Plot{row}, 3.2*vg.Inch); err != nil {
		return err
	}
	if len(e.snapshots) > 0 {
		var dens, moll []*plot.Plot
		for _, s := range e.snapshots {
			dens = append(dens, plots.Heatmap(fmt.Sprintf("step %d", s.step), s.density))
			moll = append(moll, plots.Histogram2D(fmt.Sprintf("training data, %s", s.moll), e.grid, mollifiedData(e.Points.Test, s.moll, uint64(s.step))))
		}
		if err := plots.SaveTiles(filepath.Join(t.Dir, "progression.png"), [][]*plot.Plot{dens, moll}, 2.4*vg.Inch); err != nil {
			return err
		}
	}
	loss, err := plots.Curves("training loss", "step", "NLL (nats)", false, plots.Series{Name: "train loss", X: e.curve.Steps, Y: e.curve.Loss})
	if err != nil {
		return err
	}
	// A log scale needs a positive value (the unbiased MMD² can be
	// negative at the noise floor; a diverged run may have no evaluation).
	logY := false
	for _, v := range e.curve.MMD2Unit {
		logY = logY || v > 0 && !math.IsInf(v, 0)
	}
	mmd, err := plots.Curves("MMD² on held-out data", "step", "MMD²", logY,
		plots.Series{Name: fmt.Sprintf("paper kernel (σ²=%g)", e.Config.Eval.MMDVariance), X: e.curve.EvalSteps, Y: e.curve.MMD2Paper},
		plots.Series{Name: "unit kernel (σ²=1)", X: e.curve.EvalSteps, Y: e.curve.MMD2Unit})
	if err != nil {
		return err
	}
	return plots.SaveTiles(filepath.Join(t.Dir, "curves.png"), [][]*plot.Plot{{loss, mmd}}, 4*vg.Inch)
}

func bytesToFloat32(b []byte) []float32 {
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(uint32(b[4*i]) | uint32(b[4*i+1])<<8 | uint32(b[4*i+2])<<16 | uint32(b[4*i+3])<<24)
	}
	return out
}
