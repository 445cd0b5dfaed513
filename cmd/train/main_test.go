package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mollify/mollify/nn"
)

func TestMain(m *testing.M) {
	if os.Getenv("MOLLIFY_TRAIN_MAIN") == "1" {
		main()
		return
	}
	nn.SetThreads(1)
	os.Exit(m.Run())
}

// small makes a run short enough for a test.
var small = []string{"--set", "run.iterations=120", "--set", "run.log_every=60", "--set", "eval.every=60",
	"--set", "eval.mmd_samples=500", "--set", "data.train_size=1000", "--set", "data.test_size=500",
	"--set", "output.samples_every=60", "--set", "output.checkpoint_every=60"}

func TestBadInputIsAClearError(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-config", "demo", "--set", "optim.lrr=1"}, "optim.lrr"},
		{[]string{"-config", "demo", "--set", "mollification.schedule=wiggly"}, "wiggly"},
		{[]string{"-config", "demo", "--set", "optim.lr=-1"}, "optim.lr"},
		{[]string{"-config", "demo", "--set", "mollification.fraction=1.5"}, "mollification.fraction"},
		{[]string{"-config", "no_such_config"}, "no_such_config"},
		{[]string{"-config", "demo", "--set", "mollification.kind=blur"}, "blur"},
		{[]string{"-config", "demo", "stray"}, "unexpected arguments"},
	} {
		args := append(append([]string{}, c.args...), "-run-dir", filepath.Join(dir, "x"))
		err := run(args)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("train %v: error %v, want it to mention %q", c.args, err, c.want)
		}
	}
}

// The binary exits 1 with a one-line message, not a panic trace.
func TestExitCodeWithoutPanic(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-config", "demo", "--set", "optim.lr=-1", "-run-dir", filepath.Join(t.TempDir(), "r"))
	cmd.Env = append(os.Environ(), "MOLLIFY_TRAIN_MAIN=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1", err)
	}
	if s := stderr.String(); !strings.HasPrefix(s, "train: ") || strings.Contains(s, "goroutine") || strings.Contains(s, "panic") {
		t.Errorf("stderr should be a clear message:\n%s", s)
	}
}

// A short 2-D run writes its folder; rerunning it with -resume and the same
// command is a no-op, and a different config is refused.
func TestRunAndIdempotentResume(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	args := append([]string{"-config", "demo", "-resume", dir}, small...)
	if err := run(args); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"config.yaml", "metrics.jsonl", "summary.json", "env.json", "density.png", "progression.png", "curves.png",
		"checkpoints/ckpt-000000120.safetensors"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("run folder lacks %s", f)
		}
	}
	var s struct {
		Steps     int     `json:"steps"`
		MMD2Paper float64 `json:"mmd2_paper_kernel"`
		MMD2Unit  float64 `json:"mmd2_unit_kernel"`
	}
	b, _ := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err := json.Unmarshal(b, &s); err != nil || s.Steps != 120 || !(s.MMD2Unit > 0) || s.MMD2Paper != s.MMD2Unit*1e-4 {
		t.Errorf("summary %+v (%v)", s, err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "metrics.jsonl"))
	if err := run(args); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "metrics.jsonl"))
	if !bytes.Equal(before, after) {
		t.Error("resuming a finished run trained again")
	}
	other := append([]string{"-config", "demo", "-resume", dir, "--set", "optim.lr=0.1"}, small...)
	if err := run(other); err == nil || !strings.Contains(err.Error(), "different config") {
		t.Errorf("resume with another config: %v", err)
	}
}

// Image runs on real MNIST (from the GoMNIST module), padded to 32×32:
// validation metrics, sample grids and the samples-over-training strip,
// with Gaussian and blur mollification.
func TestImageRuns(t *testing.T) {
	tiny := []string{"--set", "data.dataset=mnist", "--set", "data.channels=1", "--set", "data.image_size=32",
		"--set", "run.iterations=20", "--set", "data.batch_size=8", "--set", "eval.every=10", "--set", "eval.bpd_samples=32",
		"--set", "output.samples_every=10", "--set", "output.num_samples=16", "--set", "run.log_every=10", "--set", "run.device=cpu",
		"--set", "output.checkpoint_every=10", "--set", "eval.fid_samples=0"}
	for _, c := range []struct {
		name   string
		config string
		sets   []string
		metric string
	}{
		{"glow-gaussian", "glow_cifar10", []string{"--set", "model.glow.levels=2", "--set", "model.glow.depth=1", "--set", "model.glow.hidden=8", "--set", "mollification.iterations=10"}, `"bpd"`},
		{"glow-blur", "glow_cifar10", []string{"--set", "model.glow.levels=2", "--set", "model.glow.depth=1", "--set", "model.glow.hidden=8", "--set", "mollification.kind=blur", "--set", "mollification.iterations=10"}, `"blur_sigma"`},
		{"vae", "vae_cifar10", []string{"--set", "model.vae.latent=8"}, `"elbo"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "run")
			args := append(append([]string{"-config", c.config, "-run-dir", dir}, tiny...), c.sets...)
			if err := run(args); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"samples/step-000000010.png", "samples/step-000000020.png", "samples_over_training.png", "checkpoints/ckpt-000000020.safetensors"} {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Errorf("run folder lacks %s", f)
				}
			}
			m, _ := os.ReadFile(filepath.Join(dir, "metrics.jsonl"))
			if !bytes.Contains(m, []byte(`"kind":"eval"`)) || !bytes.Contains(m, []byte(c.metric)) || !bytes.Contains(m, []byte(`"data_wait_ms"`)) {
				t.Errorf("metrics lack eval records or %s:\n%s", c.metric, m)
			}
		})
	}
}
