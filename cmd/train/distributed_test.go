package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mollify/mollify/internal/testenv"
	"github.com/mollify/mollify/nn"
	"github.com/mollify/mollify/train"
	"github.com/sugarme/gotch/ts"
)

// buildLaunchAndTrain builds cmd/launch and cmd/train side by side, as
// `go build -o bin/ ./cmd/launch ./cmd/train` would.
func buildLaunchAndTrain(t *testing.T) (launch, trainBin string) {
	t.Helper()
	if !ts.C10dAvailable() {
		t.Skip("libtch has no c10d (see build/stubs.txt)")
	}
	testenv.NeedGoTool(t)
	dir := t.TempDir()
	out, err := exec.Command("go", "build", "-o", dir+"/", "../launch", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return filepath.Join(dir, "launch"), filepath.Join(dir, "train")
}

// distSets is 40 steps of the 2-D RealNVP (no batch norm) on a global
// batch of 256, mollified for the first 20, with gradient clipping.
var distSets = []string{"-config", "realnvp_mog", "--set", "run.iterations=40", "--set", "run.device=cpu",
	"--set", "eval.every=0", "--set", "output.samples_every=0", "--set", "output.plots=false",
	"--set", "output.checkpoint_every=10", "--set", "output.keep=0", "--set", "run.log_every=10",
	"--set", "eval.mmd_samples=200", "--set", "output.num_samples=100", "--set", "data.train_size=2000",
	"--set", "data.test_size=200", "--set", "run.tensorboard=false", "--set", "optim.grad_clip=1",
	"--set", "distributed.heartbeat_seconds=3"}

func runCmd(t *testing.T, dir, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, bin, args...)
	c.Dir = dir
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// lastCheckpoint reads a run's newest checkpoint: its tensors (in the
// caller's scope) and metadata.
func lastCheckpoint(t *testing.T, dir string) (map[string]*ts.Tensor, map[string]string) {
	t.Helper()
	all, err := train.Checkpoints(dir)
	if err != nil || len(all) == 0 {
		t.Fatalf("%s: no checkpoint (%v)", dir, err)
	}
	tensors, meta, err := nn.LoadTensors(all[len(all)-1])
	if err != nil {
		t.Fatal(err)
	}
	return tensors, meta
}

// maxModelDiff is the largest |a−b|/max(1,|a|) over the model's
// parameters and buffers of two checkpoints.
func maxModelDiff(t *testing.T, a, b map[string]*ts.Tensor) float64 {
	t.Helper()
	worst, n := 0.0, 0
	for name, x := range a {
		if !strings.HasPrefix(name, "model.") {
			continue
		}
		y, ok := b[name]
		if !ok {
			t.Fatalf("%s is missing", name)
		}
		xv, yv := x.Float64Values(), y.Float64Values()
		for i := range xv {
			worst = math.Max(worst, math.Abs(xv[i]-yv[i])/math.Max(1, math.Abs(xv[i])))
		}
		n++
	}
	if n == 0 {
		t.Fatal("no model tensors in the checkpoint")
	}
	return worst
}

// The "done when" of issue 16: two processes over Gloo on 127.0.0.1,
// started by cmd/launch, train 40 steps of the 2-D RealNVP (mollified,
// clipped) on halves of each batch and end with every parameter within
// 1e-6·max(1,|p|) of one process on the whole batch. Rank 0 alone writes
// the run folder, with every rank's state in its checkpoints.
func TestLaunchedRanksMatchOneProcess(t *testing.T) {
	launch, bin := buildLaunchAndTrain(t)
	work := t.TempDir()
	runCmd(t, work, bin, append(distSets, "-run-dir", "one")...)
	out := runCmd(t, work, launch, append([]string{"-nproc", "2", "--", bin}, append(distSets, "-run-dir", "two")...)...)
	if !strings.Contains(out, "[rank 0] run two: realnvp2d on cpu") || strings.Contains(out, "[rank 1] run") {
		t.Errorf("rank 0 alone should log the run line:\n%s", out)
	}
	if !strings.Contains(out, "rank 0 of 2 (torchrun, gloo backend), 128 examples per rank of the global batch 256") {
		t.Errorf("the run line does not describe the group:\n%s", out)
	}
	sc := ts.NewScope()
	defer sc.Close()
	one, _ := lastCheckpoint(t, filepath.Join(work, "one"))
	two, meta := lastCheckpoint(t, filepath.Join(work, "two"))
	if d := maxModelDiff(t, one, two); d > 1e-6 {
		t.Errorf("the 2-process run ends %.3g (relative) away from the 1-process run", d)
	} else {
		t.Logf("largest relative parameter difference: %.3g", d)
	}
	raw, err := base64.StdEncoding.DecodeString(meta["ranks"])
	if err != nil {
		t.Fatal(err)
	}
	var ranks []struct {
		Rank, Step int
		RNG        map[string][]byte
	}
	if err := json.Unmarshal(raw, &ranks); err != nil {
		t.Fatal(err)
	}
	if len(ranks) != 2 || ranks[1].Rank != 1 || ranks[1].Step != 40 || len(ranks[1].RNG["rng.cpu"]) == 0 {
		t.Errorf("the checkpoint's ranks: %+v", ranks)
	}
	// The logged losses are the ranks' mean: the one-process run's.
	rowsOne := testenv.ReadRunFolder(t, filepath.Join(work, "one")).Rows
	rowsTwo := testenv.ReadRunFolder(t, filepath.Join(work, "two")).Rows
	for _, k := range []string{"train@10", "train@40"} {
		a, b := rowsOne[k]["loss"].(float64), rowsTwo[k]["loss"].(float64)
		if math.Abs(a-b) > 1e-5*math.Abs(a) {
			t.Errorf("%s: loss %v with 2 processes, %v with 1", k, b, a)
		}
	}
}

// A distributed run resumed from a checkpoint in its mollified phase (every
// rank's noise stream and data position restored) ends as the same run
// uninterrupted: same parameters, same metrics rows and files.
func TestLaunchedRunResumes(t *testing.T) {
	launch, bin := buildLaunchAndTrain(t)
	work := t.TempDir()
	two := func(args ...string) string {
		return runCmd(t, work, launch, append([]string{"-nproc", "2", "--", bin}, args...)...)
	}
	two(append(distSets, "-run-dir", "straight")...)
	two(append(distSets, "-run-dir", "resumed")...)
	// Stand for a job killed after its step-10 checkpoint.
	dir := filepath.Join(work, "resumed")
	for _, name := range []string{"ckpt-000000020.safetensors", "ckpt-000000030.safetensors", "ckpt-000000040.safetensors"} {
		if err := os.Remove(filepath.Join(dir, "checkpoints", name)); err != nil {
			t.Fatal(err)
		}
	}
	os.Remove(filepath.Join(dir, "done.json"))
	out := two("-resume", "resumed")
	if !strings.Contains(out, "[rank 0] resuming resumed at step 10") {
		t.Errorf("no resume line:\n%s", out)
	}
	sc := ts.NewScope()
	defer sc.Close()
	a, _ := lastCheckpoint(t, filepath.Join(work, "straight"))
	b, _ := lastCheckpoint(t, dir)
	if d := maxModelDiff(t, a, b); d != 0 {
		t.Errorf("the resumed run ends %.3g (relative) away from the uninterrupted one", d)
	}
	testenv.CompareRunFolders(t, testenv.ReadRunFolder(t, filepath.Join(work, "straight")), testenv.ReadRunFolder(t, dir))
}

// Two workers started as torchrun would start them; SIGKILL one while rank
// 0 evaluates (MOLLIFY_TEST_EVAL_DELAY stretches the step-20 evaluation,
// so the other rank waits in the next all-reduce, or rank 0 sleeps while
// its peer is gone). The survivor exits 1 within 60 s with one "train:"
// line, and the last checkpoint (step 10) still loads: `train -resume`
// finishes the run from it.
func TestKilledRankStopsTheOther(t *testing.T) {
	_, bin := buildLaunchAndTrain(t)
	for _, victim := range []int{1, 0} {
		t.Run("kill rank "+strconv.Itoa(victim), func(t *testing.T) {
			work := t.TempDir()
			port := testenv.FreePort(t)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			args := append(append([]string{}, distSets...), "--set", "eval.every=20", "-run-dir", "run")
			cmds := make([]*exec.Cmd, 2)
			stderr := make([]*bytes.Buffer, 2)
			evaluating := make(chan struct{})
			for r := range cmds {
				c := exec.CommandContext(ctx, bin, args...)
				c.Dir = work
				c.Env = append(os.Environ(), "RANK="+strconv.Itoa(r), "WORLD_SIZE=2", "LOCAL_RANK="+strconv.Itoa(r),
					"MASTER_ADDR=127.0.0.1", "MASTER_PORT="+port, "OMP_NUM_THREADS=1", evalDelayVar+"=40s")
				stderr[r] = &bytes.Buffer{}
				if r == 0 {
					pipe, err := c.StderrPipe()
					if err != nil {
						t.Fatal(err)
					}
					go func() {
						s := bufio.NewScanner(pipe)
						once := false
						for s.Scan() {
							stderr[0].WriteString(s.Text() + "\n")
							if !once && strings.HasPrefix(s.Text(), "evaluating at step 20") {
								once = true
								close(evaluating)
							}
						}
					}()
				} else {
					c.Stderr = stderr[r]
				}
				if err := c.Start(); err != nil {
					t.Fatal(err)
				}
				cmds[r] = c
			}
			select {
			case <-evaluating:
			case <-time.After(60 * time.Second):
				for _, c := range cmds {
					c.Process.Kill()
				}
				t.Fatalf("rank 0 never reached its evaluation:\n%s", stderr[0])
			}
			survivor := 1 - victim
			cmds[victim].Process.Signal(syscall.SIGKILL)
			killed := time.Now()
			cmds[victim].Wait()
			err := cmds[survivor].Wait()
			took := time.Since(killed)
			time.Sleep(50 * time.Millisecond) // the scanner's last lines
			if err == nil {
				t.Fatalf("rank %d exited 0 after rank %d was killed:\n%s", survivor, victim, stderr[survivor])
			}
			if took > 60*time.Second {
				t.Errorf("rank %d took %s to exit", survivor, took)
			}
			var errLines []string
			for _, line := range strings.Split(strings.TrimSpace(stderr[survivor].String()), "\n") {
				if strings.HasPrefix(line, "train:") || strings.Contains(line, "goroutine") || strings.Contains(line, "frame #") {
					errLines = append(errLines, line)
				}
			}
			if len(errLines) != 1 || !strings.HasPrefix(errLines[0], "train: rank "+strconv.Itoa(survivor)+": ") {
				t.Errorf("want one \"train: rank %d: ...\" line, got %q in:\n%s", survivor, errLines, stderr[survivor])
			}
			t.Logf("rank %d exited %v %s after the kill: %s", survivor, err, took.Round(10*time.Millisecond), errLines)
			if left, _ := filepath.Glob(filepath.Join(work, "run", "checkpoints", ".*tmp*")); len(left) > 0 {
				t.Errorf("half-written checkpoints left: %v", left)
			}
			all, _ := train.Checkpoints(filepath.Join(work, "run"))
			if len(all) == 0 || !strings.HasSuffix(all[len(all)-1], "ckpt-000000010.safetensors") {
				t.Fatalf("checkpoints %v, want the step-10 one last", all)
			}
			out := runCmd(t, work, bin, "-resume", "run")
			if !strings.Contains(out, "resuming run at step 10") || !strings.Contains(out, "done: 40 steps") {
				t.Errorf("resuming from the last checkpoint:\n%s", out)
			}
		})
	}
}
