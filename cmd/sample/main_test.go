package main

import (
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mollify/mollify/internal/testenv"
	"github.com/mollify/mollify/nn"
)

func TestMain(m *testing.M) {
	nn.SetThreads(1)
	os.Exit(m.Run())
}

// Trains a tiny Glow on MNIST with cmd/train, then samples it.
func TestSampleFromCheckpoint(t *testing.T) {
	testenv.NeedGoTool(t) // `go run ../train`
	dir := filepath.Join(t.TempDir(), "run")
	train := exec.Command("go", "run", "../train", "-config", "glow_cifar10", "-run-dir", dir,
		"--set", "data.dataset=mnist", "--set", "data.channels=1", "--set", "data.image_size=32",
		"--set", "model.glow.levels=2", "--set", "model.glow.depth=1", "--set", "model.glow.hidden=8",
		"--set", "run.iterations=4", "--set", "data.batch_size=4", "--set", "eval.every=0", "--set", "eval.bpd_samples=8",
		"--set", "output.samples_every=0", "--set", "output.num_samples=8", "--set", "run.device=cpu", "--set", "eval.fid_samples=0")
	if out, err := train.CombinedOutput(); err != nil {
		t.Fatalf("training failed: %v\n%s", err, out)
	}
	out := filepath.Join(t.TempDir(), "s")
	if err := run([]string{"-run", dir, "-n", "3", "-out", out, "-device", "cpu"}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		f, err := os.Open(filepath.Join(out, "00000"+string(rune('0'+i))+".png"))
		if err != nil {
			t.Fatal(err)
		}
		c, err := png.DecodeConfig(f)
		f.Close()
		if err != nil || c.Width != 32 || c.Height != 32 {
			t.Errorf("sample %d: %v %dx%d", i, err, c.Width, c.Height)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{}, "-run RUN_DIR is required"},
		{[]string{"-run", t.TempDir()}, "config"},
		{[]string{"-run", dir, "-n", "0"}, "-n must be positive"},
		{[]string{"-run", dir, "-checkpoint", filepath.Join(dir, "config.yaml"), "-device", "cpu"}, "not a safetensors file"},
	} {
		if err := run(c.args); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
	}
}
