package main

import (
	"strings"
	"testing"
)

// -ntasks N asks for N processes per run: --ntasks with --gpus-per-task
// instead of --gres, and srun starting the ranks of one data-parallel run.
func TestSlurmSeveralTasksPerRunGolden(t *testing.T) {
	wd := inDir(t, "golden.yaml")
	out, stderr, code := sweepCmd(t, wd, "slurm", "golden.yaml", "-o", "-", "-partition", "gpu", "-gpus", "1", "-cpus", "8", "-ntasks", "4")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	checkGolden(t, "slurm_ntasks.sbatch.golden", []byte(out))
	for _, want := range []string{"#SBATCH --ntasks=4", "#SBATCH --gpus-per-task=1", `exec srun --kill-on-bad-exit=1 train -sweep golden.yaml -index "$SLURM_ARRAY_TASK_ID"`} {
		if !strings.Contains(out, want) {
			t.Errorf("script lacks %q", want)
		}
	}
	if strings.Contains(out, "--gres") {
		t.Error("with -ntasks the GPUs are per task (--gpus-per-task), not --gres per node")
	}
	_, stderr, code = sweepCmd(t, wd, "slurm", "golden.yaml", "-ntasks", "0")
	if code != 1 || !strings.Contains(stderr, "-ntasks must be >= 1") {
		t.Errorf("-ntasks 0: exit %d, %q", code, stderr)
	}
}
