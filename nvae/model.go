package nvae

import (
	"fmt"
	"math"

	"github.com/mollify/mollify/config"
	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// towerItem is one entry of NVAE's encoder or decoder tower: a cell or a
// combiner.
type towerItem struct {
	cell *Cell
	enc  *EncCombiner
	dec  *DecCombiner
}

// Model is NVAE's hierarchical VAE (model.py AutoEncoder, res_dist=True,
// with model.nvae.flows PairedCellAR flow cells per group in the
// posterior), assembled from this package's parts. The data are
// images in [0, 1] (k/255); the decoder's likelihood is the mixture of
// logistics.
type Model struct {
	Config        config.NVAE
	Channels      int64 // image channels, 1 or 3
	Height, Width int64
	Groups        int     // latent groups, top first
	LatentShape   []int64 // (latents, h, w) of every group
	Stem          *Conv
	Pre, Post     []*Cell
	encTower      []towerItem
	decTower      []towerItem
	Enc0          *Conv
	EncSampler    []*Conv // one per group, decoder order
	DecSampler    []*Conv // one per group but the first (its prior is N(0, 1))
	// Flows are the posterior's flow cells, model.nvae.flows per group in
	// decoder order (NVAE's nf_cells).
	Flows     []*PairedCellAR
	PriorFtr0 *ts.Tensor
	Head      *Conv
	Balancer  *KLBalancer
	Spectral  *SpectralReg
	Warmup    KLWarmup
	// Step is a 0-d float buffer: the training step, read on the device
	// (KL warm-up, mollified phase) so a captured step reads no host
	// value. Loss advances it; a trainer sets it before each step
	// (SetStep), so it counts the steps the trainer skipped too. It is
	// saved with the weights.
	Step *ts.Tensor
	// MollifiedSteps: Loss scores batches of steps below it as mollified
	// (model.nvae.mollified_likelihood); 0 means never.
	MollifiedSteps int
	convs          []*Conv
	bns            []*BatchNorm
	// noise, set only by tests, gives group g's posterior noise ε
	// (decoder order) instead of libtorch's generator, so that a pass can
	// be compared with a reference run on the same draws.
	noise func(group int) *ts.Tensor
	// readjusted: the last readjusted BN statistics (SampleReadjusted).
	readjusted *readjusted
}

// New builds NVAE for data d (images in [0, 1], 1 or 3 channels, no
// dequantization) under p. The KL warm-up is off (coefficient 1) and no
// batch counts as mollified until SetSchedule is called.
func New(p nn.Path, c config.NVAE, d config.Data) (m *Model, err error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("nvae: %w", err)
	}
	if d.Is2D() {
		return nil, fmt.Errorf("nvae: NVAE needs image data, but data.dataset is %q", d.Dataset)
	}
	if d.Range != "" && d.Range != config.RangeUnit {
		return nil, fmt.Errorf("nvae: the logistic likelihood scores 8-bit images in [0, 1]: set data.range: unit (got %q)", d.Range)
	}
	if d.Dequantization != "" && d.Dequantization != "none" {
		return nil, fmt.Errorf("nvae: the discretized likelihood scores the 256-level grid: set data.dequantization: none (got %q)", d.Dequantization)
	}
	nParam, err := MixLogisticParams(d.Channels, c.Mixtures)
	if err != nil {
		return nil, fmt.Errorf("nvae: data.channels: %w", err)
	}
	var problems []string
	if c.PreprocessBlocks != c.PostprocessBlocks {
		problems = append(problems, fmt.Sprintf("model.nvae.preprocess_blocks (%d) and postprocess_blocks (%d) must match: each halves and doubles the image size", c.PreprocessBlocks, c.PostprocessBlocks))
	}
	if c.PreprocessBlocks > 0 && c.PreprocessCells < 1 {
		problems = append(problems, "model.nvae.preprocess_cells must be ≥ 1 when preprocess_blocks > 0")
	}
	if c.PostprocessBlocks > 0 && c.PostprocessCells < 1 {
		problems = append(problems, "model.nvae.postprocess_cells must be ≥ 1 when postprocess_blocks > 0")
	}
	down := c.PreprocessBlocks + c.LatentScales - 1
	size := int64(d.ImageSize)
	if down < 0 || down > 20 || size <= 0 || size%(int64(1)<<down) != 0 {
		problems = append(problems, fmt.Sprintf("data.image_size %d must be divisible by 2^(preprocess_blocks + latent_scales − 1) = 2^%d", size, down))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("nvae: %v", problems)
	}
	defer nn.Recover(&err)

	ch := int64(c.Channels)
	m = &Model{Config: c, Channels: int64(d.Channels), Height: size, Width: size}
	if m.Stem, err = NewConv(p.Sub("stem"), m.Channels, ch, 3, ConvOptions{Padding: 1, Bias: true}); err != nil {
		return nil, err
	}
	m.convs = append(m.convs, m.Stem)
	mult := int64(1) // channels of the current scale, in units of ch
	// newCell builds the index-th cell of a tower at the current channels
	// and lists its convs and batch norms for the spectral regulariser,
	// which must see every one.
	newCell := func(tower string, index int, t CellType) (*Cell, error) {
		cell, err := NewCell(p.Subf("%s.%d", tower, index), t, ch*mult, c.UseSE)
		if err != nil {
			return nil, err
		}
		m.convs = append(m.convs, cell.Convs()...)
		m.bns = append(m.bns, cell.BatchNorms()...)
		return cell, nil
	}
	for b := 0; b < c.PreprocessBlocks; b++ {
		for i := 0; i < c.PreprocessCells; i++ {
			t := NormalPre
			if i == c.PreprocessCells-1 {
				t = DownPre
			}
			cell, err := newCell("pre_process", len(m.Pre), t)
			if err != nil {
				return nil, err
			}
			m.Pre = append(m.Pre, cell)
			if t == DownPre {
				mult *= 2
			}
		}
	}
	scales, groups := c.LatentScales, c.GroupsPerScale
	for s := 0; s < scales; s++ {
		for g := 0; g < groups; g++ {
			for i := 0; i < c.CellsPerGroup; i++ {
				cell, err := newCell("enc_tower", len(m.encTower), NormalEnc)
				if err != nil {
					return nil, err
				}
				m.encTower = append(m.encTower, towerItem{cell: cell})
			}
			if !(s == scales-1 && g == groups-1) {
				comb, err := NewEncCombiner(p.Subf("enc_tower.%d", len(m.encTower)), ch*mult, ch*mult)
				if err != nil {
					return nil, err
				}
				m.convs = append(m.convs, comb.Conv)
				m.encTower = append(m.encTower, towerItem{enc: comb})
			}
		}
		if s < scales-1 {
			cell, err := newCell("enc_tower", len(m.encTower), DownEnc)
			if err != nil {
				return nil, err
			}
			m.encTower = append(m.encTower, towerItem{cell: cell})
			mult *= 2
		}
	}
	if m.Enc0, err = NewConv(p.Sub("enc0.1"), ch*mult, ch*mult, 1, ConvOptions{Bias: true}); err != nil {
		return nil, err
	}
	m.convs = append(m.convs, m.Enc0)

	lat := int64(c.LatentsPerGroup)
	sm := mult
	for s := 0; s < scales; s++ {
		for g := 0; g < groups; g++ {
			conv, err := NewConv(p.Subf("enc_sampler.%d", len(m.EncSampler)), ch*sm, 2*lat, 3, ConvOptions{Padding: 1, Bias: true})
			if err != nil {
				return nil, err
			}
			m.EncSampler = append(m.EncSampler, conv)
			m.convs = append(m.convs, conv)
			for f := 0; f < c.Flows; f++ {
				cell, err := newPairedCellAR(p.Subf("nf_cells.%d", len(m.Flows)), lat)
				if err != nil {
					return nil, err
				}
				m.Flows = append(m.Flows, cell)
			}
			if !(s == 0 && g == 0) {
				conv, err := NewConv(p.Subf("dec_sampler.%d.1", len(m.DecSampler)), ch*sm, 2*lat, 1, ConvOptions{Bias: true})
				if err != nil {
					return nil, err
				}
				m.DecSampler = append(m.DecSampler, conv)
				m.convs = append(m.convs, conv)
			}
		}
		sm /= 2
	}

	h := size >> down
	m.LatentShape = []int64{lat, h, h}
	m.Groups = scales * groups
	{
		sc := ts.NewScope()
		init := ts.MustRand([]int64{ch * mult, h, h}, gotch.Float, p.Device())
		m.PriorFtr0, err = p.Param("prior_ftr0", init)
		sc.Close()
		if err != nil {
			return nil, err
		}
	}
	for s := 0; s < scales; s++ {
		for g := 0; g < groups; g++ {
			if !(s == 0 && g == 0) {
				for i := 0; i < c.CellsPerGroup; i++ {
					cell, err := newCell("dec_tower", len(m.decTower), NormalDec)
					if err != nil {
						return nil, err
					}
					m.decTower = append(m.decTower, towerItem{cell: cell})
				}
			}
			comb, err := NewDecCombiner(p.Subf("dec_tower.%d", len(m.decTower)), ch*mult, lat)
			if err != nil {
				return nil, err
			}
			m.convs = append(m.convs, comb.Conv)
			m.decTower = append(m.decTower, towerItem{dec: comb})
		}
		if s < scales-1 {
			cell, err := newCell("dec_tower", len(m.decTower), UpDec)
			if err != nil {
				return nil, err
			}
			m.decTower = append(m.decTower, towerItem{cell: cell})
			mult /= 2
		}
	}
	for b := 0; b < c.PostprocessBlocks; b++ {
		for i := 0; i < c.PostprocessCells; i++ {
			t := NormalPost
			if i == 0 {
				t = UpPost
			}
			cell, err := newCell("post_process", len(m.Post), t)
			if err != nil {
				return nil, err
			}
			m.Post = append(m.Post, cell)
			if t == UpPost {
				mult /= 2
			}
		}
	}
	if m.Head, err = NewConv(p.Sub("image_conditional.1"), ch*mult, nParam, 3, ConvOptions{Padding: 1, Bias: true}); err != nil {
		return nil, err
	}
	m.convs = append(m.convs, m.Head)

	gps := make([]int, scales)
	for i := range gps {
		gps[i] = groups
	}
	if m.Balancer, err = NewKLBalancer(p.Sub("kl_balancer"), gps); err != nil {
		return nil, err
	}
	{
		sc := ts.NewScope()
		m.Spectral, err = NewSpectralReg(p.Sub("spectral"), m.regWeights(), BNWeights(m.bns), SpectralOptions{Lambda: c.WeightDecayNorm})
		sc.Close()
		if err != nil {
			return nil, err
		}
	}
	{
		sc := ts.NewScope()
		m.Step, err = p.Buffer("step", ts.MustZeros([]int64{1}, gotch.Float, p.Device()).MustSqueeze(true))
		sc.Close()
		if err != nil {
			return nil, err
		}
	}
	m.Warmup = KLWarmup{MinCoeff: 1} // coefficient 1 until SetSchedule
	return m, nil
}

// SetSchedule sets the KL warm-up over a run of totalSteps optimizer
// steps (model.nvae.kl_*) and the number of first steps whose batches are
// mollified (mollification.Steps), which pick the likelihood
// model.nvae.mollified_likelihood names.
func (m *Model) SetSchedule(totalSteps, mollifiedSteps int) error {
	w, err := NewKLWarmup(m.Config, totalSteps)
	if err != nil {
		return err
	}
	if mollifiedSteps < 0 {
		return fmt.Errorf("nvae: %d mollified steps; want ≥ 0", mollifiedSteps)
	}
	m.Warmup, m.MollifiedSteps = w, mollifiedSteps
	return nil
}

// SetStep sets Step to a trainer's 0-based step count (train.Stepper),
// in place on the device: a step the trainer skips restores Step with the
// batch-norm statistics, and without this the warm-up would then lag the
// trainer by the skipped steps. It reads nothing back.
func (m *Model) SetStep(step int) (err error) {
	if step < 0 {
		return fmt.Errorf("nvae: step %d; want ≥ 0", step)
	}
	defer nn.Recover(&err)
	ts.NoGrad(func() { m.Step.MustFill_(ts.FloatScalar(float64(step))) })
	return nil
}

// Convs and BatchNorms list every convolution and batch norm (what the
// spectral regulariser covers).
func (m *Model) Convs() []*Conv           { return m.convs }
func (m *Model) BatchNorms() []*BatchNorm { return m.bns }

// SetTraining switches every batch norm between batch statistics (true)
// and running statistics.
func (m *Model) SetTraining(on bool) {
	for _, b := range m.bns {
		b.SetTraining(on)
	}
}

// regWeights are the weights the spectral regulariser bounds: every
// conv's normalised weight, then the flow cells' masked ones (NVAE's
// all_conv_layers holds both).
func (m *Model) regWeights() []*ts.Tensor {
	ws := ConvWeights(m.convs)
	for _, f := range m.Flows {
		for _, c := range []*CellAR{f.Cell1, f.Cell2} {
			for _, a := range c.arConvs() {
				ws = append(ws, a.weight())
			}
		}
	}
	return ws
}

// flow runs group g's flow cells on z.
func (m *Model) flow(g int, z *ts.Tensor) *ts.Tensor {
	n := m.Config.Flows
	for _, f := range m.Flows[g*n : (g+1)*n] {
		z = f.Forward(z)
	}
	return z
}

func elu(x *ts.Tensor) *ts.Tensor { return x.MustElu(false) }

func halves(t *ts.Tensor) (a, b *ts.Tensor) {
	parts := t.MustChunk(2, 1, false)
	return parts[0], parts[1]
}

func sumCHW(t *ts.Tensor) *ts.Tensor {
	return t.MustSumDimIntlist([]int64{1, 2, 3}, false, t.DType(), false)
}

// draw samples group g's latent from its posterior q.
func (m *Model) draw(g int, q Normal) *ts.Tensor {
	if m.noise != nil {
		return q.SampleWith(m.noise(g))
	}
	z, _ := q.Sample()
	return z
}

// Pass is one forward pass: the decoder output and, per group in
// decoder order (top first), the KL per example (B) summed over C, H, W,
// plus log q(z|x) and log p(z) per example, summed over all groups.
type Pass struct {
	Param      *ts.Tensor // (B, MixLogisticParams, H, W)
	KL         []*ts.Tensor
	LogQ, LogP *ts.Tensor
}

func (m *Model) checkBatch(x *ts.Tensor) error {
	if x == nil {
		return fmt.Errorf("nvae: no batch")
	}
	s := x.MustSize()
	if len(s) != 4 || s[1] != m.Channels || s[2] != m.Height || s[3] != m.Width || s[0] < 1 {
		return fmt.Errorf("nvae: batch has shape %v, want (B, %d, %d, %d)", s, m.Channels, m.Height, m.Width)
	}
	if !isFloat(x.DType()) {
		return fmt.Errorf("nvae: batch is %v, want floating point", x.DType())
	}
	return nil
}

// Forward runs the encoder and decoder on x (B, C, H, W) in [0, 1],
// drawing each group's latent from its residual posterior.
func (m *Model) Forward(x *ts.Tensor) (pass Pass, err error) {
	defer nn.Recover(&err)
	if err := m.checkBatch(x); err != nil {
		return Pass{}, err
	}
	s := m.Stem.Forward(x.MustMulScalar(ts.FloatScalar(2), false).MustSubScalar(ts.FloatScalar(1), true))
	for _, c := range m.Pre {
		s = c.Forward(s)
	}
	var feats []*ts.Tensor
	var combs []*EncCombiner
	for _, it := range m.encTower {
		if it.enc != nil {
			feats = append(feats, s)
			combs = append(combs, it.enc)
		} else {
			s = it.cell.Forward(s)
		}
	}
	for i, j := 0, len(feats)-1; i < j; i, j = i+1, j-1 {
		feats[i], feats[j] = feats[j], feats[i]
		combs[i], combs[j] = combs[j], combs[i]
	}
	ftr := elu(m.Enc0.Forward(elu(s)))
	mu, ls := halves(m.EncSampler[0].Forward(ftr))
	q := newNormal(mu, ls, 1)
	z0 := m.draw(0, q)
	z := m.flow(0, z0)
	zero := mu.MustZerosLike(false)
	p := newNormal(zero, zero, 1)
	// add records a group: z0 drawn from q, z = flow(z0) (log-det 0). With
	// flows the KL is NVAE's one-sample log q(z0) − log p(z), else analytic.
	add := func(q, p Normal, z0, z *ts.Tensor) {
		lqe, lpe := q.LogP(z0), p.LogP(z)
		if len(m.Flows) > 0 {
			pass.KL = append(pass.KL, sumCHW(lqe.MustSub(lpe, false)))
		} else {
			pass.KL = append(pass.KL, sumCHW(q.KL(p)))
		}
		lq, lp := sumCHW(lqe), sumCHW(lpe)
		if pass.LogQ == nil {
			pass.LogQ, pass.LogP = lq, lp
			return
		}
		pass.LogQ = pass.LogQ.MustAdd(lq, true)
		pass.LogP = pass.LogP.MustAdd(lp, true)
	}
	add(q, p, z0, z)
	b := x.MustSize()[0]
	s = m.PriorFtr0.MustUnsqueeze(0, false).MustExpand([]int64{b, -1, -1, -1}, false, true)
	idx := 0
	for _, it := range m.decTower {
		if it.dec == nil {
			s = it.cell.Forward(s)
			continue
		}
		if idx > 0 {
			muP, lsP := halves(m.DecSampler[idx-1].Forward(elu(s)))
			f := combs[idx-1].Forward(feats[idx-1], s)
			muQ, lsQ := halves(m.EncSampler[idx].Forward(f))
			q, err := NewResidualNormal(muP, lsP, muQ, lsQ, 1)
			if err != nil {
				return Pass{}, err
			}
			z0 := m.draw(idx, q)
			z = m.flow(idx, z0)
			add(q, newNormal(muP, lsP, 1), z0, z)
		}
		s = it.dec.Forward(s, z)
		idx++
	}
	for _, c := range m.Post {
		s = c.Forward(s)
	}
	pass.Param = m.Head.Forward(elu(s))
	return pass, nil
}

func (m *Model) likelihood(param *ts.Tensor) (*MixLogistic, error) {
	return NewMixLogistic(param, int(m.Channels), m.Config.Mixtures)
}

// Loss is NVAE's training objective on a batch x in [0, 1] (mollified or
// not), in nats per example, averaged over the batch:
// −log p(x|z) + coeff·balanced KL + λ·(spectral + BN) (train.py). Terms:
// "recon" (−log p(x|z)), "kl" (the unweighted KL summed over groups),
// "spectral" (the λ-weighted regulariser) and "kl_coeff". It reads
// nothing on the host and advances Step by one.
func (m *Model) Loss(x *ts.Tensor) (l nn.Loss, err error) {
	pass, err := m.Forward(x)
	if err != nil {
		return nn.Loss{}, err
	}
	defer nn.Recover(&err)
	dist, err := m.likelihood(pass.Param)
	if err != nil {
		return nn.Loss{}, err
	}
	recon, err := dist.LogProb(x)
	if err != nil {
		return nn.Loss{}, err
	}
	if m.MollifiedSteps > 0 && m.Config.MollifiedLikelihood == config.NVAELikelihoodContinuous {
		cont, err := dist.ContinuousLogProb(x)
		if err != nil {
			return nn.Loss{}, err
		}
		mollified := m.Step.MustLt(ts.FloatScalar(float64(m.MollifiedSteps)), false)
		recon = cont.MustWhereSelf(mollified, recon, false)
	}
	nll := recon.MustNeg(false)
	klAll := ts.MustStack(pass.KL, 1)
	coeff := m.Warmup.CoeffTensor(m.Step)
	klBal, _ := m.Balancer.Balance(klAll, coeff)
	spec, err := m.Spectral.LossWith(m.regWeights())
	if err != nil {
		return nn.Loss{}, err
	}
	dt := nll.DType()
	total := nll.MustAdd(klBal, false).MustMean(dt, true).MustAdd(spec.Total, true)
	klSum := klAll.MustSumDimIntlist([]int64{1}, false, dt, false).MustMean(dt, true)
	terms := map[string]*ts.Tensor{
		"recon":    nll.MustMean(dt, false),
		"kl":       klSum,
		"spectral": spec.Total,
		"kl_coeff": coeff,
	}
	ts.NoGrad(func() { m.Step.MustAddScalar_(ts.FloatScalar(1)) })
	return nn.Loss{Total: total, Terms: terms}, nil
}

// LogLikelihood is the k-sample importance-weighted bound on the
// discretized log p(x) per example in nats, (B): logmeanexp over k
// draws of log p(x|z) + log p(z) − log q(z|x); k = 1 is the ELBO. It runs
// without autograd in whatever batch-norm mode is set.
func (m *Model) LogLikelihood(x *ts.Tensor, k int) (*ts.Tensor, error) {
	_, iw, err := m.Bounds(x, k)
	return iw, err
}

// Bounds are the ELBO and the k-sample importance-weighted bound per
// example in nats, (B) each, from the same k draws: the mean and the
// logmeanexp of log p(x|z) + log p(z) − log q(z|x). It runs without
// autograd in whatever batch-norm mode is set.
func (m *Model) Bounds(x *ts.Tensor, k int) (elbo, iw *ts.Tensor, err error) {
	if k < 1 {
		return nil, nil, fmt.Errorf("nvae: importance samples must be ≥ 1 (model.nvae.iw_samples), got %d", k)
	}
	defer nn.Recover(&err)
	sc := ts.NewScope()
	defer sc.Close()
	ts.NoGrad(func() {
		ws := make([]*ts.Tensor, 0, k)
		for i := 0; i < k; i++ {
			var pass Pass
			if pass, err = m.Forward(x); err != nil {
				return
			}
			var dist *MixLogistic
			if dist, err = m.likelihood(pass.Param); err != nil {
				return
			}
			var lp *ts.Tensor
			if lp, err = dist.LogProb(x); err != nil {
				return
			}
			ws = append(ws, lp.MustAdd(pass.LogP, false).MustSub(pass.LogQ, true))
		}
		w := ts.MustStack(ws, 0)
		elbo = w.MustMeanDim([]int64{0}, false, w.DType(), false)
		iw = w.MustLogsumexp([]int64{0}, false, false).MustSubScalar(ts.FloatScalar(math.Log(float64(k))), true)
	})
	if err != nil {
		return nil, nil, err
	}
	sc.Keep(elbo, iw)
	return elbo, iw, nil
}

// Sample draws n images in [0, 1] (n, C, H, W): every group's latent from
// its prior with σ times temperature t > 0 (NVAE's sample), then the
// pixels from the logistic mixture at temperature 1, as NVAE's sampler
// does. It runs without autograd in whatever batch-norm mode is set.
func (m *Model) Sample(n int64, t float64) (out *ts.Tensor, err error) {
	if n < 1 {
		return nil, fmt.Errorf("nvae: number of samples must be ≥ 1, got %d", n)
	}
	if !(t > 0) || math.IsInf(t, 1) {
		return nil, fmt.Errorf("nvae: sampling temperature must be positive and finite, got %g", t)
	}
	defer nn.Recover(&err)
	sc := ts.NewScope()
	defer sc.Close()
	ts.NoGrad(func() {
		shape := append([]int64{n}, m.LatentShape...)
		zero := ts.MustZeros(shape, gotch.Float, m.PriorFtr0.MustDevice())
		z, _ := newNormal(zero, zero, t).Sample()
		s := m.PriorFtr0.MustUnsqueeze(0, false).MustExpand([]int64{n, -1, -1, -1}, false, true)
		idx := 0
		for _, it := range m.decTower {
			if it.dec == nil {
				s = it.cell.Forward(s)
				continue
			}
			if idx > 0 {
				mu, ls := halves(m.DecSampler[idx-1].Forward(elu(s)))
				z, _ = newNormal(mu, ls, t).Sample()
			}
			s = it.dec.Forward(s, z)
			idx++
		}
		for _, c := range m.Post {
			s = c.Forward(s)
		}
		var dist *MixLogistic
		if dist, err = m.likelihood(m.Head.Forward(elu(s))); err != nil {
			return
		}
		out, err = dist.Sample(1)
	})
	if err != nil {
		return nil, err
	}
	sc.Keep(out)
	return out, nil
}

// arConv is NVAE's ARConv2d: a weight-normalised convolution whose weight
// is masked so that an output at a pixel and channel sees only the pixels
// before it in raster order (after it when mirrored) and, at its own
// pixel, the channels before it (with zeroDiag) or up to it. The mask is a
// buffer ("mask"); the spectral regulariser bounds the masked weight.
type arConv struct {
	conv    *nn.Conv2d
	logNorm *ts.Tensor
	mask    *ts.Tensor
}

// arChannelMask is NVAE's channel_mask for one (out, in) pair.
func arChannelMask(o, i, cin, groups, cout int64, zeroDiag bool) bool {
	if groups == cin && groups > 1 {
		return !zeroDiag
	}
	if cout >= cin {
		blk := o / (cout / cin)
		return i < blk || (i == blk && !zeroDiag)
	}
	ratio := cin / cout
	return i < (o+1)*ratio && (!zeroDiag || i < o*ratio)
}

// arMask is NVAE's create_conv_mask, (cout, cin/groups, k, k) flattened.
func arMask(k, cin, groups, cout int64, zeroDiag, mirror bool) []float32 {
	cg, m := cin/groups, (k-1)/2
	out := make([]float32, cout*cg*k*k)
	for o := int64(0); o < cout; o++ {
		for i := int64(0); i < cg; i++ {
			for r := int64(0); r < k; r++ {
				for c := int64(0); c < k; c++ {
					sr, sc := r, c // the unmirrored position this one copies
					if mirror {
						sr, sc = k-1-r, k-1-c
					}
					on := sr < m || (sr == m && sc < m)
					if sr == m && sc == m {
						on = arChannelMask(o, i, cin, groups, cout, zeroDiag)
					}
					if on {
						out[((o*cg+i)*k+r)*k+c] = 1
					}
				}
			}
		}
	}
	return out
}

func newARConv(p nn.Path, in, out, k, groups int64, bias, zeroDiag, mirror bool, initCoeff float64) (a *arConv, err error) {
	defer nn.Recover(&err)
	if (groups == 1 && in%out != 0 && out%in != 0) || (groups != 1 && groups != in) {
		return nil, fmt.Errorf("nvae: autoregressive conv from %d to %d channels in %d groups: NVAE's masks need one count to divide the other", in, out, groups)
	}
	conv, err := nn.NewConv2d(p, in, out, k, nn.ConvOptions{Padding: (k - 1) / 2, Groups: groups, NoBias: !bias})
	if err != nil {
		return nil, fmt.Errorf("nvae: %w", err)
	}
	sc := ts.NewScope()
	defer sc.Close()
	mask := ts.MustOfSlice(arMask(k, in, groups, out, zeroDiag, mirror)).MustReshape([]int64{out, in / groups, k, k}, true).MustTo(p.Device(), true)
	a = &arConv{conv: conv}
	if a.mask, err = p.Buffer("mask", mask); err != nil {
		return nil, err
	}
	var logNorm *ts.Tensor
	ts.NoGrad(func() {
		logNorm = channelNorms(conv.W.MustMul(a.mask, false)).MustAddScalar(ts.FloatScalar(logNormInitEps), true).
			MustLog(true).MustAddScalar(ts.FloatScalar(math.Log(initCoeff)), true)
	})
	if a.logNorm, err = p.Param("log_weight_norm", logNorm); err != nil {
		return nil, err
	}
	return a, nil
}

// weight is exp(log g)·(v⊙mask)/(‖v⊙mask‖ + 1e-5).
func (a *arConv) weight() *ts.Tensor {
	w := a.conv.W.MustMul(a.mask, false)
	den := channelNorms(w).MustAddScalar(ts.FloatScalar(weightNormEps), true)
	return a.logNorm.MustExp(false).MustMul(w, true).MustDiv(den, true)
}

func (a *arConv) forward(x *ts.Tensor) *ts.Tensor { return a.conv.ForwardWith(x, a.weight()) }

// CellAR is NVAE's CellAR without the mixture-of-logistic-CDF option (as
// NVAE runs it): an autoregressive inverted residual on z (masked 3×3 to
// 6·latents with a zero diagonal, ELU, masked depthwise 5×5, ELU), then
// ELU and a masked 1×1 conv (weights ×0.1 at init) to μ; z ← z − μ, a
// volume-preserving map (log-det 0). NVAE passes the encoder features
// but does not use them.
type CellAR struct {
	conv0, conv1, mu *arConv
}

func newCellAR(p nn.Path, latents int64, mirror bool) (*CellAR, error) {
	hidden := 6 * latents
	c := &CellAR{}
	var err error
	if c.conv0, err = newARConv(p.Sub("conv.convz.0"), latents, hidden, 3, 1, false, true, mirror, 1); err != nil {
		return nil, err
	}
	if c.conv1, err = newARConv(p.Sub("conv.convz.2"), hidden, hidden, 5, hidden, false, false, mirror, 1); err != nil {
		return nil, err
	}
	if c.mu, err = newARConv(p.Sub("mu.conv_0"), hidden, latents, 1, 1, true, false, mirror, 0.1); err != nil {
		return nil, err
	}
	return c, nil
}

// Forward maps z to z − μ(z).
func (c *CellAR) Forward(z *ts.Tensor) *ts.Tensor {
	s := elu(c.conv1.forward(elu(c.conv0.forward(z))))
	return z.MustSub(c.mu.forward(elu(s)), false)
}

func (c *CellAR) arConvs() []*arConv { return []*arConv{c.conv0, c.conv1, c.mu} }

// PairedCellAR is NVAE's flow cell: a CellAR in raster order, then one in
// reverse raster order.
type PairedCellAR struct{ Cell1, Cell2 *CellAR }

func newPairedCellAR(p nn.Path, latents int64) (*PairedCellAR, error) {
	c1, err := newCellAR(p.Sub("cell1"), latents, false)
	if err != nil {
		return nil, err
	}
	c2, err := newCellAR(p.Sub("cell2"), latents, true)
	if err != nil {
		return nil, err
	}
	return &PairedCellAR{Cell1: c1, Cell2: c2}, nil
}

// Forward is Cell2(Cell1(z)); the log-determinant is 0.
func (c *PairedCellAR) Forward(z *ts.Tensor) *ts.Tensor { return c.Cell2.Forward(c.Cell1.Forward(z)) }

// Readjust is NVAE's BN readjustment before sampling
// (model.nvae.readjust_bn_iters passes of readjust_bn_batch images).
type Readjust struct {
	Batch int64
	Iters int
}

// readjusted caches the running statistics ReadjustBN gave at one step
// count, temperature and setting, so that the many Sample calls of one
// evaluation (FID's batches) readjust once.
type readjusted struct {
	step, t float64
	r       Readjust
	stats   []*ts.Tensor // running mean and variance of every batch norm
}

func (m *Model) runningStats() []*ts.Tensor {
	var out []*ts.Tensor
	for _, b := range m.bns {
		out = append(out, b.RunningMean, b.RunningVar)
	}
	return out
}

// copyStats copies src into dst in place, pairwise.
func copyStats(dst, src []*ts.Tensor) {
	ts.NoGrad(func() {
		for i := range dst {
			dst[i].Copy_(src[i])
		}
	})
}

// SampleReadjusted is Sample with NVAE's readjusted BN statistics
// (evaluate.py --readjust_bn): ReadjustBN(r.Batch, t, r.Iters) first, then
// Sample(n, t) with the readjusted running statistics. The trained
// statistics are put back afterwards, so evaluation and training never
// see the readjusted ones; those are kept aside and reused by the next
// call at the same step (Step), temperature and r, so a long run of
// sampling calls readjusts once. It reads Step on the host: call it
// between training steps, never inside one.
func (m *Model) SampleReadjusted(n int64, t float64, r Readjust) (out *ts.Tensor, err error) {
	if r.Batch < 2 || r.Iters < 1 {
		return nil, fmt.Errorf("nvae: BN readjustment needs a batch ≥ 2 and ≥ 1 iteration (model.nvae.readjust_bn_batch, readjust_bn_iters), got %d and %d", r.Batch, r.Iters)
	}
	defer nn.Recover(&err)
	live := m.runningStats()
	trained := make([]*ts.Tensor, len(live))
	sc := ts.NewScope()
	defer sc.Close()
	for i, x := range live {
		trained[i] = x.MustDetachCopy(false)
	}
	defer copyStats(live, trained)
	step := m.Step.Float64Values(false)[0]
	if c := m.readjusted; c != nil && c.step == step && c.t == t && c.r == r {
		copyStats(live, c.stats)
	} else {
		m.dropReadjusted()
		if err := m.ReadjustBN(r.Batch, t, r.Iters); err != nil {
			return nil, err
		}
		c := &readjusted{step: step, t: t, r: r}
		for _, x := range live {
			k := x.MustDetachCopy(false)
			sc.Detach(k)
			c.stats = append(c.stats, k)
		}
		m.readjusted = c
	}
	m.SetTraining(false)
	if out, err = m.Sample(n, t); err != nil {
		return nil, err
	}
	sc.Keep(out)
	return out, nil
}

func (m *Model) dropReadjusted() {
	if m.readjusted == nil {
		return
	}
	for _, x := range m.readjusted.stats {
		x.MustDrop()
	}
	m.readjusted = nil
}

// ReadjustBN is NVAE's set_bn (evaluate.py): iters sampling passes of n
// images at temperature t with batch statistics and no autograd, so the
// decoder's batch norms move their running statistics (momentum 0.05)
// toward those of the sampling path, which differ from the training path
// at t < 1; running statistics are selected again afterwards. It changes
// the model's buffers: call it on a trained model before sampling, not
// during training.
func (m *Model) ReadjustBN(n int64, t float64, iters int) error {
	if iters < 1 {
		return fmt.Errorf("nvae: BN readjustment needs at least one iteration, got %d", iters)
	}
	m.SetTraining(true)
	defer m.SetTraining(false)
	for i := 0; i < iters; i++ {
		sc := ts.NewScope()
		_, err := m.Sample(n, t)
		sc.Close()
		if err != nil {
			return fmt.Errorf("nvae: BN readjustment: %w", err)
		}
	}
	return nil
}
