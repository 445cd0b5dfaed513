// Command launch starts the N local workers of a data-parallel job, as
// torchrun does on one node:
//
//	launch -nproc 2 -- train -config realnvp_mog
//	launch -nproc 4 -gpus 0,1,2,3 -- build/bin/train -config glow_cifar10
//
// Each worker gets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT
// (read by train/dist.FromEnv). With -gpus, worker r sees only GPU gpus[r]
// (CUDA_VISIBLE_DEVICES); otherwise the CPU threads are split: each worker
// gets OMP_NUM_THREADS, MKL_NUM_THREADS and OPENBLAS_NUM_THREADS of
// -threads (default: the CPUs divided by N, at least 1), and a worker
// program named "train" also gets `--set run.threads=T`. A program without
// a slash is looked up on the PATH, then beside this binary (build/bin).
//
// Every output line of worker r is prefixed with "[rank r] " (stdout to
// stdout, stderr to stderr). SIGINT and SIGTERM are forwarded to every
// worker (to its process group). When a worker fails (non-zero exit or a
// signal), the others get SIGTERM, then SIGKILL after -grace, and launch
// exits 1 naming the rank that failed first. Bad flags exit 2.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
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
)

type options struct {
	nproc      int
	masterAddr string
	masterPort int
	gpus       []string
	threads    int
	grace      time.Duration
	program    string
	args       []string
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "launch:", err)
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "launch:", err)
		os.Exit(1)
	}
}

func parseFlags(argv []string) (*options, error) {
	fs := flag.NewFlagSet("launch", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o := &options{}
	fs.IntVar(&o.nproc, "nproc", 0, "number of workers (required)")
	fs.StringVar(&o.masterAddr, "master-addr", "127.0.0.1", "MASTER_ADDR given to the workers")
	fs.IntVar(&o.masterPort, "master-port", 0, "MASTER_PORT given to the workers (0: a free port)")
	gpus := fs.String("gpus", "", "comma-separated GPU indices, one per worker (CUDA_VISIBLE_DEVICES)")
	fs.IntVar(&o.threads, "threads", 0, "CPU threads per worker without -gpus (0: CPUs / nproc)")
	fs.DurationVar(&o.grace, "grace", 10*time.Second, "how long the other workers get to exit after one fails, before SIGKILL")
	usage := "usage: launch -nproc N [-master-port P] [-gpus 0,1,...] [-threads T] [-grace 10s] -- PROGRAM ARGS..."
	if err := fs.Parse(argv); err != nil {
		return nil, fmt.Errorf("%v\n%s", err, usage)
	}
	var problems []string
	if o.nproc < 1 {
		problems = append(problems, fmt.Sprintf("-nproc must be at least 1, got %d", o.nproc))
	}
	if o.masterPort < 0 || o.masterPort > 65535 {
		problems = append(problems, fmt.Sprintf("-master-port must be in 0..65535, got %d", o.masterPort))
	}
	if o.threads < 0 {
		problems = append(problems, fmt.Sprintf("-threads must be at least 0, got %d", o.threads))
	}
	if o.grace < 0 {
		problems = append(problems, fmt.Sprintf("-grace must not be negative, got %v", o.grace))
	}
	if *gpus != "" {
		for _, g := range strings.Split(*gpus, ",") {
			g = strings.TrimSpace(g)
			if n, err := strconv.Atoi(g); err != nil || n < 0 {
				problems = append(problems, fmt.Sprintf("-gpus: %q is not a GPU index", g))
				continue
			}
			o.gpus = append(o.gpus, g)
		}
		if len(o.gpus) < o.nproc && o.nproc >= 1 {
			problems = append(problems, fmt.Sprintf("-gpus lists %d GPUs for -nproc %d workers (one GPU each)", len(o.gpus), o.nproc))
		}
	}
	rest := fs.Args()
	if len(rest) == 0 {
		problems = append(problems, "no worker program: put it after --, e.g. launch -nproc 2 -- train -config demo")
	} else {
		o.program, o.args = rest[0], rest[1:]
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%s\n%s", strings.Join(problems, "; "), usage)
	}
	return o, nil
}

// findProgram resolves a program name on the PATH, then beside launch.
func findProgram(name string) (string, error) {
	if strings.ContainsRune(name, '/') {
		return name, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("worker program %q is neither on the PATH nor beside launch (build it: go build -o build/bin/%s ./cmd/%s)", name, name, name)
}

func freePort(addr string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		l, err = net.Listen("tcp", ":0")
		if err != nil {
			return 0, fmt.Errorf("finding a free MASTER_PORT: %w (pass -master-port)", err)
		}
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// workerEnv is worker r's environment.
func workerEnv(o *options, r int) []string {
	env := append(os.Environ(),
		"RANK="+strconv.Itoa(r), "WORLD_SIZE="+strconv.Itoa(o.nproc), "LOCAL_RANK="+strconv.Itoa(r),
		"LOCAL_WORLD_SIZE="+strconv.Itoa(o.nproc),
		"MASTER_ADDR="+o.masterAddr, "MASTER_PORT="+strconv.Itoa(o.masterPort))
	if len(o.gpus) > 0 {
		return append(env, "CUDA_VISIBLE_DEVICES="+o.gpus[r])
	}
	t := strconv.Itoa(o.threads)
	return append(env, "OMP_NUM_THREADS="+t, "MKL_NUM_THREADS="+t, "OPENBLAS_NUM_THREADS="+t)
}

// prefixLines copies r to w line by line, each line prefixed.
func prefixLines(r io.Reader, w io.Writer, prefix string, mu *sync.Mutex, done *sync.WaitGroup) {
	defer done.Done()
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			if !strings.HasSuffix(line, "\n") {
				line += "\n"
			}
			mu.Lock()
			io.WriteString(w, prefix+line)
			mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

type exit struct {
	rank int
	err  error
}

func run(o *options) error {
	prog, err := findProgram(o.program)
	if err != nil {
		return err
	}
	if o.masterPort == 0 {
		if o.masterPort, err = freePort(o.masterAddr); err != nil {
			return err
		}
	}
	if len(o.gpus) == 0 && o.threads == 0 {
		o.threads = max(1, runtime.NumCPU()/o.nproc)
	}
	args := o.args
	if len(o.gpus) == 0 && filepath.Base(prog) == "train" {
		args = append(append([]string{}, args...), "--set", "run.threads="+strconv.Itoa(o.threads))
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	var outMu, errMu sync.Mutex
	var copying sync.WaitGroup
	cmds := make([]*exec.Cmd, o.nproc)
	exits := make(chan exit, o.nproc)
	running := make([]bool, o.nproc) // started and not yet reported exited
	for r := range cmds {
		c := exec.Command(prog, args...)
		c.Env = workerEnv(o, r)
		c.Stdin = nil
		// Its own process group: a terminal's Ctrl-C reaches the workers
		// once, through launch, and a signal reaches a worker's children.
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		// Plain pipes rather than StdoutPipe: Wait then reports the exit
		// at once, while the copiers read on until every holder of the
		// write ends (the worker's children too) has closed them.
		outR, outW, err := os.Pipe()
		if err != nil {
			return err
		}
		errR, errW, err := os.Pipe()
		if err != nil {
			return err
		}
		c.Stdout, c.Stderr = outW, errW
		err = c.Start()
		outW.Close()
		errW.Close()
		if err != nil {
			outR.Close()
			errR.Close()
			signalAll(cmds[:r], running, syscall.SIGKILL)
			return fmt.Errorf("starting rank %d (%s): %w", r, prog, err)
		}
		cmds[r] = c
		prefix := fmt.Sprintf("[rank %d] ", r)
		copying.Add(2)
		go prefixLines(outR, os.Stdout, prefix, &outMu, &copying)
		go prefixLines(errR, os.Stderr, prefix, &errMu, &copying)
		running[r] = true
	}
	for r, c := range cmds {
		go func() { exits <- exit{r, c.Wait()} }()
	}

	var failed *exit
	var kill <-chan time.Time
	for left := o.nproc; left > 0; {
		select {
		case s := <-sigs:
			fmt.Fprintf(os.Stderr, "launch: %v: forwarding it to the workers\n", s)
			signalAll(cmds, running, s.(syscall.Signal))
		case e := <-exits:
			left--
			running[e.rank] = false
			if e.err != nil && failed == nil {
				failed = &e
				if left > 0 {
					fmt.Fprintf(os.Stderr, "launch: rank %d failed (%v); stopping the other workers (SIGKILL after %v)\n", e.rank, describe(e.err), o.grace)
					signalAll(cmds, running, syscall.SIGTERM)
					kill = time.After(o.grace)
				}
			}
		case <-kill:
			signalAll(cmds, running, syscall.SIGKILL)
			kill = nil
		}
	}
	copying.Wait()
	if failed != nil {
		return fmt.Errorf("rank %d failed (%s)", failed.rank, describe(failed.err))
	}
	return nil
}

// describe says how a worker ended: "exit status 7" or "killed by signal: killed".
func describe(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "killed by signal " + ws.Signal().String()
		}
		return fmt.Sprintf("exit status %d", ee.ExitCode())
	}
	return err.Error()
}

// signalAll sends s to the process group of every worker still running.
func signalAll(cmds []*exec.Cmd, running []bool, s syscall.Signal) {
	for r, c := range cmds {
		if c != nil && c.Process != nil && running[r] {
			syscall.Kill(-c.Process.Pid, s)
		}
	}
}
