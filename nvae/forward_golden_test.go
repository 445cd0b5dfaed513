package nvae

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/internal/golden"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// forwardCase is a case's settings in testdata/golden_forward.safetensors.
type forwardCase struct {
	ImageChannels   int     `json:"image_channels"`
	Size            int     `json:"size"`
	Channels        int     `json:"channels"`
	Scales          int     `json:"scales"`
	Groups          int     `json:"groups"`
	Latents         int     `json:"latents"`
	CellsPerGroup   int     `json:"cells_per_group"`
	PreBlocks       int     `json:"pre_blocks"`
	PreCells        int     `json:"pre_cells"`
	PostBlocks      int     `json:"post_blocks"`
	PostCells       int     `json:"post_cells"`
	Flows           int     `json:"flows"`
	Mixtures        int     `json:"mixtures"`
	UseSE           bool    `json:"use_se"`
	Step            int     `json:"step"`
	TotalSteps      int     `json:"total_steps"`
	KLAnnealPortion float64 `json:"kl_anneal_portion"`
	KLConstPortion  float64 `json:"kl_const_portion"`
	KLConstCoeff    float64 `json:"kl_const_coeff"`
	Batch           int     `json:"batch"`
}

func (f forwardCase) config() (config.NVAE, config.Data) {
	c := config.DefaultNVAE()
	c.Channels, c.LatentScales, c.GroupsPerScale, c.LatentsPerGroup = f.Channels, f.Scales, f.Groups, f.Latents
	c.CellsPerGroup, c.Flows, c.Mixtures, c.UseSE = f.CellsPerGroup, f.Flows, f.Mixtures, f.UseSE
	c.PreprocessBlocks, c.PreprocessCells, c.PostprocessBlocks, c.PostprocessCells = f.PreBlocks, f.PreCells, f.PostBlocks, f.PostCells
	c.KLAnnealPortion, c.KLConstPortion, c.KLConstCoeff = f.KLAnnealPortion, f.KLConstPortion, f.KLConstCoeff
	c.WeightDecayNorm = 0 // the spectral regulariser has its own golden
	d := config.Data{Dataset: "mnist", Channels: f.ImageChannels, ImageSize: f.Size, Range: config.RangeUnit, Dequantization: "none"}
	if f.ImageChannels == 3 {
		d.Dataset = "cifar10"
	}
	return c, d
}

// goOnly are the Go model's buffers with no PyTorch counterpart: the step
// count, the balancer's alphas and the spectral regulariser's vectors.
func goOnly(name string) bool {
	return name == "step" || strings.HasPrefix(name, "kl_balancer.") || strings.HasPrefix(name, "spectral.")
}

// A whole NVAE forward pass against an independent PyTorch transcription
// (testdata/gen_forward_golden.py): with the same weights, batch and
// posterior noise, each group's KL, the reconstruction term, log q and
// log p match with batch statistics (training) and, after that pass has
// moved them, with the running statistics (evaluation); the running
// statistics match; Loss gives the warm-up coefficient, the balanced
// total and its terms. Cases: 2 scales with flows on 1 channel (one-sample
// KL), and 1 scale on RGB (analytic KL).
func TestForwardMatchesPyTorch(t *testing.T) {
	defer cellBegin(t)()
	g := golden.Load(t, "testdata/golden_forward.safetensors", 2)
	for _, name := range g.Cases {
		t.Run(name, func(t *testing.T) {
			defer cellBegin(t)()
			var fc forwardCase
			g.Settings(t, name, &fc)
			c, d := fc.config()
			s := newCellStore(t)
			m, err := New(s.Root(), c, d)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.SetSchedule(fc.TotalSteps, 0); err != nil {
				t.Fatal(err)
			}
			named := s.Named()
			weights := g.Pick(name, "w.")
			for k, w := range weights {
				got, ok := named[k]
				if !ok {
					t.Fatalf("PyTorch's %q is not in the Go model (have %v)", k, s.Names())
				}
				if strings.HasSuffix(k, ".mask") { // NVAE's create_conv_mask, computed on both sides
					assertCellClose(t, "autoregressive mask "+k, got, w, 0)
				}
			}
			for k, v := range named {
				if _, ok := weights[k]; !ok {
					if !goOnly(k) {
						t.Fatalf("the Go model's %q has no PyTorch counterpart", k)
					}
					weights[k] = v.MustDetachCopy(false)
				}
			}
			load := func() {
				t.Helper()
				if err := s.Load(weights); err != nil {
					t.Fatal(err)
				}
				ts.NoGrad(func() { m.Step.MustFill_(ts.FloatScalar(float64(fc.Step))) })
			}
			eps := g.Pick(name, "eps.")
			if len(eps) != m.Groups {
				t.Fatalf("%d noise tensors for %d groups", len(eps), m.Groups)
			}
			m.noise = func(group int) *ts.Tensor { return eps[fmt.Sprint(group)] }
			x := g.Tensors[name+".x"]
			want := func(k string) *ts.Tensor { return g.Tensors[name+"."+k] }

			// The KLs must be worth comparing: clearly non-zero and
			// different in every group.
			kls := cellValues(want("train.kl").MustMeanDim([]int64{0}, false, gotch.Double, false))
			for i, k := range kls {
				if !(k > 1) {
					t.Fatalf("golden KL of group %d is %g nats: too small to show anything", i, k)
				}
				for _, o := range kls[:i] {
					if math.Abs(k-o) < 0.1 {
						t.Fatalf("golden KLs %v: two groups nearly equal", kls)
					}
				}
			}

			const tol = 1e-5
			pass := func(mode string) {
				t.Helper()
				p, err := m.Forward(x)
				if err != nil {
					t.Fatal(err)
				}
				dist, err := m.likelihood(p.Param)
				if err != nil {
					t.Fatal(err)
				}
				lp, err := dist.LogProb(x)
				if err != nil {
					t.Fatal(err)
				}
				assertCellClose(t, mode+" KL per group", ts.MustStack(p.KL, 1), want(mode+".kl"), tol)
				assertCellClose(t, mode+" reconstruction", lp.MustNeg(false), want(mode+".recon"), tol)
				if mode == "train" {
					assertCellClose(t, "log q(z|x)", p.LogQ, want("train.logq"), tol)
					assertCellClose(t, "log p(z)", p.LogP, want("train.logp"), tol)
				}
			}
			load()
			m.SetTraining(true)
			ts.NoGrad(func() { pass("train") })
			bufs := g.Pick(name, "buf.")
			if len(bufs) != 2*len(m.BatchNorms()) {
				t.Errorf("%d running statistics in PyTorch, %d batch norms here", len(bufs), len(m.BatchNorms()))
			}
			for k, w := range bufs {
				assertCellClose(t, "running statistic "+k, named[k], w, tol)
			}

			// Loss from the same start: warm-up coefficient at the step,
			// balanced KL, terms; it moves the statistics as the pass did.
			load()
			l, err := m.Loss(x)
			if err != nil {
				t.Fatal(err)
			}
			klSum := want("train.kl").MustSumDimIntlist([]int64{1}, false, gotch.Double, false).MustMean(gotch.Double, true)
			flat := func(x *ts.Tensor) *ts.Tensor { return x.MustReshape([]int64{-1}, false) }
			assertCellClose(t, "kl_coeff", flat(l.Terms["kl_coeff"]), flat(want("train.coeff")), 1e-7)
			assertCellClose(t, "total loss", flat(l.Total), flat(want("train.total")), tol)
			assertCellClose(t, "recon term", flat(l.Terms["recon"]), flat(want("train.recon").MustMean(gotch.Double, false)), tol)
			assertCellClose(t, "kl term", flat(l.Terms["kl"]), flat(klSum), tol)
			if got := m.Step.Float64Values(false)[0]; got != float64(fc.Step+1) {
				t.Errorf("step buffer %g after Loss at step %d, want %d", got, fc.Step, fc.Step+1)
			}

			m.SetTraining(false)
			ts.NoGrad(func() { pass("eval") })
		})
	}
}
