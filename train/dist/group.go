package dist

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// DefaultBucketBytes is the size at which a gradient bucket is closed:
// PyTorch DDP's default bucket_cap_mb, 25 MiB.
const DefaultBucketBytes = 25 << 20

// Heartbeat defaults: each rank adds to its counter in the store every
// DefaultHeartbeatInterval; a rank whose counter has not moved for
// DefaultHeartbeatTimeout is reported.
const (
	DefaultHeartbeatInterval = 1 * time.Second
	DefaultHeartbeatTimeout  = 20 * time.Second
)

// Option changes a Group's defaults.
type Option func(*options)

type options struct {
	bucketBytes       int64
	hbInterval, hbTTL time.Duration
	fileStore         string
}

// WithBucketBytes sets the bucket size of AllReduceMean and AllReduceSum.
func WithBucketBytes(n int64) Option { return func(o *options) { o.bucketBytes = n } }

// WithHeartbeat sets the heartbeat period and the silence after which a
// rank is reported (timeout must be at least twice interval).
func WithHeartbeat(interval, timeout time.Duration) Option {
	return func(o *options) { o.hbInterval, o.hbTTL = interval, timeout }
}

// WithFileStore rendezvouses through a FileStore at path (a fresh file on a
// file system every rank sees) instead of a TCPStore at MasterAddr.
func WithFileStore(path string) Option { return func(o *options) { o.fileStore = path } }

// Group is this process's rank in a data-parallel job.
type Group struct {
	env     Env
	backend string
	device  gotch.Device
	opts    options
	store   *ts.Store
	pg      *ts.ProcessGroup
	where   string // the store, for messages
	// tempStore is the private file store of a one-process group, removed
	// by Close.
	tempStore string

	hb       *heartbeat
	failOnce sync.Once
	failed   chan error
	dead     chan struct{} // closed on the first failure
	errMu    sync.Mutex
	err      error
	closed   bool
}

// New joins the job described by env with backend "gloo" (CPU tensors) or
// "nccl" (CUDA tensors on device, one GPU per rank), and starts the
// heartbeat. timeout bounds the rendezvous and every collective; keep it
// long (minutes): a dead rank is found by the heartbeat, not by it. New
// returns once every rank has joined.
func New(env Env, backend string, device gotch.Device, timeout time.Duration, opt ...Option) (*Group, error) {
	o := options{bucketBytes: DefaultBucketBytes, hbInterval: DefaultHeartbeatInterval, hbTTL: DefaultHeartbeatTimeout}
	for _, f := range opt {
		f(&o)
	}
	var problems []string
	if err := env.Validate(); err != nil {
		problems = append(problems, err.Error())
	}
	switch backend {
	case "gloo":
	case "nccl":
		if !device.IsCuda() {
			problems = append(problems, fmt.Sprintf("the nccl backend needs a CUDA device, got %v (use gloo on the CPU)", device))
		}
	default:
		problems = append(problems, fmt.Sprintf("unknown backend %q (gloo or nccl)", backend))
	}
	if timeout <= 0 {
		problems = append(problems, fmt.Sprintf("the timeout must be positive, got %v", timeout))
	}
	if o.bucketBytes <= 0 {
		problems = append(problems, fmt.Sprintf("the bucket size must be positive, got %d bytes", o.bucketBytes))
	}
	if o.hbInterval <= 0 || o.hbTTL < 2*o.hbInterval {
		problems = append(problems, fmt.Sprintf("the heartbeat timeout (%v) must be at least twice its interval (%v), which must be positive", o.hbTTL, o.hbInterval))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("dist.New: %s", joinProblems(problems))
	}
	g := &Group{env: env, backend: backend, device: device, opts: o, failed: make(chan error, 1), dead: make(chan struct{})}
	// libtorch 2.x logs a store call to a dead peer as a warning with a
	// C++ backtrace before failing; the heartbeat reports it in one line,
	// so libtorch's log is cut to errors unless TORCH_CPP_LOG_LEVEL,
	// PyTorch's own switch, says otherwise.
	if err := ts.C10dLogLevel(cppLogLevel(os.Getenv("TORCH_CPP_LOG_LEVEL"))); err != nil {
		return nil, fmt.Errorf("dist.New: %w", err)
	}
	var err error
	if o.fileStore == "" && env.WorldSize == 1 && env.MasterAddr == "" {
		// A one-process group (Single()): a private file store, so that
		// the same code path runs (and the 1-GPU NCCL check needs no port).
		f, err := os.CreateTemp("", "mollify-dist-store-")
		if err != nil {
			return nil, fmt.Errorf("dist.New: a store for one process: %w", err)
		}
		f.Close()
		os.Remove(f.Name())
		o.fileStore, g.opts.fileStore, g.tempStore = f.Name(), f.Name(), f.Name()
	}
	if o.fileStore != "" {
		g.where = "the file store " + o.fileStore
		g.store, err = ts.NewFileStore(o.fileStore, env.WorldSize, timeout)
	} else {
		g.where = fmt.Sprintf("the store at %s:%d", env.MasterAddr, env.MasterPort)
		g.store, err = ts.NewTCPStore(env.MasterAddr, env.MasterPort, env.WorldSize, env.Rank == 0, timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("dist.New: rank %d could not reach %s: %w", env.Rank, g.where, err)
	}
	if backend == "nccl" {
		g.pg, err = ts.NewNCCLProcessGroup(g.store, env.Rank, env.WorldSize, timeout)
	} else {
		host := ""
		if env.GlooInterface == "" && (env.MasterAddr == "" || loopback(env.MasterAddr)) {
			host = "127.0.0.1" // one machine: no need to resolve its hostname
		}
		g.pg, err = ts.NewGlooProcessGroup(g.store, env.Rank, env.WorldSize, env.GlooInterface, host, timeout)
	}
	if err != nil {
		g.store.Close()
		return nil, fmt.Errorf("dist.New: rank %d of %d could not join the %s group through %s: %w", env.Rank, env.WorldSize, backend, g.where, err)
	}
	g.hb = startHeartbeat(g)
	return g, nil
}

func joinProblems(p []string) string {
	s := p[0]
	for _, x := range p[1:] {
		s += "; " + x
	}
	return s
}

// Env is the job the group was made from.
func (g *Group) Env() Env { return g.env }

// Rank is this process's rank.
func (g *Group) Rank() int { return g.env.Rank }

// Size is the number of ranks.
func (g *Group) Size() int { return g.env.WorldSize }

// Failed receives the first failure the heartbeat watcher sees (a rank
// that stopped responding, the store gone), once. A command that must not
// hang in a collective that will never complete (Gloo's block until the
// group's timeout) watches it and exits:
//
//	go func() { err := <-g.Failed(); fmt.Fprintln(os.Stderr, "train:", err); os.Exit(1) }()
//
// The library itself never exits the process.
func (g *Group) Failed() <-chan error { return g.failed }

// Err is the first failure seen, or nil; collectives return it instead of
// starting once it is set.
func (g *Group) Err() error {
	g.errMu.Lock()
	defer g.errMu.Unlock()
	return g.err
}

func (g *Group) fail(err error) {
	g.failOnce.Do(func() {
		g.errMu.Lock()
		g.err = err
		g.errMu.Unlock()
		g.failed <- err
		close(g.dead)
	})
}

// collectiveErr names the rank and the operation of a failed collective.
func (g *Group) collectiveErr(op string, err error) error {
	if e := g.Err(); e != nil {
		return fmt.Errorf("dist: %s on rank %d: %w (and: %v)", op, g.env.Rank, e, err)
	}
	return fmt.Errorf("dist: %s on rank %d: %w", op, g.env.Rank, err)
}

// Barrier waits until every rank has reached it.
func (g *Group) Barrier() error {
	if err := g.Err(); err != nil {
		return err
	}
	if err := g.pg.Barrier(); err != nil {
		return g.collectiveErr("barrier", err)
	}
	return nil
}

// Broadcast overwrites tensors in place with rank root's (parameters and
// buffers at the start of a run). One collective per tensor, unbucketed.
func (g *Group) Broadcast(tensors []*ts.Tensor, root int) error {
	if err := g.Err(); err != nil {
		return err
	}
	if root < 0 || root >= g.env.WorldSize {
		return fmt.Errorf("dist: broadcast root %d is not a rank (0..%d)", root, g.env.WorldSize-1)
	}
	if len(tensors) == 0 {
		return nil
	}
	w, err := g.pg.Broadcast(tensors, root)
	if err == nil {
		err = w.Wait()
	}
	if err != nil {
		return g.collectiveErr("broadcast from rank "+strconv.Itoa(root), err)
	}
	return nil
}

// AllReduceMean replaces each tensor (the gradients after backward) in
// place by its mean over the ranks, through flat buckets (see the package
// documentation).
func (g *Group) AllReduceMean(grads []*ts.Tensor) error { return g.allReduce(grads, true) }

// AllReduceSum replaces each tensor in place by its sum over the ranks
// (integer tensors too: counts).
func (g *Group) AllReduceSum(tensors []*ts.Tensor) error { return g.allReduce(tensors, false) }

// AllReduceSumAutograd returns a new tensor, x summed over the ranks,
// recorded in x's autograd graph: its backward sums the gradient over the
// ranks (torch.distributed.nn.functional.all_reduce), so every rank must
// run the backward through it too. The synchronised batch norm's
// statistics travel in it (nn.SetBatchNormSync). A failure in the backward
// surfaces as the backward's error.
func (g *Group) AllReduceSumAutograd(x *ts.Tensor) (*ts.Tensor, error) {
	if err := g.Err(); err != nil {
		return nil, err
	}
	y, err := g.pg.AllReduceSumAutograd(x)
	if err != nil {
		return nil, g.collectiveErr("differentiable all-reduce (sum)", err)
	}
	return y, nil
}

// bucket is a run of tensors flattened into one.
type bucket struct {
	members []*ts.Tensor
	flat    *ts.Tensor
}

// buckets packs tensors in order into runs of one dtype and device, each
// closed once it holds at least limit bytes.
func buckets(tensors []*ts.Tensor, limit int64) ([][]int, error) {
	var out [][]int
	var cur []int
	var bytes int64
	var dtype gotch.DType
	var dev gotch.Device
	for i, t := range tensors {
		if t == nil {
			return nil, fmt.Errorf("tensor %d is nil (a parameter without a gradient? pass only the defined ones, the same on every rank)", i)
		}
		d, err := t.Device()
		if err != nil {
			return nil, fmt.Errorf("tensor %d: %w", i, err)
		}
		if len(cur) > 0 && (t.DType() != dtype || d != dev || bytes >= limit) {
			out = append(out, cur)
			cur, bytes = nil, 0
		}
		dtype, dev = t.DType(), d
		cur = append(cur, i)
		bytes += int64(t.Numel()) * int64(dtype.Size())
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out, nil
}

func (g *Group) allReduce(tensors []*ts.Tensor, average bool) (err error) {
	op := "all-reduce (sum)"
	if average {
		op = "all-reduce (mean)"
	}
	if err := g.Err(); err != nil {
		return err
	}
	if len(tensors) == 0 {
		return nil
	}
	groups, err := buckets(tensors, g.opts.bucketBytes)
	if err != nil {
		return fmt.Errorf("dist: %s: %w", op, err)
	}
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(error)
			if !ok {
				panic(r)
			}
			err = g.collectiveErr(op, e)
		}
	}()
	sc := ts.NewScope()
	defer sc.Close()
	flats := make([]*ts.Tensor, len(groups))
	for b, idx := range groups {
		parts := make([]*ts.Tensor, len(idx))
		for k, i := range idx {
			parts[k] = tensors[i].MustReshape([]int64{-1}, false)
		}
		flats[b] = ts.MustCat(parts, 0)
	}
	// One work: every bucket's collective is started before any is waited for.
	w, err := g.pg.AllReduce(flats, average)
	if err == nil {
		err = w.Wait()
	}
	if err != nil {
		return g.collectiveErr(op, err)
	}
	for b, idx := range groups {
		var off int64
		for _, i := range idx {
			n := int64(tensors[i].Numel())
			tensors[i].Copy_(flats[b].MustNarrow(0, off, n, false).MustViewAs(tensors[i], false))
			off += n
		}
	}
	return nil
}

// Close leaves the job. Without a failure it first waits until every rank
// has called Close (the heartbeat keeps running meanwhile, so a rank that
// dies instead is still reported), so that rank 0 does not take the store
// down under the others. After a failure it only frees. It returns the
// failure, if any; a second call does nothing.
func (g *Group) Close() error {
	g.errMu.Lock()
	if g.closed {
		g.errMu.Unlock()
		return g.Err()
	}
	g.closed = true
	g.errMu.Unlock()
	err := g.Err()
	if err == nil && g.env.WorldSize > 1 {
		err = g.hb.leave()
	}
	g.hb.stop()
	g.pg.Close()
	g.store.Close()
	if g.tempStore != "" {
		os.Remove(g.tempStore)
	}
	return err
}

// cppLogLevel maps TORCH_CPP_LOG_LEVEL (INFO, WARNING, ERROR, FATAL or
// 0-3, as PyTorch reads it) to c10's level; 2 (errors) when it is unset or
// unknown.
func cppLogLevel(env string) int {
	switch strings.ToUpper(strings.TrimSpace(env)) {
	case "INFO", "0":
		return 0
	case "WARNING", "1":
		return 1
	case "FATAL", "3":
		return 3
	}
	return 2
}
