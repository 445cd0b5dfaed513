package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mollify/mollify/internal/testenv"
)

// buildTrain builds cmd/train into a temporary folder, as a user's
// `go build ./cmd/train` would.
func buildTrain(t *testing.T) string {
	t.Helper()
	testenv.NeedGoTool(t)
	bin := filepath.Join(t.TempDir(), "train")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// Bad input, typed the way a user types it, without -run-dir (issue 11,
// defect 1: each of these used to end in a SIGSEGV trace): exit status 1,
// one "train: " message naming the problem, no goroutine trace, and no run
// folder (the working directory stays as it was).
func TestBadInputFromTheCommandLine(t *testing.T) {
	bin := buildTrain(t)
	sweepFile := map[string]string{"s.yaml": "base: demo\naxes:\n  run.seed: [0, 1]\n"}
	for _, c := range []struct {
		name  string
		args  []string
		files map[string]string // written into the working directory first
		want  []string
	}{
		{"missing file", []string{"-config", "missing.yaml"}, nil, []string{`config "missing.yaml" not found`}},
		{"negative lr", []string{"-config", "demo", "--set", "optim.lr=-1"}, nil, []string{"optim.lr must be a finite number > 0, got -1"}},
		{"fraction above 1", []string{"-config", "demo", "--set", "mollification.fraction=1.5"}, nil, []string{"mollification.fraction must be in [0, 1], got 1.5"}},
		{"unknown key", []string{"-config", "demo", "--set", "nosuch.key=1"}, nil, []string{`unknown key "nosuch.key"`}},
		{"broken YAML", []string{"-config", "broken.yaml"}, map[string]string{"broken.yaml": "run: {iterations: 10\noptim: [\n"}, []string{"broken.yaml"}},
		{"two problems", []string{"-config", "demo", "--set", "optim.lr=-1", "--set", "mollification.fraction=1.5"}, nil,
			[]string{"optim.lr must be", "mollification.fraction must be"}},
		{"bce with Gaussian mollification", []string{"-config", "vae_mnist", "--set", "model.vae.recon=bce"}, nil, []string{"unbounded below"}},
		{"stray argument", []string{"-config", "demo", "stray"}, nil, []string{"unexpected arguments"}},
		{"CUDA graphs on the CPU", []string{"-config", "demo", "--set", "run.device=cpu", "--set", "run.cuda_graph=on"}, nil,
			[]string{"run.cuda_graph=on needs a CUDA device, but run.device is cpu"}},
		{"sweep index out of range", []string{"-sweep", "s.yaml", "-index", "2"}, sweepFile,
			[]string{"-index 2 is out of range: sweep s.yaml has 2 runs (indices 0 to 1"}},
		{"sweep and config", []string{"-sweep", "s.yaml", "-index", "0", "-config", "demo"}, sweepFile, []string{"-sweep picks the config and the run folder: drop -config"}},
		{"sweep and resume", []string{"-sweep", "s.yaml", "-index", "0", "-resume", "runs/x"}, sweepFile, []string{"drop -config, -resume and -run-dir"}},
		{"index without sweep", []string{"-index", "1"}, nil, []string{"-index needs -sweep FILE"}},
		{"sweep without index", []string{"-sweep", "s.yaml"}, sweepFile, []string{"-sweep s.yaml needs -index I"}},
		{"sweep with a result-changing --set", []string{"-sweep", "s.yaml", "-index", "1", "--set", "optim.lr=1e-3"}, sweepFile,
			[]string{"--set optim.lr=1e-3 would make run 1 of s.yaml a different run", "put other overrides in the sweep file"}},
		{"sweep file with problems", []string{"-sweep", "bad.yaml", "-index", "0"}, map[string]string{"bad.yaml": "base: demo\naxes:\n  run.sed: [0]\n  optim.lr: []\n"},
			[]string{"sweep bad.yaml: 2 problem(s)", `unknown key "run.sed" (did you mean "run.seed"?)`, "axes.optim.lr is empty"}},
		{"CUDA graphs where auto resolves to the CPU", []string{"-config", "demo", "--set", "run.device=auto", "--set", "run.cuda_graph=on"}, nil,
			[]string{"run.cuda_graph=on, but the step cannot be captured: the device is the CPU"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			wd := t.TempDir()
			for name, body := range c.files {
				if err := os.WriteFile(filepath.Join(wd, name), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.Command(bin, c.args...)
			cmd.Dir = wd
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 1 {
				t.Fatalf("train %v: %v, want exit status 1\nstderr:\n%s", c.args, err, stderr.String())
			}
			msg := stderr.String()
			if !strings.HasPrefix(msg, "train: ") || strings.Contains(msg, "goroutine") || strings.Contains(msg, "panic") || strings.Contains(msg, "SIGSEGV") {
				t.Errorf("train %v: stderr should be one clear message:\n%s", c.args, msg)
			}
			if strings.Count(msg, "train: ") != 1 {
				t.Errorf("train %v: want one error message, got:\n%s", c.args, msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("train %v: stderr lacks %q:\n%s", c.args, w, msg)
				}
			}
			entries, _ := os.ReadDir(wd)
			if len(entries) != len(c.files) {
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				t.Errorf("train %v left %v in the working directory; a bad config must create no run folder", c.args, names)
			}
		})
	}
}
