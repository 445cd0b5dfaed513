package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mollify/mollify/experiments/sweep"
	"github.com/schollz/progressbar/v3"
)

type runOptions struct {
	jobs    *int
	gpus    *string
	threads *int
	train   *string
	every   *time.Duration
}

func runFlags(fs *flag.FlagSet) *runOptions {
	return &runOptions{
		jobs:    fs.Int("jobs", 0, "workers at once (default: one per GPU with -gpus, else 1)"),
		gpus:    fs.String("gpus", "", "GPUs to use, e.g. 0,1,2,3: worker i runs on GPU i (CUDA_VISIBLE_DEVICES)"),
		threads: fs.Int("threads", 0, "CPU threads per worker (default: the run's run.threads, else the CPUs divided by -jobs without -gpus)"),
		train:   fs.String("train", "", "the train binary (default: next to this binary, else train on the PATH)"),
		every:   fs.Duration("progress-every", 30*time.Second, "how often the progress line is printed when stderr is not a terminal"),
	}
}

// worker is where one worker's runs go: a GPU, or a share of the CPUs.
type worker struct {
	gpu      string // "" on the CPU
	threads  int    // 0: the config's run.threads
	explicit bool   // threads came from -threads, over the configs' run.threads
}

// threadsFor is the thread count of run r on w: -threads, else the run's
// own run.threads, else w's share of the CPUs; 0 leaves it to the config.
func (w worker) threadsFor(r sweep.Run) int {
	if !w.explicit && r.Config.Run.Threads > 0 {
		return r.Config.Run.Threads
	}
	return w.threads
}

func (o *runOptions) workers() ([]worker, error) {
	var gpus []string
	if *o.gpus != "" {
		for _, g := range strings.Split(*o.gpus, ",") {
			g = strings.TrimSpace(g)
			if _, err := strconv.Atoi(g); err != nil {
				return nil, fmt.Errorf("-gpus %q: want GPU indices separated by commas, e.g. -gpus 0,1", *o.gpus)
			}
			gpus = append(gpus, g)
		}
	}
	jobs := *o.jobs
	switch {
	case jobs < 0:
		return nil, fmt.Errorf("-jobs %d: want a number of workers >= 1", jobs)
	case jobs == 0 && len(gpus) > 0:
		jobs = len(gpus)
	case jobs == 0:
		jobs = 1
	}
	if *o.threads < 0 {
		return nil, fmt.Errorf("-threads %d: want >= 1 (or 0 for the default)", *o.threads)
	}
	threads := *o.threads
	if threads == 0 && len(gpus) == 0 {
		threads = max(1, runtime.NumCPU()/jobs)
	}
	ws := make([]worker, jobs)
	for i := range ws {
		ws[i].threads, ws[i].explicit = threads, *o.threads > 0
		if len(gpus) > 0 {
			ws[i].gpu = gpus[i%len(gpus)]
		}
	}
	return ws, nil
}

// findTrain returns the train binary: flag, else beside this binary, else
// on the PATH.
func findTrain(flagValue string) (string, error) {
	if flagValue != "" {
		if _, err := os.Stat(flagValue); err != nil {
			return "", fmt.Errorf("-train %s: %w", flagValue, err)
		}
		return filepath.Abs(flagValue)
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "train")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	if p, err := exec.LookPath("train"); err == nil {
		return p, nil
	}
	return "", errors.New("cannot find the train binary: build it next to sweep (go build -o bin/ ./cmd/train ./cmd/sweep), put it on the PATH, or pass -train PATH")
}

// args is the worker command line of run r on w.
func (w worker) args(s *sweep.Sweep, r sweep.Run) []string {
	a := []string{"-sweep", s.Path, "-index", strconv.Itoa(r.Index)}
	if w.gpu != "" {
		a = append(a, "--set", "run.device=cuda:0")
	}
	if n := w.threadsFor(r); n > 0 {
		a = append(a, "--set", "run.threads="+strconv.Itoa(n))
	}
	return a
}

func (w worker) env(r sweep.Run) []string {
	env := os.Environ()
	if w.gpu != "" {
		env = append(env, "CUDA_VISIBLE_DEVICES="+w.gpu)
	}
	if n := w.threadsFor(r); n > 0 {
		t := strconv.Itoa(n)
		env = append(env, "OMP_NUM_THREADS="+t, "MKL_NUM_THREADS="+t)
	}
	return env
}

// outcome is how one attempt at a run ended.
type outcome struct {
	run sweep.Run
	err error
}

// runAll trains every run that is not done, jobs at a time.
func runAll(s *sweep.Sweep, o *runOptions, stderr io.Writer) error {
	ws, err := o.workers()
	if err != nil {
		return err
	}
	train, err := findTrain(*o.train)
	if err != nil {
		return err
	}
	if err := s.WriteManifest(); err != nil {
		return err
	}
	p := newProgress(s, stderr, *o.every)
	var todo []sweep.Run
	var elsewhere []string
	for _, r := range s.Runs() {
		switch st := sweep.StatusOf(s.Dir(r)); st.State {
		case sweep.StateDone:
			p.done++
			p.doneSteps += int64(r.Config.Run.Iterations)
		case sweep.StateRunning:
			elsewhere = append(elsewhere, fmt.Sprintf("run %d (%s): %s", r.Index, r.ID, st.Detail))
		default:
			todo = append(todo, r)
		}
	}
	fmt.Fprintf(stderr, "sweep %s: %d runs in %s: %d done, %d to run on %d worker(s) with %s\n",
		s.Path, len(s.Runs()), s.OutDir, p.done, len(todo), len(ws), train)
	for _, e := range elsewhere {
		fmt.Fprintf(stderr, "  skipped, running in another worker: %s\n", e)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	queue := make(chan sweep.Run)
	results := make(chan outcome)
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range queue {
				p.started(r)
				results <- outcome{r, attempt(ctx, train, w, s, r)}
			}
		}()
	}
	go func() {
		defer close(queue)
		for _, r := range todo {
			select {
			case queue <- r:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(results) }()

	stopTicker := p.tick()
	var failed []string
	for res := range results {
		if res.err != nil && sweep.StatusOf(s.Dir(res.run)).State == sweep.StateDone {
			res.err = nil // diverged: a result (done.json), not a failure
		}
		p.finished(res.run, res.err)
		if res.err != nil && ctx.Err() == nil {
			failed = append(failed, fmt.Sprintf("run %d (%s, %s): %v", res.run.Index, s.Dir(res.run), strings.Join(labels(s, res.run), " "), res.err))
		}
	}
	stopTicker()
	if len(todo) == 0 {
		p.print(true)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted: rerun the same command to resume (%d of %d runs done)", p.done, len(s.Runs()))
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d run(s) failed (their folders keep train.log; `sweep status %s` lists them):\n  %s", len(failed), s.Path, strings.Join(failed, "\n  "))
	}
	if len(elsewhere) > 0 {
		return fmt.Errorf("%d run(s) were running in another worker and were left to it: `sweep status %s` shows when they are done", len(elsewhere), s.Path)
	}
	return nil
}

// attempt runs one worker process; train writes its output into the
// run's train.log itself, so only the last lines are kept here for the
// error.
func attempt(ctx context.Context, train string, w worker, s *sweep.Sweep, r sweep.Run) error {
	cmd := exec.CommandContext(ctx, train, w.args(s, r)...)
	cmd.Env = w.env(r)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = time.Minute
	tail := &tailBuffer{max: 4096}
	cmd.Stdout, cmd.Stderr = tail, tail
	dieWithParent(cmd)
	if err := cmd.Run(); err != nil {
		if line := tail.lastLine("train: "); line != "" {
			return errors.New(line)
		}
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(tail.String()))
	}
	return nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// lastLine is the last line starting with prefix.
func (t *tailBuffer) lastLine(prefix string) string {
	lines := strings.Split(t.String(), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], prefix) {
			return strings.TrimSpace(lines[i])
		}
	}
	return ""
}

// progress is the sweep's one progress line: runs done, running and
// failed, and the optimizer steps of all runs (a bar on a terminal).
type progress struct {
	mu         sync.Mutex
	s          *sweep.Sweep
	w          io.Writer
	every      time.Duration
	start      time.Time
	total      int64            // steps of all runs
	doneSteps  int64            // steps of finished runs
	running    map[int]struct{} // index of the runs in progress
	done, fail int
	bar        *progressbar.ProgressBar
	last       time.Time
}

func newProgress(s *sweep.Sweep, w io.Writer, every time.Duration) *progress {
	p := &progress{s: s, w: w, every: every, start: time.Now(), running: map[int]struct{}{}}
	for _, r := range s.Runs() {
		p.total += int64(r.Config.Run.Iterations)
	}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.bar = progressbar.NewOptions64(p.total, progressbar.OptionSetWriter(w), progressbar.OptionSetWidth(30),
				progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(200*time.Millisecond),
				progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }))
		}
	}
	return p
}

func (p *progress) started(r sweep.Run) {
	p.mu.Lock()
	p.running[r.Index] = struct{}{}
	p.mu.Unlock()
	p.print(false)
}

func (p *progress) finished(r sweep.Run, err error) {
	p.mu.Lock()
	delete(p.running, r.Index)
	if err != nil {
		p.fail++
	} else {
		p.done++
		p.doneSteps += int64(r.Config.Run.Iterations)
	}
	p.mu.Unlock()
	p.print(true)
}

// tick redraws the line every second until the returned stop is called.
func (p *progress) tick() func() {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				p.print(false)
			}
		}
	}()
	return func() { close(stop); <-done }
}

// print draws the bar, or without a terminal writes a line when forced
// (a run ended) or every p.every.
func (p *progress) print(force bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar == nil && !force && time.Since(p.last) < p.every {
		return
	}
	steps := p.doneSteps
	runs := p.s.Runs()
	for i := range p.running {
		steps += int64(sweep.StatusOf(p.s.Dir(runs[i])).Step)
	}
	desc := fmt.Sprintf("%d/%d runs done, %d running, %d failed", p.done, len(runs), len(p.running), p.fail)
	if p.bar != nil {
		p.bar.Describe(desc)
		p.bar.Set64(steps)
		return
	}
	p.last = time.Now()
	pct := 100 * float64(steps) / float64(max(p.total, 1))
	fmt.Fprintf(p.w, "sweep %s: %s, steps %d/%d (%.1f%%), %s elapsed\n", p.s.Name, desc, steps, p.total, pct, time.Since(p.start).Round(time.Second))
}
