package train

import (
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Data-parallel training (issue 16, docs/distributed.md). With
// Trainer.Dist set, every rank runs the same loop on its slice of the
// global batch (data and mollification.Shard slice it and key the noise
// per global row):
//   - at the start of RunUntil the parameters and buffers are broadcast
//     from rank 0 (after any resume);
//   - after backward the gradients and the step's [loss, terms...] are
//     averaged over the ranks in one bucketed AllReduceMean, before the
//     gradient norm, clipping and the skip decision, which are therefore
//     the same on every rank (a rank whose loss is not finite makes the
//     mean not finite: every rank skips);
//   - hooks run on rank 0 only, except those marked AllRanks (the
//     checkpoint, which gathers every rank's RNG state and position);
//   - the models' own noise (the VAEs' ε, NVAE's posterior samples) is
//     keyed per global row too: during each training step, eager,
//     captured or replayed, nn.SetRowShard(rank, world) makes
//     nn.RandnRows draw the global batch's noise and keep this rank's
//     rows (keyRowNoise), so ranks do not share an ε; it is off again
//     before the hooks run;
//   - with distributed.sync_batchnorm, batch norms in training mode
//     normalise with the global batch's statistics during each training
//     step (syncBatchNorm: one differentiable all-reduce of Σx, Σx² and
//     the count per layer); such a step is never captured;
//   - hooks draw from a generator stream of their own (rngstreams.go), so
//     rank 0's evaluations do not move the training noise away from the
//     other ranks'.

// Rank is this process's rank (0 without Dist).
func (t *Trainer) Rank() int {
	if t.Dist == nil {
		return 0
	}
	return t.Dist.Rank()
}

// WorldSize is the number of ranks (1 without Dist).
func (t *Trainer) WorldSize() int {
	if t.Dist == nil {
		return 1
	}
	return t.Dist.Size()
}

// keyRowNoise keys the models' own noise per global row for one training
// step of a data-parallel run (nn.SetRowShard); the returned function
// turns it off again, so hooks, evaluation and sampling draw plainly.
// One process (or a one-process group) leaves it off.
func (t *Trainer) keyRowNoise() (off func(), err error) {
	if !t.distributed() || t.WorldSize() == 1 {
		return func() {}, nil
	}
	if err := nn.SetRowShard(t.Rank(), t.WorldSize()); err != nil {
		return nil, fmt.Errorf("train: keying the model's noise per global row: %w", err)
	}
	return func() { _ = nn.SetRowShard(0, 1) }, nil
}

// syncsBatchNorm reports whether batch norms normalise over the global
// batch during training steps: distributed.sync_batchnorm in a group of
// more than one process.
func (t *Trainer) syncsBatchNorm() bool {
	return t.Options.SyncBatchNorm && t.distributed() && t.WorldSize() > 1
}

// syncBatchNorm makes the batch norms of one training step normalise with
// the global batch's statistics (nn.SetBatchNormSync over the group's
// differentiable all-reduce); the returned function turns it off again,
// so hooks and evaluation normalise plainly.
func (t *Trainer) syncBatchNorm() (off func()) {
	if !t.syncsBatchNorm() {
		return func() {}
	}
	g := t.Dist
	nn.SetBatchNormSync(func(x *ts.Tensor) *ts.Tensor {
		y, err := g.AllReduceSumAutograd(x)
		if err != nil {
			panic(fmt.Errorf("train: synchronised batch norm: %w", err))
		}
		return y
	})
	return func() { nn.SetBatchNormSync(nil) }
}

// Leader reports whether this rank logs, evaluates and writes (rank 0).
func (t *Trainer) Leader() bool { return t.Rank() == 0 }

// distributed reports whether gradients are averaged over processes. A
// one-process group runs the same code (the 1-GPU NCCL check).
func (t *Trainer) distributed() bool { return t.Dist != nil }

// namedState is the store's tensors in name order: the same order on
// every rank.
func (t *Trainer) namedState() []*ts.Tensor {
	named := t.Store.Named()
	names := t.Store.Names()
	out := make([]*ts.Tensor, len(names))
	for i, n := range names {
		out[i] = named[n]
	}
	return out
}

// syncStart broadcasts rank 0's parameters and buffers and gives every
// parameter a gradient tensor that the all-reduce can fill in place.
func (t *Trainer) syncStart() error {
	if !t.distributed() || t.synced {
		return nil
	}
	if err := t.Dist.Broadcast(t.namedState(), 0); err != nil {
		return fmt.Errorf("train: broadcasting rank 0's parameters and buffers: %w", err)
	}
	if err := ensureGrads(t.Store.Parameters()); err != nil {
		return err
	}
	t.synced = true
	return nil
}

// reduceStep averages the gradients and the step's summary (float64
// values: loss, terms...) over the ranks, in place.
func (t *Trainer) reduceStep(summary *ts.Tensor) (err error) {
	defer nn.Recover(&err)
	params := t.Store.Parameters()
	list := make([]*ts.Tensor, 0, len(params)+1)
	for _, p := range params {
		list = append(list, p.MustGrad(false))
	}
	if summary != nil {
		list = append(list, summary)
	}
	if err := t.Dist.AllReduceMean(list); err != nil {
		return fmt.Errorf("train: averaging the gradients: %w", err)
	}
	return nil
}

// eagerSummary is [loss, terms in name order] as float64, for the
// all-reduce of an eager step.
func eagerSummary(loss nn.Loss, names []string) (s *ts.Tensor, err error) {
	defer nn.Recover(&err)
	vals := []*ts.Tensor{loss.Total.MustDetach(false).MustReshape([]int64{1}, false).MustTotype(gotch.Double, false)}
	for _, k := range names {
		v := loss.Terms[k]
		if v == nil {
			return nil, fmt.Errorf("the loss has no term %q", k)
		}
		vals = append(vals, v.MustDetach(false).MustReshape([]int64{1}, false).MustTotype(gotch.Double, false))
	}
	return ts.MustCat(vals, 0), nil
}

// rankState is what a checkpoint keeps of each rank: its training-noise
// generator state, its Go RNG and its data position (the step).
type rankState struct {
	Rank int               `json:"rank"`
	Step int               `json:"step"`
	RNG  map[string][]byte `json:"rng"` // "rng.cpu", "rng.cuda"
	Go   []byte            `json:"go"`
}

// gatherRanks collects every rank's state on every rank (through two
// small all-reduces of int64 rows: each rank fills its own row), for rank
// 0's checkpoint. It runs on every rank at every checkpoint.
func (t *Trainer) gatherRanks(mine rankState) (all []rankState, err error) {
	b, err := json.Marshal(mine)
	if err != nil {
		return nil, err
	}
	defer nn.Recover(&err)
	sc := ts.NewScope()
	defer sc.Close()
	w, r := t.WorldSize(), t.Rank()
	lens := make([]int64, w)
	lens[r] = int64(len(b))
	lt := t.onDevice(ts.MustOfSlice(lens))
	if err := t.Dist.AllReduceSum([]*ts.Tensor{lt}); err != nil {
		return nil, err
	}
	lens = lt.Int64Values()
	width := int64(0)
	for _, n := range lens {
		width = max(width, n)
	}
	rows := make([]int64, int64(w)*width)
	for i, c := range b {
		rows[int64(r)*width+int64(i)] = int64(c)
	}
	mt := t.onDevice(ts.MustOfSlice(rows))
	if err := t.Dist.AllReduceSum([]*ts.Tensor{mt}); err != nil {
		return nil, err
	}
	rows = mt.Int64Values()
	all = make([]rankState, w)
	for k := range all {
		raw := make([]byte, lens[k])
		for i := range raw {
			raw[i] = byte(rows[int64(k)*width+int64(i)])
		}
		if err := json.Unmarshal(raw, &all[k]); err != nil {
			return nil, fmt.Errorf("rank %d's state: %w", k, err)
		}
	}
	return all, nil
}

// onDevice moves a host tensor of a collective to the trainer's device
// (NCCL reduces CUDA tensors only); reading it back copies it to the host.
func (t *Trainer) onDevice(x *ts.Tensor) *ts.Tensor {
	if !t.Device.IsCuda() {
		return x
	}
	return x.MustTo(t.Device, false)
}

// ranksMetaKey holds the ranks' states in a checkpoint's metadata.
const ranksMetaKey = "ranks"

func encodeRanks(all []rankState) (string, error) {
	b, err := json.Marshal(all)
	return base64.StdEncoding.EncodeToString(b), err
}

// restoreRank puts this rank's training-noise state and Go RNG back from
// a checkpoint written by a run of the same world size; a checkpoint of
// another world size (or a one-process one) leaves rank 0's, which every
// rank shares anyway (the noise streams do not depend on the rank).
func (t *Trainer) restoreRank(meta map[string]string, step int) (err error) {
	enc, ok := meta[ranksMetaKey]
	if !ok {
		return nil
	}
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return fmt.Errorf("bad %s in metadata: %w", ranksMetaKey, err)
	}
	var all []rankState
	if err := json.Unmarshal(raw, &all); err != nil {
		return fmt.Errorf("bad %s in metadata: %w", ranksMetaKey, err)
	}
	if len(all) != t.WorldSize() {
		return nil
	}
	mine := all[t.Rank()]
	if mine.Rank != t.Rank() || mine.Step != step {
		return fmt.Errorf("rank %d's saved state is for rank %d at step %d, the checkpoint's step is %d", t.Rank(), mine.Rank, mine.Step, step)
	}
	defer nn.Recover(&err)
	sc := ts.NewScope()
	defer sc.Close()
	tensors := map[string]*ts.Tensor{}
	for k, v := range mine.RNG {
		tensors[k] = ts.MustOfSlice(v)
	}
	return t.RNG.Restore(t.Device, tensors, mine.Go)
}

// checkSameStep fails unless every rank resumed at the same step (a run
// folder that is not shared, or a checkpoint written meanwhile): the sum
// of the steps squared equals the world size times the sum of their
// squares only when all are equal.
func (t *Trainer) checkSameStep() (err error) {
	if !t.distributed() || t.WorldSize() == 1 {
		return nil
	}
	defer nn.Recover(&err)
	sc := ts.NewScope()
	defer sc.Close()
	s := float64(t.step)
	v := t.onDevice(ts.MustOfSlice([]float64{s, s * s}))
	if err := t.Dist.AllReduceSum([]*ts.Tensor{v}); err != nil {
		return err
	}
	sums := v.Float64Values()
	w := float64(t.WorldSize())
	if sums[0]*sums[0] != w*sums[1] {
		return fmt.Errorf("train: the ranks resumed at different steps (rank %d at step %d, the mean is %.1f): every rank must read the same run folder (a shared file system) and its newest checkpoint", t.Rank(), t.step, sums[0]/w)
	}
	return nil
}
