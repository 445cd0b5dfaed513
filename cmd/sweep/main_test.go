package main

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/mollify/mollify/experiments/sweep"
	"github.com/mollify/mollify/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
	buildOut  []byte
)

// binaries builds cmd/train and cmd/sweep into one folder, as a user's
// `go build -o bin/ ./cmd/train ./cmd/sweep` does, once per test binary.
func binaries(t *testing.T) (sweep, train string) {
	t.Helper()
	testenv.NeedGoTool(t)
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "sweep-bin-"); buildErr != nil {
			return
		}
		buildOut, buildErr = exec.Command("go", "build", "-o", binDir+"/", ".", "../train").CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("go build: %v\n%s", buildErr, buildOut)
	}
	return filepath.Join(binDir, "sweep"), filepath.Join(binDir, "train")
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// inDir copies testdata files into a new working directory.
func inDir(t *testing.T, files ...string) string {
	t.Helper()
	wd := t.TempDir()
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(wd, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return wd
}

// sweepCmd runs the sweep binary in wd and returns stdout, stderr and the
// exit status.
func sweepCmd(t *testing.T, wd string, args ...string) (string, string, int) {
	t.Helper()
	bin, _ := binaries(t)
	cmd := exec.Command(bin, args...)
	cmd.Dir = wd
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/sweep -run Golden -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the generated file (go test ./cmd/sweep -run Golden -update rewrites it after a deliberate change):\n%s", path, got)
	}
}

func TestSlurmGolden(t *testing.T) {
	wd := inDir(t, "golden.yaml")
	out, stderr, code := sweepCmd(t, wd, "slurm", "golden.yaml", "-partition", "gpu", "-gpus", "1", "-cpus", "8", "-mem", "32G", "-time", "48:00:00", "-parallel", "4")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	script := filepath.Join("runs", "sweeps", "golden", "sweep.sbatch")
	if !strings.Contains(out, "submit with: sbatch "+script) {
		t.Errorf("stdout: %s", out)
	}
	b, err := os.ReadFile(filepath.Join(wd, script))
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "slurm.sbatch.golden", b)
	for _, want := range []string{"#SBATCH --array=0-11%4", "#SBATCH --requeue", `-index "$SLURM_ARRAY_TASK_ID"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("script lacks %q", want)
		}
	}
	// The Slurm log folder must exist before a task starts: the manifest is written with it.
	if _, err := os.Stat(filepath.Join(wd, "runs", "sweeps", "golden", "manifest.jsonl")); err != nil {
		t.Error(err)
	}
}

func TestK8sGolden(t *testing.T) {
	wd := inDir(t, "golden.yaml")
	out, stderr, code := sweepCmd(t, wd, "k8s", "golden.yaml", "-o", "-", "-image", "registry.example/mollify:1", "-gpus", "1", "-cpus", "8", "-mem", "32Gi", "-parallel", "4")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	checkGolden(t, "k8s.yaml.golden", []byte(out))

	// The fields of the batch/v1 Job schema an Indexed Job needs.
	var job struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
		Spec struct {
			CompletionMode       string `yaml:"completionMode"`
			Completions          *int   `yaml:"completions"`
			Parallelism          *int   `yaml:"parallelism"`
			BackoffLimitPerIndex *int   `yaml:"backoffLimitPerIndex"`
			Template             struct {
				Spec struct {
					RestartPolicy string `yaml:"restartPolicy"`
					Containers    []struct {
						Name    string   `yaml:"name"`
						Image   string   `yaml:"image"`
						Command []string `yaml:"command"`
					} `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	if err := yaml.Unmarshal([]byte(out), &job); err != nil {
		t.Fatalf("the manifest is not YAML: %v", err)
	}
	s := job.Spec
	switch {
	case job.APIVersion != "batch/v1" || job.Kind != "Job":
		t.Errorf("apiVersion %q kind %q", job.APIVersion, job.Kind)
	case job.Metadata.Name != "sweep-golden":
		t.Errorf("name %q", job.Metadata.Name)
	case s.CompletionMode != "Indexed":
		t.Errorf("completionMode %q", s.CompletionMode)
	case s.Completions == nil || *s.Completions != 12 || s.Parallelism == nil || *s.Parallelism != 4:
		t.Errorf("completions %v parallelism %v, want 12 and 4", s.Completions, s.Parallelism)
	case s.BackoffLimitPerIndex == nil || s.Template.Spec.RestartPolicy != "Never":
		t.Errorf("backoffLimitPerIndex needs restartPolicy Never, got %q", s.Template.Spec.RestartPolicy)
	case len(s.Template.Spec.Containers) != 1:
		t.Fatalf("%d containers", len(s.Template.Spec.Containers))
	}
	c := s.Template.Spec.Containers[0]
	cmd := strings.Join(c.Command, " ")
	if c.Image != "registry.example/mollify:1" || !strings.Contains(cmd, `train -sweep golden.yaml -index "$JOB_COMPLETION_INDEX"`) {
		t.Errorf("container %+v", c)
	}
}

// Bad input typed as a user types it: exit status 1, one "sweep: "
// message with every problem, nothing written.
func TestBadInputFromTheCommandLine(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"missing file", []string{"plan", "nosuch.yaml"}, []string{"open nosuch.yaml: no such file", "give the path of a sweep file"}},
		{"every problem of the file", []string{"run", "bad.yaml"}, []string{"2 problem(s)",
			`axes.run.sed: unknown key "run.sed" (did you mean "run.seed"?)`, "axes.optim.lr is empty"}},
		{"no subcommand", nil, []string{"no subcommand", "usage:"}},
		{"unknown subcommand", []string{"launch", "bad.yaml"}, []string{`unknown subcommand "launch"`}},
		{"no file", []string{"status"}, []string{"status: no sweep file"}},
		{"negative jobs", []string{"run", "tiny.yaml", "-jobs", "-1"}, []string{"-jobs -1: want a number of workers >= 1"}},
		{"bad gpu list", []string{"run", "tiny.yaml", "-gpus", "0,x"}, []string{`-gpus "0,x": want GPU indices`}},
		{"missing train binary", []string{"run", "tiny.yaml", "-train", "nosuch/train"}, []string{"-train nosuch/train", "no such file"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			wd := inDir(t, "bad.yaml", "tiny.yaml")
			_, stderr, code := sweepCmd(t, wd, c.args...)
			if code != 1 {
				t.Fatalf("sweep %v: exit %d, want 1\n%s", c.args, code, stderr)
			}
			if !strings.HasPrefix(stderr, "sweep: ") || strings.Count(stderr, "sweep: ") != 1 || strings.Contains(stderr, "goroutine") {
				t.Errorf("sweep %v: want one message:\n%s", c.args, stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("sweep %v: stderr lacks %q:\n%s", c.args, w, stderr)
				}
			}
			if entries, _ := os.ReadDir(wd); len(entries) != 2 {
				t.Errorf("sweep %v wrote into the working directory: %v", c.args, entries)
			}
		})
	}
}

// A worker's command line and environment: the GPU through
// CUDA_VISIBLE_DEVICES and cuda:0, threads from -threads over the run's
// run.threads over the share of the CPUs.
func TestWorkerCommand(t *testing.T) {
	s, err := sweep.Load("testdata/golden.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r := s.Runs()[3]
	own := r
	cfg := *r.Config
	cfg.Run.Threads = 3
	own.Config = &cfg
	base := []string{"-sweep", "testdata/golden.yaml", "-index", "3"}
	for _, c := range []struct {
		name     string
		w        worker
		run      sweep.Run
		args     []string
		env      []string
		notInEnv string
	}{
		{"gpu", worker{gpu: "2"}, r, append(base, "--set", "run.device=cuda:0"), []string{"CUDA_VISIBLE_DEVICES=2"}, "OMP_NUM_THREADS="},
		{"cpu share", worker{threads: 4}, r, append(base, "--set", "run.threads=4"), []string{"OMP_NUM_THREADS=4", "MKL_NUM_THREADS=4"}, "CUDA_VISIBLE_DEVICES="},
		{"run's own threads", worker{threads: 4}, own, append(base, "--set", "run.threads=3"), []string{"OMP_NUM_THREADS=3"}, ""},
		{"-threads wins", worker{threads: 4, explicit: true}, own, append(base, "--set", "run.threads=4"), []string{"OMP_NUM_THREADS=4"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("CUDA_VISIBLE_DEVICES", "")
			os.Unsetenv("CUDA_VISIBLE_DEVICES")
			t.Setenv("OMP_NUM_THREADS", "")
			os.Unsetenv("OMP_NUM_THREADS")
			if got := c.w.args(s, c.run); strings.Join(got, " ") != strings.Join(c.args, " ") {
				t.Errorf("args %v, want %v", got, c.args)
			}
			env := strings.Join(c.w.env(c.run), "\n") + "\n"
			for _, e := range c.env {
				if !strings.Contains(env, e+"\n") {
					t.Errorf("env lacks %s", e)
				}
			}
			if c.notInEnv != "" && strings.Contains(env, c.notInEnv) {
				t.Errorf("env has %s", c.notInEnv)
			}
		})
	}
}
