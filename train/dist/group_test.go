package dist

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mollify/mollify/internal/testenv"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// The multi-process tests re-execute this test binary as the workers:
// TestMain runs the worker named by $MOLLIFY_DIST_WORKER instead of the
// tests, with the rank's environment set as cmd/launch or torchrun would.
const workerVar = "MOLLIFY_DIST_WORKER"

func TestMain(m *testing.M) {
	if name := os.Getenv(workerVar); name != "" {
		os.Exit(runWorker(name))
	}
	os.Exit(m.Run())
}

func runWorker(name string) int {
	env, err := FromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	switch name {
	case "collectives":
		err = collectivesWorker(env)
	case "heartbeat":
		err = heartbeatWorker(env)
	case "throughput":
		err = throughputWorker(env)
	case "syncbn":
		err = syncBNWorker(env)
	default:
		err = fmt.Errorf("unknown worker %q", name)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "rank %d: %v\n", env.Rank, err)
		return 1
	}
	return 0
}

type result struct {
	code   int
	signal syscall.Signal
	stderr string
	at     time.Time // when it ended
}

// spawn runs n workers of the given name and waits for all of them.
func spawn(t *testing.T, name string, n int, extra ...string) []result {
	t.Helper()
	if !ts.C10dAvailable() {
		t.Skip("libtch has no c10d (see build/stubs.txt): TestStubMessage covers that case")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	port := testenv.FreePort(t)
	cmds := make([]*exec.Cmd, n)
	errs := make([]*bytes.Buffer, n)
	for r := range cmds {
		c := exec.CommandContext(ctx, os.Args[0])
		c.Env = append(os.Environ(), workerVar+"="+name, "RANK="+strconv.Itoa(r), "WORLD_SIZE="+strconv.Itoa(n),
			"LOCAL_RANK="+strconv.Itoa(r), "MASTER_ADDR=127.0.0.1", "MASTER_PORT="+port, "OMP_NUM_THREADS=1")
		c.Env = append(c.Env, extra...)
		errs[r] = &bytes.Buffer{}
		c.Stderr = errs[r]
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[r] = c
	}
	out := make([]result, n)
	done := make(chan int, n)
	for r, c := range cmds {
		go func() {
			c.Wait()
			out[r].at = time.Now()
			done <- r
		}()
	}
	for range cmds {
		<-done
	}
	for r, c := range cmds {
		out[r].stderr = errs[r].String()
		ws := c.ProcessState.Sys().(syscall.WaitStatus)
		out[r].code = ws.ExitStatus()
		if ws.Signaled() {
			out[r].signal = ws.Signal()
		}
	}
	if ctx.Err() != nil {
		t.Fatalf("the workers did not finish within 90 s: %+v", out)
	}
	return out
}

// Two processes over 127.0.0.1: all-reduce of tensors of several sizes and
// dtypes spanning several buckets (1 KiB ones), sums of integers,
// broadcasts from either rank, a barrier, a clean Close; with a TCPStore
// and with a FileStore.
func TestTwoProcessCollectives(t *testing.T) {
	for _, c := range []struct {
		name  string
		extra []string
	}{
		{"tcp store", nil},
		{"file store", []string{"MOLLIFY_DIST_FILESTORE=" + filepath.Join(t.TempDir(), "store")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			for r, res := range spawn(t, "collectives", 2, c.extra...) {
				if res.code != 0 {
					t.Errorf("rank %d exited with %d:\n%s", r, res.code, res.stderr)
				}
			}
		})
	}
}

// fill is rank-dependent data: (rank+1) * (i + offset) for element i.
func fill(rank int, n int64, offset float64, dtype gotch.DType) *ts.Tensor {
	v := make([]float64, n)
	for i := range v {
		v[i] = float64(rank+1) * (float64(i) + offset)
	}
	return ts.MustOfSlice(v).MustTotype(dtype, true)
}

func collectivesWorker(env Env) error {
	sc := ts.NewScope()
	defer sc.Close()
	var opt []Option
	opt = append(opt, WithBucketBytes(1024))
	if p := os.Getenv("MOLLIFY_DIST_FILESTORE"); p != "" {
		opt = append(opt, WithFileStore(p))
	}
	g, err := New(env, "gloo", gotch.CPU, time.Minute, opt...)
	if err != nil {
		return err
	}
	// Float32 and float64, 0-d to 3,000 elements: the 1 KiB buckets hold
	// several small tensors, a large one alone, and split at dtype changes.
	shapes := []struct {
		shape []int64
		dtype gotch.DType
	}{
		{[]int64{3, 5}, gotch.Float}, {[]int64{7}, gotch.Float}, {[]int64{100}, gotch.Double},
		{[]int64{3000}, gotch.Float}, {[]int64{2, 2, 2}, gotch.Double}, {[]int64{1}, gotch.Float},
		{[]int64{40, 10}, gotch.Float},
	}
	grads := make([]*ts.Tensor, len(shapes))
	for i, s := range shapes {
		n := int64(1)
		for _, d := range s.shape {
			n *= d
		}
		grads[i] = fill(env.Rank, n, float64(i), s.dtype).MustReshape(s.shape, true)
	}
	if err := g.AllReduceMean(grads); err != nil {
		return err
	}
	// Mean over ranks 0 and 1 of (r+1)*(i+k): 1.5*(i+k), exact in binary.
	for i, x := range grads {
		got := x.MustReshape([]int64{-1}, false).MustTotype(gotch.Double, false).Float64Values()
		if x.DType() != shapes[i].dtype {
			return fmt.Errorf("tensor %d changed dtype to %v", i, x.DType())
		}
		for j, v := range got {
			if want := 1.5 * (float64(j) + float64(i)); v != want {
				return fmt.Errorf("mean of tensor %d, element %d: %v, want %v", i, j, v, want)
			}
		}
	}
	counts := ts.MustOfSlice([]int64{int64(env.Rank) + 1, 10, 1 << 40})
	if err := g.AllReduceSum([]*ts.Tensor{counts}); err != nil {
		return err
	}
	if got := counts.Int64Values(); fmt.Sprint(got) != fmt.Sprint([]int64{3, 20, 2 << 40}) {
		return fmt.Errorf("integer sum: %v", got)
	}
	for root := 0; root < 2; root++ {
		x := fill(env.Rank, 50, 0, gotch.Float)
		y := fill(env.Rank, 4, 1, gotch.Double)
		if err := g.Broadcast([]*ts.Tensor{x, y}, root); err != nil {
			return err
		}
		wx, wy := fill(root, 50, 0, gotch.Double).Float64Values(), fill(root, 4, 1, gotch.Double).Float64Values()
		if fmt.Sprint(x.MustTotype(gotch.Double, false).Float64Values()) != fmt.Sprint(wx) || fmt.Sprint(y.Float64Values()) != fmt.Sprint(wy) {
			return fmt.Errorf("broadcast from rank %d: got %v %v", root, x.Float64Values(), y.Float64Values())
		}
	}
	if err := g.Broadcast([]*ts.Tensor{counts}, 2); err == nil || !strings.Contains(err.Error(), "broadcast root 2 is not a rank (0..1)") {
		return fmt.Errorf("broadcast from rank 2: error %v", err)
	}
	if err := g.Barrier(); err != nil {
		return err
	}
	return g.Close()
}

// Killing one of two workers makes the other report it, with the one-line
// error a command prints, within the heartbeat timeout. Before that, rank 0
// "evaluates" for longer than the timeout while rank 1 waits for it in a
// barrier: a long wait of a live rank must not trip the heartbeat.
func TestHeartbeatReportsAKilledRank(t *testing.T) {
	res := spawn(t, "heartbeat", 2)
	if res[1].signal != syscall.SIGKILL {
		t.Fatalf("rank 1 should have been killed, got exit %d signal %v:\n%s", res[1].code, res[1].signal, res[1].stderr)
	}
	if res[0].code != 3 {
		t.Fatalf("rank 0 exited with %d, want 3 (it saw the failure):\n%s", res[0].code, res[0].stderr)
	}
	line := strings.TrimSpace(res[0].stderr)
	if strings.Count(line, "\n") != 0 || !strings.HasPrefix(line, "dist: rank 1 stopped responding (last heartbeat ") {
		t.Errorf("rank 0 should print one line naming rank 1, got:\n%s", res[0].stderr)
	}
	if d := res[0].at.Sub(res[1].at); d > hbTimeout+5*time.Second {
		t.Errorf("rank 0 took %v after rank 1 died to report it (heartbeat timeout %v)", d, hbTimeout)
	}
}

const hbInterval, hbTimeout = 200 * time.Millisecond, 2 * time.Second

func heartbeatWorker(env Env) error {
	g, err := New(env, "gloo", gotch.CPU, time.Minute, WithHeartbeat(hbInterval, hbTimeout))
	if err != nil {
		return err
	}
	if env.Rank == 0 {
		time.Sleep(hbTimeout + time.Second) // "evaluating"
		if err := g.Err(); err != nil {
			return fmt.Errorf("the heartbeat tripped during a long wait: %v", err)
		}
	}
	if err := g.Barrier(); err != nil {
		return err
	}
	if env.Rank == 1 {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	// What a command does: print the failure as one line and exit.
	select {
	case err := <-g.Failed():
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	case <-time.After(hbTimeout + 10*time.Second):
	}
	return fmt.Errorf("no failure reported %v after rank 1 was killed", hbTimeout+10*time.Second)
}

// New refuses bad arguments before touching the network.
func TestNewBadInput(t *testing.T) {
	env := Env{Rank: 0, WorldSize: 2, MasterAddr: "127.0.0.1", MasterPort: 1}
	for _, c := range []struct {
		name    string
		env     Env
		backend string
		dev     gotch.Device
		timeout time.Duration
		opt     []Option
		want    []string
	}{
		{"unknown backend", env, "mpi", gotch.CPU, time.Second, nil, []string{`unknown backend "mpi" (gloo or nccl)`}},
		{"nccl on the CPU", env, "nccl", gotch.CPU, time.Second, nil, []string{"the nccl backend needs a CUDA device"}},
		{"rank out of range, no timeout", Env{Rank: 2, WorldSize: 2, MasterAddr: "h", MasterPort: 1}, "gloo", gotch.CPU, 0, nil,
			[]string{"the rank must be in 0..1", "the timeout must be positive"}},
		{"heartbeat too tight", env, "gloo", gotch.CPU, time.Second, []Option{WithHeartbeat(time.Second, time.Second)},
			[]string{"heartbeat timeout (1s) must be at least twice its interval (1s)"}},
		{"no bucket", env, "gloo", gotch.CPU, time.Second, []Option{WithBucketBytes(0)}, []string{"bucket size must be positive"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := New(c.env, c.backend, c.dev, c.timeout, c.opt...)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// The buckets follow the order given, split at dtype changes and close
// once they hold the limit.
func TestBuckets(t *testing.T) {
	sc := ts.NewScope()
	defer sc.Close()
	f := func(n int64, dt gotch.DType) *ts.Tensor { return ts.MustZeros([]int64{n}, dt, gotch.CPU) }
	xs := []*ts.Tensor{f(100, gotch.Float), f(100, gotch.Float), f(300, gotch.Float), f(10, gotch.Float), f(10, gotch.Double), f(5, gotch.Float)}
	got, err := buckets(xs, 800)
	if err != nil {
		t.Fatal(err)
	}
	// 400+400 bytes reach 800: closed; 1200 alone; then 40 (float), 80 (double), 20 (float).
	if want := "[[0 1] [2] [3] [4] [5]]"; fmt.Sprint(got) != want {
		t.Errorf("buckets = %v, want %s", got, want)
	}
	if _, err := buckets([]*ts.Tensor{xs[0], nil}, 800); err == nil || !strings.Contains(err.Error(), "tensor 1 is nil") {
		t.Errorf("a nil tensor: error %v", err)
	}
}

// The cost of AllReduceMean between processes on this machine (not a
// check: docs/distributed.md records its output). Run with
// MOLLIFY_DIST_BENCH=1 go test ./train/dist -run Throughput -v.
func TestAllReduceThroughput(t *testing.T) {
	if os.Getenv("MOLLIFY_DIST_BENCH") == "" {
		t.Skip("a measurement: set MOLLIFY_DIST_BENCH=1")
	}
	for _, res := range spawn(t, "throughput", 2) {
		if res.code != 0 {
			t.Fatalf("exit %d:\n%s", res.code, res.stderr)
		}
		t.Log(res.stderr)
	}
}

func throughputWorker(env Env) error {
	g, err := New(env, "gloo", gotch.CPU, time.Minute)
	if err != nil {
		return err
	}
	for _, numel := range []int64{100_000, 1_000_000, 10_000_000} {
		sc := ts.NewScope()
		// 20 tensors, as a model's parameters.
		var xs []*ts.Tensor
		for i := 0; i < 20; i++ {
			xs = append(xs, ts.MustOnes([]int64{numel / 20}, gotch.Float, gotch.CPU))
		}
		g.AllReduceMean(xs) // warm-up
		const reps = 5
		start := time.Now()
		for i := 0; i < reps; i++ {
			if err := g.AllReduceMean(xs); err != nil {
				return err
			}
		}
		d := time.Since(start) / reps
		if env.Rank == 0 {
			fmt.Fprintf(os.Stderr, "%d float32 (%.1f MB) in 20 tensors: %.2f ms per AllReduceMean, %.0f MB/s\n",
				numel, float64(numel*4)/1e6, float64(d.Microseconds())/1e3, float64(numel*4)/1e6/d.Seconds())
		}
		sc.Close()
	}
	return g.Close()
}

// singleGlooGroup is a one-process Gloo group (no variables set: a
// private file store) inside a scope closed at the end of the test; it
// skips without c10d.
func singleGlooGroup(t *testing.T) *Group {
	t.Helper()
	if !ts.C10dAvailable() {
		t.Skip("libtch has no c10d")
	}
	sc := ts.NewScope()
	t.Cleanup(sc.Close)
	g, err := New(Single(), "gloo", gotch.CPU, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// A one-process group (no variables set) runs the same code on a private
// file store: the mean of one rank is the tensor itself.
func TestSingleProcessGroup(t *testing.T) {
	g := singleGlooGroup(t)
	x := fill(0, 10, 0.25, gotch.Float)
	if err := g.AllReduceMean([]*ts.Tensor{x}); err != nil {
		t.Fatal(err)
	}
	if err := g.Broadcast([]*ts.Tensor{x}, 0); err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(x.MustTotype(gotch.Double, false).Float64Values()), fmt.Sprint(fill(0, 10, 0.25, gotch.Double).Float64Values()); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	store := g.tempStore
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(store); !os.IsNotExist(err) {
		t.Errorf("the private store %s is left behind: %v", store, err)
	}
}
