package main

import (
	"bufio"
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mollify/mollify/internal/testenv"
)

// buildLaunch builds cmd/launch as a user's `go build ./cmd/launch` would.
func buildLaunch(t *testing.T) string {
	t.Helper()
	testenv.NeedGoTool(t)
	bin := filepath.Join(t.TempDir(), "launch")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type ran struct {
	code           int
	stdout, stderr string
	took           time.Duration
}

func launch(t *testing.T, bin string, args ...string) ran {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := ran{stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestLaunch(t *testing.T) {
	bin := buildLaunch(t)
	// Rank 1 touches this once it ignores SIGTERM; rank 0 fails only then,
	// or launch's SIGTERM could reach rank 1 before its trap is set.
	trapped := filepath.Join(t.TempDir(), "trapped")
	for _, c := range []struct {
		name       string
		args       []string
		code       int
		stdout     []string // lines, in any order
		stderr     []string // substrings
		notStderr  string
		maxSeconds float64
		minSeconds float64 // the grace period was waited out
	}{
		{"environment of each rank, CPU threads split",
			[]string{"-nproc", "2", "-master-port", "12345", "-threads", "3", "--", "sh", "-c",
				"echo rank=$RANK world=$WORLD_SIZE local=$LOCAL_RANK addr=$MASTER_ADDR port=$MASTER_PORT omp=$OMP_NUM_THREADS blas=$OPENBLAS_NUM_THREADS gpu=${CUDA_VISIBLE_DEVICES-none}; echo to-stderr >&2"},
			0,
			[]string{"[rank 0] rank=0 world=2 local=0 addr=127.0.0.1 port=12345 omp=3 blas=3 gpu=none",
				"[rank 1] rank=1 world=2 local=1 addr=127.0.0.1 port=12345 omp=3 blas=3 gpu=none"},
			[]string{"[rank 0] to-stderr", "[rank 1] to-stderr"}, "launch:", 30, 0},
		{"one GPU each",
			[]string{"-nproc", "2", "-gpus", "3,5", "--", "sh", "-c", "echo gpu=$CUDA_VISIBLE_DEVICES port=${MASTER_PORT:+set}"},
			0, []string{"[rank 0] gpu=3 port=set", "[rank 1] gpu=5 port=set"}, nil, "launch:", 30, 0},
		{"fail fast: rank 1 exits 7, rank 0 is stopped",
			[]string{"-nproc", "2", "-grace", "2s", "--", "sh", "-c", "if [ $RANK = 1 ]; then echo boom >&2; exit 7; fi; sleep 60"},
			1, nil, []string{"[rank 1] boom", "launch: rank 1 failed (exit status 7)"}, "", 20, 0},
		{"fail fast: a worker that ignores SIGTERM is killed after the grace period",
			[]string{"-nproc", "2", "-grace", "1s", "--", "sh", "-c",
				"if [ $RANK = 0 ]; then i=0; while [ ! -e " + trapped + " ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done; exit 3; fi; trap '' TERM; touch " + trapped + "; sleep 60"},
			1, nil, []string{"launch: rank 0 failed (exit status 3)"}, "", 20, 1},
		{"no -nproc, no program", nil, 2, nil,
			[]string{"launch: -nproc must be at least 1, got 0", "no worker program", "usage: launch -nproc N"}, "", 10, 0},
		{"too few GPUs", []string{"-nproc", "3", "-gpus", "0,1", "--", "true"}, 2, nil,
			[]string{"-gpus lists 2 GPUs for -nproc 3 workers"}, "", 10, 0},
		{"bad GPU index", []string{"-nproc", "1", "-gpus", "x", "--", "true"}, 2, nil,
			[]string{`-gpus: "x" is not a GPU index`}, "", 10, 0},
		{"unknown program", []string{"-nproc", "1", "--", "no-such-worker-program"}, 1, nil,
			[]string{`worker program "no-such-worker-program" is neither on the PATH nor beside launch`}, "", 10, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := launch(t, bin, c.args...)
			if r.code != c.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, c.code, r.stdout, r.stderr)
			}
			lines := map[string]bool{}
			for _, l := range strings.Split(r.stdout, "\n") {
				lines[l] = true
			}
			for _, w := range c.stdout {
				if !lines[w] {
					t.Errorf("stdout lacks the line %q:\n%s", w, r.stdout)
				}
			}
			for _, w := range c.stderr {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			if c.notStderr != "" && strings.Contains(r.stderr, c.notStderr) {
				t.Errorf("stderr should not mention %q:\n%s", c.notStderr, r.stderr)
			}
			if r.took.Seconds() > c.maxSeconds || r.took.Seconds() < c.minSeconds {
				t.Errorf("took %v, want %v to %vs", r.took, c.minSeconds, c.maxSeconds)
			}
		})
	}
}

// SIGTERM (and SIGINT) to launch reach every worker once; workers that
// exit cleanly on it leave launch exiting 0.
func TestLaunchForwardsSignals(t *testing.T) {
	bin := buildLaunch(t)
	cmd := exec.Command(bin, "-nproc", "2", "--", "sh", "-c",
		`trap 'echo got TERM; exit 0' TERM; echo ready; while :; do sleep 0.05; done`)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	var lines []string
	ready := 0
	for ready < 2 && sc.Scan() {
		lines = append(lines, sc.Text())
		if strings.HasSuffix(sc.Text(), "ready") {
			ready++
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("launch: %v\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("launch did not exit 20 s after SIGTERM")
	}
	got := strings.Join(lines, "\n")
	for _, w := range []string{"[rank 0] got TERM", "[rank 1] got TERM"} {
		if strings.Count(got, w) != 1 {
			t.Errorf("stdout should hold %q once:\n%s", w, got)
		}
	}
	if !strings.Contains(stderr.String(), "launch: terminated: forwarding it to the workers") {
		t.Errorf("stderr: %s", stderr.String())
	}
}
