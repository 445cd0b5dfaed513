package experiments

import (
	"encoding/json"
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

	test      *ts.Tensor
	grid      plots.Grid
	snapshots []snapshot
	curve     Curve
	summary   Summary
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
}

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
	for _, p := range []**float64{&s.ScoreCosine, &s.ScoreMedianSqErr} {
		if *p != nil {
			v := finiteOr(**p)
			*p = &v
		}
	}
	return s
}

func (c Curve) finite() Curve {
	return Curve{Steps: c.Steps, Loss: finiteAll(c.Loss), EvalSteps: c.EvalSteps, MMD2Paper: finiteAll(c.MMD2Paper), MMD2Unit: finiteAll(c.MMD2Unit)}
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

// evaluate computes MMD² (both kernels) on the test set against as many
// model samples, and the test NLL.
func (e *Toy2D) evaluate() (paper, unit, nll float64, err error) {
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
		// MMD² is linear in the kernel variance: one kernel pass gives both.
		if unit, err = metrics.MMD2(test, s, metrics.RBF{Lengthscale: e.Config.Eval.MMDLengthscale, Variance: 1}); err != nil {
			return
		}
		paper = unit * e.Config.Eval.MMDVariance
		if lp, err = e.Model.LogProb(test); err != nil {
			return
		}
		nll, err = lp.MustMean(gotch.Float, true).MustNeg(true).Float64()
	})
	return paper, unit, nll, err
}

// Hooks returns the experiment's hooks: loss curve every run.log_every,
// MMD² every eval.every and at the end, density snapshots every
// output.samples_every, and figures plus summary.json at the end.
func (e *Toy2D) Hooks() []train.Hook {
	c := e.Config
	hooks := []train.Hook{{Name: "curve", Every: max(c.Run.LogEvery, 1), Fn: func(t *train.Trainer, s *train.StepStats) error {
		e.curve.Steps = append(e.curve.Steps, float64(t.Steps()))
		e.curve.Loss = append(e.curve.Loss, s.Loss)
		return nil
	}}}
	hooks = append(hooks, train.Hook{Name: "mmd", Every: c.Eval.Every, AtEnd: true, Fn: func(t *train.Trainer, s *train.StepStats) error {
		paper, unit, nll, err := e.evaluate()
		if err != nil {
			return err
		}
		e.curve.EvalSteps = append(e.curve.EvalSteps, float64(t.Steps()))
		e.curve.MMD2Paper = append(e.curve.MMD2Paper, paper)
		e.curve.MMD2Unit = append(e.curve.MMD2Unit, unit)
		e.summary.MMD2Paper, e.summary.MMD2Unit, e.summary.TestNLL = paper, unit, nll
		fmt.Fprintf(t.Log, "eval step %d: MMD² %.4g (paper kernel σ²=%g) %.4g (unit kernel), test NLL %.4f nats\n", t.Steps(), paper, c.Eval.MMDVariance, unit, nll)
		return t.Metric("eval", map[string]any{"mmd2_paper_kernel": paper, "mmd2_unit_kernel": unit, "test_nll": nll})
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
	hooks = append(hooks, train.Hook{Name: "summary", AtEnd: true, Fn: func(t *train.Trainer, s *train.StepStats) error {
		e.summary.Name, e.summary.Dataset, e.summary.Seed = c.Run.Name, c.Data.Dataset, c.Run.Seed
		e.summary.Mollified, e.summary.Kind, e.summary.Schedule = c.Mollification.Enabled, c.Mollification.Kind, c.Mollification.Schedule
		e.summary.Steps, e.summary.Skipped, e.summary.MMDSamples = t.Steps(), t.Skipped(), c.Eval.MMDSamples
		if e.Points.Name == data.MoG {
			nll, cos, med, err := e.againstTruth()
			if err != nil {
				return err
			}
			e.summary.TrueTestNLL, e.summary.ScoreCosine, e.summary.ScoreMedianSqErr = &nll, &cos, &med
		}
		if c.Output.Plots {
			if err := e.figures(t); err != nil {
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
	}})
	return hooks
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
	mmd, err := plots.Curves("MMD² on held-out data", "step", "MMD²", true,
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
