package nvae

import (
	"math"
	"strings"
	"testing"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// tinyNVAE is a 2-scale model small enough for CPU tests: 8×8 images
// (1 pre-process block: 4×4, then 2 latent scales: 2×2 at the top).
func tinyNVAE() (config.NVAE, config.Data) {
	c := config.DefaultNVAE()
	c.Channels, c.LatentScales, c.GroupsPerScale, c.LatentsPerGroup, c.CellsPerGroup = 4, 2, 2, 3, 1
	c.PreprocessCells, c.PostprocessCells = 1, 1
	c.Flows, c.Mixtures, c.UseSE = 0, 2, true
	d := config.Data{Dataset: "mnist", Channels: 1, ImageSize: 8, Range: config.RangeUnit, Dequantization: "none"}
	return c, d
}

func newTiny(t *testing.T, c config.NVAE, d config.Data) *Model {
	t.Helper()
	ts.ManualSeed(0)
	m, err := New(nn.NewStore(gotch.CPU).Root(), c, d)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// gridBatch is a batch on the 256-level grid in [0, 1].
func gridBatch(b, ch, size int64) *ts.Tensor {
	return ts.MustRandint(256, []int64{b, ch, size, size}, gotch.Float, gotch.CPU).MustDivScalar(ts.FloatScalar(255), true)
}

func TestModelShapesAndLoss(t *testing.T) {
	defer cellBegin(t)()
	for _, ch := range []int{1, 3} {
		c, d := tinyNVAE()
		d.Channels = ch
		m := newTiny(t, c, d)
		if m.Groups != 4 || len(m.EncSampler) != 4 || len(m.DecSampler) != 3 {
			t.Fatalf("channels %d: %d groups, %d encoder and %d decoder samplers; want 4, 4, 3", ch, m.Groups, len(m.EncSampler), len(m.DecSampler))
		}
		if got := m.PriorFtr0.MustSize(); got[0] != 16 || got[1] != 2 || got[2] != 2 {
			t.Errorf("prior_ftr0 shape %v, want [16 2 2] (4 channels ×2 twice, 8/2/2)", got)
		}
		x := gridBatch(5, int64(ch), 8)
		pass, err := m.Forward(x)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := MixLogisticParams(ch, c.Mixtures)
		if s := pass.Param.MustSize(); s[0] != 5 || s[1] != want || s[2] != 8 || s[3] != 8 {
			t.Errorf("decoder output %v, want [5 %d 8 8]", s, want)
		}
		if len(pass.KL) != 4 {
			t.Fatalf("%d KL terms, want 4", len(pass.KL))
		}
		for g, kl := range pass.KL {
			vals := cellValues(kl)
			if len(vals) != 5 {
				t.Errorf("group %d KL has %d values, want 5", g, len(vals))
			}
			for _, v := range vals {
				if !(v >= -1e-4) || math.IsInf(v, 0) {
					t.Errorf("group %d KL %g: want finite and ≥ 0", g, v)
				}
			}
		}
		l, err := m.Loss(x)
		if err != nil {
			t.Fatal(err)
		}
		tot := l.Total.Float64Values(false)
		if len(tot) != 1 || math.IsNaN(tot[0]) || math.IsInf(tot[0], 0) {
			t.Fatalf("loss %v, want one finite value", tot)
		}
		for _, k := range []string{"recon", "kl", "spectral", "kl_coeff"} {
			if l.Terms[k] == nil {
				t.Errorf("loss term %q missing", k)
			}
		}
		// Without a schedule the KL coefficient is 1, so total = recon + kl + spectral
		// only up to the balancing (inactive at coefficient 1).
		sum := l.Terms["recon"].Float64Values(false)[0] + l.Terms["kl"].Float64Values(false)[0] + l.Terms["spectral"].Float64Values(false)[0]
		if math.Abs(sum-tot[0]) > 1e-3*math.Abs(tot[0]) {
			t.Errorf("total %g, want recon+kl+spectral = %g at KL coefficient 1", tot[0], sum)
		}
		if s := m.Step.Float64Values(false)[0]; s != 1 {
			t.Errorf("step after one Loss is %g, want 1", s)
		}
		// Gradients reach every trained parameter.
		l.Total.MustBackward()
		store := m.PriorFtr0 // reached through the decoder
		if g := store.MustGrad(false); cellMaxAbs(cellValues(g)) == 0 {
			t.Error("prior_ftr0 has zero gradient")
		}
		for i, cv := range m.Convs() {
			g := cv.W.MustGrad(false)
			if !g.MustDefined() || cellMaxAbs(cellValues(g)) == 0 {
				t.Errorf("conv %d has no gradient", i)
			}
		}
	}
}

func TestModelWarmupAndMollifiedPhase(t *testing.T) {
	defer cellBegin(t)()
	c, d := tinyNVAE()
	c.KLConstPortion, c.KLAnnealPortion, c.KLConstCoeff = 0, 0.5, 1e-4
	c.MollifiedLikelihood = config.NVAELikelihoodContinuous
	m := newTiny(t, c, d)
	if err := m.SetSchedule(10, 2); err != nil {
		t.Fatal(err)
	}
	m.SetTraining(false) // deterministic apart from the latent draws
	x := gridBatch(4, 1, 8)
	var coeffs, recons []float64
	for i := 0; i < 4; i++ {
		ts.ManualSeed(1)
		l, err := m.Loss(x)
		if err != nil {
			t.Fatal(err)
		}
		coeffs = append(coeffs, l.Terms["kl_coeff"].Float64Values(false)[0])
		recons = append(recons, l.Terms["recon"].Float64Values(false)[0])
	}
	for i, want := range []float64{1e-4, 0.2, 0.4, 0.6} {
		if math.Abs(coeffs[i]-want) > 1e-6 {
			t.Errorf("step %d: KL coefficient %g, want %g", i, coeffs[i], want)
		}
	}
	// Steps 0 and 1 are mollified (continuous density, about D·log 255
	// nats lower NLL than the discretized likelihood), 2 and 3 are not.
	shift := 64 * math.Log(255)
	if d := recons[2] - recons[0]; math.Abs(d-shift) > 0.2*shift {
		t.Errorf("recon jumps by %g after the mollified phase, want about D·log 255 = %g (recons %v)", d, shift, recons)
	}
	if math.Abs(recons[0]-recons[1]) > 1e-3 || math.Abs(recons[2]-recons[3]) > 1e-3 {
		t.Errorf("recons %v: want equal within each phase (same seed, running statistics)", recons)
	}
	if err := m.SetSchedule(0, 0); err == nil {
		t.Error("SetSchedule(0, 0): want an error")
	}
}

func TestModelTrains(t *testing.T) {
	defer cellBegin(t)()
	c, d := tinyNVAE()
	store := nn.NewStore(gotch.CPU)
	ts.ManualSeed(0)
	m, err := New(store.Root(), c, d)
	if err != nil {
		t.Fatal(err)
	}
	opt, err := nn.NewOptimizer(store, nn.OptimConfig{Name: "adam", LR: 3e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8})
	if err != nil {
		t.Fatal(err)
	}
	x := gridBatch(8, 1, 8)
	var first, last float64
	for i := 0; i < 30; i++ {
		sc := ts.NewScope()
		ts.ManualSeed(uint64(i))
		l, err := m.Loss(x)
		if err != nil {
			t.Fatal(err)
		}
		v := l.Total.Float64Values(false)[0]
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Fatalf("step %d: loss %g", i, v)
		}
		if i == 0 {
			first = v
		}
		last = v
		l.Total.MustBackward()
		if err := opt.Step(); err != nil {
			t.Fatal(err)
		}
		if err := opt.ZeroGrad(); err != nil {
			t.Fatal(err)
		}
		sc.Close()
	}
	if !(last < first-0.05*math.Abs(first)) {
		t.Errorf("loss %g after 30 Adam steps, from %g: want at least 5%% lower", last, first)
	}
}

func TestModelSampleAndLogLikelihood(t *testing.T) {
	defer cellBegin(t)()
	c, d := tinyNVAE()
	d.Channels = 3
	m := newTiny(t, c, d)
	m.SetTraining(false)
	for _, temp := range []float64{1, 0.5} {
		s, err := m.Sample(6, temp)
		if err != nil {
			t.Fatal(err)
		}
		if sh := s.MustSize(); len(sh) != 4 || sh[0] != 6 || sh[1] != 3 || sh[2] != 8 || sh[3] != 8 {
			t.Errorf("sample shape %v, want [6 3 8 8]", sh)
		}
		for _, v := range cellValues(s) {
			if !(v >= 0 && v <= 1) {
				t.Fatalf("sample value %g outside [0, 1]", v)
			}
		}
	}
	for _, bad := range []float64{0, -1, math.Inf(1)} {
		if _, err := m.Sample(2, bad); err == nil || !strings.Contains(err.Error(), "temperature") {
			t.Errorf("Sample at temperature %g: error %v, want one about the temperature", bad, err)
		}
	}
	x := gridBatch(3, 3, 8)
	ll, err := m.LogLikelihood(x, 4)
	if err != nil {
		t.Fatal(err)
	}
	vals := cellValues(ll)
	if len(vals) != 3 {
		t.Fatalf("log-likelihood has %d values, want 3", len(vals))
	}
	for _, v := range vals {
		// A discretized likelihood's bound: finite and ≤ 0 up to the KL's
		// contribution, which cannot make it positive in expectation.
		if math.IsNaN(v) || math.IsInf(v, 0) || v > 0 {
			t.Errorf("log-likelihood bound %g: want finite and ≤ 0", v)
		}
	}
	if _, err := m.LogLikelihood(x, 0); err == nil {
		t.Error("LogLikelihood with k = 0: want an error")
	}
	if _, err := m.Forward(gridBatch(2, 1, 8)); err == nil || !strings.Contains(err.Error(), "shape") {
		t.Errorf("batch of the wrong channels: error %v, want one about the shape", err)
	}
}

func TestNewErrors(t *testing.T) {
	defer cellBegin(t)()
	cases := []struct {
		name string
		edit func(c *config.NVAE, d *config.Data)
		want string
	}{
		{"invalid", func(c *config.NVAE, d *config.Data) { c.Channels = 0 }, "model.nvae.channels"},
		{"blocks", func(c *config.NVAE, d *config.Data) { c.PostprocessBlocks = 2 }, "postprocess_blocks"},
		{"size", func(c *config.NVAE, d *config.Data) { d.ImageSize = 6 }, "divisible"},
		{"channels", func(c *config.NVAE, d *config.Data) { d.Channels = 2 }, "channels"},
		{"range", func(c *config.NVAE, d *config.Data) { d.Range = config.RangeSigned }, "data.range"},
		{"dequant", func(c *config.NVAE, d *config.Data) { d.Dequantization = "uniform" }, "data.dequantization"},
		{"2d", func(c *config.NVAE, d *config.Data) { d.Dataset = config.DatasetMoG }, "image data"},
	}
	for _, tc := range cases {
		c, d := tinyNVAE()
		tc.edit(&c, &d)
		_, err := New(nn.NewStore(gotch.CPU).Root(), c, d)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one naming %q", tc.name, err, tc.want)
		}
	}
}

// A CellAR's μ at a pixel and channel depends only on z at earlier pixels
// (raster order; reverse order when mirrored) and at earlier channels of
// its own pixel: perturbing z at (c, p) leaves μ unchanged there and
// before, and changes it somewhere after.
func TestCellARIsAutoregressive(t *testing.T) {
	defer cellBegin(t)()
	const lat, size = 3, 4
	for _, mirror := range []bool{false, true} {
		ts.ManualSeed(2)
		cell, err := newCellAR(nn.NewStore(gotch.CPU).Root(), lat, mirror)
		if err != nil {
			t.Fatal(err)
		}
		// Larger μ weights than NVAE's 0.1 start, so dependence shows.
		ts.NoGrad(func() { cell.mu.logNorm.MustAddScalar_(ts.FloatScalar(math.Log(10))) })
		z := ts.MustRandn([]int64{1, lat, size, size}, gotch.Float, gotch.CPU)
		mu := func(z *ts.Tensor) []float64 { return cellValues(z.MustSub(cell.Forward(z), false)) }
		base := mu(z)
		order := func(pix int) int { // position in the cell's autoregressive order
			if mirror {
				return size*size - 1 - pix
			}
			return pix
		}
		for c := 0; c < lat; c++ {
			for pix := 0; pix < size*size; pix++ {
				dz := make([]float32, lat*size*size)
				dz[c*size*size+pix] = 1
				z2 := z.MustAdd(ts.MustOfSlice(dz).MustReshape([]int64{1, lat, size, size}, true), false)
				got := mu(z2)
				changedAfter := false
				for c2 := 0; c2 < lat; c2++ {
					for p2 := 0; p2 < size*size; p2++ {
						i := c2*size*size + p2
						before := order(p2) < order(pix) || (p2 == pix && c2 <= c)
						d := math.Abs(got[i] - base[i])
						if before && d > 1e-6 {
							t.Fatalf("mirror %v: μ at channel %d, pixel %d changed by %g when z changed at channel %d, pixel %d", mirror, c2, p2, d, c, pix)
						}
						if !before && d > 1e-6 {
							changedAfter = true
						}
					}
				}
				if !changedAfter && !(c == lat-1 && order(pix) == size*size-1) {
					t.Errorf("mirror %v: z at channel %d, pixel %d changes no later μ", mirror, c, pix)
				}
			}
		}
	}
}

// With flows the model builds, its loss is finite, gradients reach the
// flow cells, and the one-sample KL replaces the analytic one.
func TestModelWithFlows(t *testing.T) {
	defer cellBegin(t)()
	c, d := tinyNVAE()
	c.Flows = 1
	m := newTiny(t, c, d)
	if len(m.Flows) != m.Groups {
		t.Fatalf("%d flow cells, want one per group (%d)", len(m.Flows), m.Groups)
	}
	x := gridBatch(4, 1, 8)
	l, err := m.Loss(x)
	if err != nil {
		t.Fatal(err)
	}
	if v := l.Total.Float64Values(false)[0]; math.IsNaN(v) || math.IsInf(v, 0) {
		t.Fatalf("loss %g", v)
	}
	l.Total.MustBackward()
	for g, f := range m.Flows {
		for _, a := range append(f.Cell1.arConvs(), f.Cell2.arConvs()...) {
			if gr := a.conv.W.MustGrad(false); !gr.MustDefined() || cellMaxAbs(cellValues(gr)) == 0 {
				t.Errorf("group %d: a flow conv has no gradient", g)
			}
		}
	}
	// Masked entries get no gradient through the weight.
	a := m.Flows[0].Cell1.conv0
	gv, mv := cellValues(a.conv.W.MustGrad(false)), cellValues(a.mask)
	for i := range gv {
		if mv[i] == 0 && gv[i] != 0 {
			t.Fatalf("masked weight %d has gradient %g", i, gv[i])
		}
	}
}

// ReadjustBN moves the decoder's running statistics, leaves the
// encoder's alone (sampling does not run it) and selects running
// statistics afterwards.
func TestReadjustBN(t *testing.T) {
	defer cellBegin(t)()
	c, d := tinyNVAE()
	m := newTiny(t, c, d)
	dec, enc := m.Post[0].BatchNorms()[0], m.Pre[0].BatchNorms()[0]
	dec0, enc0 := cellValues(dec.RunningMean), cellValues(enc.RunningMean)
	if err := m.ReadjustBN(4, 0.7, 3); err != nil {
		t.Fatal(err)
	}
	dec1, enc1 := cellValues(dec.RunningMean), cellValues(enc.RunningMean)
	moved := false
	for i := range dec0 {
		moved = moved || math.Abs(dec1[i]-dec0[i]) > 1e-7
	}
	if !moved {
		t.Error("decoder batch norm's running mean did not move")
	}
	for i := range enc0 {
		if enc1[i] != enc0[i] {
			t.Fatalf("encoder batch norm's running mean moved: %v → %v", enc0, enc1)
		}
	}
	if dec.Training || enc.Training {
		t.Error("batch norms left in training mode")
	}
	if err := m.ReadjustBN(4, 1, 0); err == nil {
		t.Error("ReadjustBN with 0 iterations: want an error")
	}
}

// Bounds gives the ELBO and the importance-weighted bound from the same
// draws: with injected noise, both are the mean and the logmeanexp of the
// per-draw log weights, each draw replayed alone with LogLikelihood(x, 1).
func TestBoundsFromTheSameDraws(t *testing.T) {
	defer cellBegin(t)()
	c, d := tinyNVAE()
	m := newTiny(t, c, d)
	m.SetTraining(false)
	x := gridBatch(3, 1, 8)
	const k = 3
	draws := make([][]*ts.Tensor, k) // draws[i][g]
	for i := range draws {
		for g := 0; g < m.Groups; g++ {
			h := int64(2) << (g / c.GroupsPerScale)
			draws[i] = append(draws[i], ts.MustRandn([]int64{3, m.LatentShape[0], h, h}, gotch.Float, gotch.CPU))
		}
	}
	call := 0
	m.noise = func(g int) *ts.Tensor {
		i := call / m.Groups
		call++
		return draws[i%k][g]
	}
	elbo, iw, err := m.Bounds(x, k)
	if err != nil {
		t.Fatal(err)
	}
	var w [k][]float64
	for i := range w {
		call = i * m.Groups
		one, err := m.LogLikelihood(x, 1)
		if err != nil {
			t.Fatal(err)
		}
		w[i] = cellValues(one)
	}
	e, v := cellValues(elbo), cellValues(iw)
	for b := range e {
		mean, mx := 0.0, math.Inf(-1)
		for i := range w {
			mean += w[i][b] / k
			mx = max(mx, w[i][b])
		}
		var s float64
		for i := range w {
			s += math.Exp(w[i][b] - mx)
		}
		lme := mx + math.Log(s/k)
		if math.Abs(e[b]-mean) > 1e-4*math.Abs(mean) || math.Abs(v[b]-lme) > 1e-4*math.Abs(lme) {
			t.Errorf("example %d: elbo %g, iw %g; want %g and %g from the draws", b, e[b], v[b], mean, lme)
		}
		if !(v[b] >= e[b]) {
			t.Errorf("example %d: importance-weighted bound %g below the ELBO %g", b, v[b], e[b])
		}
	}
	if _, _, err := m.Bounds(x, 0); err == nil || !strings.Contains(err.Error(), "model.nvae.iw_samples") {
		t.Errorf("Bounds with k = 0: error %v, want one naming model.nvae.iw_samples", err)
	}
}

// SampleReadjusted is ReadjustBN then Sample, with the trained statistics
// put back afterwards; at the same step, temperature and setting it reuses
// the readjusted statistics without sampling again, and a new step
// readjusts anew.
func TestSampleReadjusted(t *testing.T) {
	defer cellBegin(t)()
	c, d := tinyNVAE()
	m := newTiny(t, c, d)
	live := m.runningStats()
	keep := func() []*ts.Tensor {
		out := make([]*ts.Tensor, len(live))
		for i, x := range live {
			out[i] = x.MustDetachCopy(false)
		}
		return out
	}
	same := func(what string, a, b []*ts.Tensor) {
		t.Helper()
		for i := range a {
			if !a[i].MustEqual(b[i], false) {
				t.Fatalf("%s: running statistic %d differs", what, i)
			}
		}
	}
	trained := keep()
	r := Readjust{Batch: 4, Iters: 3}
	ts.ManualSeed(5)
	got, err := m.SampleReadjusted(5, 0.7, r)
	if err != nil {
		t.Fatal(err)
	}
	same("after SampleReadjusted", live, trained)

	ts.ManualSeed(5)
	if err := m.ReadjustBN(r.Batch, 0.7, r.Iters); err != nil {
		t.Fatal(err)
	}
	readjusted := keep()
	moved := false
	for i := range live {
		moved = moved || !readjusted[i].MustEqual(trained[i], false)
	}
	if !moved {
		t.Fatal("ReadjustBN moved no running statistic")
	}
	want, err := m.Sample(5, 0.7)
	if err != nil {
		t.Fatal(err)
	}
	if !got.MustEqual(want, false) {
		t.Error("SampleReadjusted differs from ReadjustBN then Sample from the same seed")
	}

	// Cached: the same draws as Sample with the readjusted statistics.
	ts.ManualSeed(9)
	want, _ = m.Sample(5, 0.7)
	copyStats(live, trained)
	ts.ManualSeed(9)
	if got, err = m.SampleReadjusted(5, 0.7, r); err != nil {
		t.Fatal(err)
	}
	if !got.MustEqual(want, false) {
		t.Error("a second SampleReadjusted at the same step readjusted again instead of reusing the statistics")
	}
	same("after the cached SampleReadjusted", live, trained)

	// A new step (or temperature) readjusts again.
	ts.NoGrad(func() { m.Step.MustAddScalar_(ts.FloatScalar(1)) })
	if _, err = m.SampleReadjusted(5, 0.7, r); err != nil {
		t.Fatal(err)
	}
	if m.readjusted.step != 1 {
		t.Errorf("cache at step %g after a training step, want 1", m.readjusted.step)
	}
	same("after readjusting at a new step", live, trained)
	for _, bad := range []Readjust{{Batch: 1, Iters: 3}, {Batch: 4, Iters: 0}} {
		if _, err := m.SampleReadjusted(2, 1, bad); err == nil || !strings.Contains(err.Error(), "readjust_bn") {
			t.Errorf("%+v: error %v, want one naming model.nvae.readjust_bn_*", bad, err)
		}
	}
}

// SetStep puts the trainer's step into the step buffer that the warm-up
// reads; Loss then runs at that step.
func TestSetStep(t *testing.T) {
	defer cellBegin(t)()
	c, d := tinyNVAE()
	m := newTiny(t, c, d)
	if err := m.SetSchedule(100, 0); err != nil {
		t.Fatal(err)
	}
	if err := m.SetStep(17); err != nil {
		t.Fatal(err)
	}
	l, err := m.Loss(gridBatch(4, 1, 8))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := l.Terms["kl_coeff"].Float64Values(false)[0], m.Warmup.Coeff(17); math.Abs(got-want) > 1e-7 {
		t.Errorf("kl_coeff %g after SetStep(17), want %g", got, want)
	}
	if err := m.SetStep(-1); err == nil {
		t.Error("SetStep(-1): want an error")
	}
}
