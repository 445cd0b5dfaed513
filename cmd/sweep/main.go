// Command sweep plans, runs and reports on sweep files (sweeps/*.yaml: a
// base config and axes of overrides; the format, the run ids and the
// folder layout are in the experiments/sweep package doc and docs/sweeps.md):
//
//	sweep plan sweeps/toy.yaml                  # the runs and their folders
//	sweep run sweeps/toy.yaml -jobs 2           # two CPU workers, threads split
//	sweep run sweeps/table1_cifar10.yaml -gpus 0,1,2,3
//	sweep status sweeps/toy.yaml                # done, running, failed, interrupted, pending
//	sweep slurm sweeps/table1_cifar10.yaml -partition gpu -gpus 1 -time 48:00:00
//	sweep k8s sweeps/table1_cifar10.yaml -image registry/mollify:latest
//
// Every run is trained by a `train -sweep FILE -index I` process, the same
// command the Slurm array tasks and the Kubernetes Indexed Job pods run, so
// all of them leave the same folder OUT_DIR/ID. That command resumes an
// interrupted run from its newest checkpoint and returns at once for a
// done one, so rerunning `sweep run` (or a requeued task) after a kill
// finishes each run exactly once.
//
// `run` finds the train binary given by -train, else the one next to the
// sweep binary (go build -o bin/ ./cmd/train ./cmd/sweep), else train on
// the PATH. With -gpus, each worker gets one GPU through
// CUDA_VISIBLE_DEVICES and --set run.device=cuda:0; without, each of the
// -jobs workers gets -threads CPU threads (default: the run's run.threads,
// else the CPUs divided by the jobs) through run.threads and
// OMP_NUM_THREADS. It skips done runs,
// draws one progress line for the whole sweep on stderr, and exits with
// status 1, listing them, if any run failed.
//
// This is not a scheduler: for more than one machine use `slurm` or `k8s`,
// which write an `sbatch --array` script and a batch/v1 Indexed Job.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/mollify/mollify/experiments/sweep"
)

const usage = `usage:
  sweep plan FILE
  sweep run FILE [-jobs N] [-gpus 0,1,...] [-threads T] [-train PATH]
  sweep status FILE
  sweep slurm FILE [-o FILE] [-partition P] [-gpus G] [-ntasks N] [-time T] [-cpus C] [-mem M] [-parallel P] [-train PATH]
  sweep k8s FILE [-o FILE] [-image IMG] [-pvc NAME] [-workdir DIR] [-gpus G] [-cpus C] [-mem M] [-parallel P] [-train PATH]
(see docs/sweeps.md)`

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "sweep:", strings.TrimPrefix(err.Error(), "sweep: "))
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("no subcommand\n" + usage)
	}
	cmd, rest := args[0], args[1:]
	fs := flag.NewFlagSet("sweep "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var do func(s *sweep.Sweep) error
	switch cmd {
	case "plan":
		do = func(s *sweep.Sweep) error { return plan(s, stdout) }
	case "status":
		do = func(s *sweep.Sweep) error { return status(s, stdout) }
	case "run":
		o := runFlags(fs)
		do = func(s *sweep.Sweep) error { return runAll(s, o, stderr) }
	case "slurm":
		o := clusterFlags(fs, "slurm")
		do = func(s *sweep.Sweep) error {
			return writeCluster(s, o, slurmScript, "sweep.sbatch", "sbatch", stdout)
		}
	case "k8s":
		o := clusterFlags(fs, "k8s")
		do = func(s *sweep.Sweep) error {
			return writeCluster(s, o, k8sJob, "sweep.k8s.yaml", "kubectl apply -f", stdout)
		}
	case "help", "-h", "-help", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	default:
		return fmt.Errorf("unknown subcommand %q\n%s", cmd, usage)
	}
	// The sweep file comes first (sweep run FILE -jobs 2), but flags
	// before it work too.
	var file string
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		file, rest = rest[0], rest[1:]
	}
	if err := fs.Parse(rest); err != nil {
		return err
	}
	if file == "" && fs.NArg() > 0 {
		file = fs.Arg(0)
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return err
		}
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected arguments %q", cmd, fs.Args())
	}
	if file == "" {
		return fmt.Errorf("%s: no sweep file (e.g. sweep %s sweeps/toy.yaml)", cmd, cmd)
	}
	s, err := sweep.Load(file)
	if err != nil {
		return err
	}
	return do(s)
}

// plan prints the runs and their folders.
func plan(s *sweep.Sweep, w io.Writer) error {
	fmt.Fprintf(w, "sweep %s: %d runs in %s\n", s.Path, len(s.Runs()), s.OutDir)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "index\tfolder\tbase\t%s\n", strings.Join(s.AxisKeys, "\t"))
	for _, r := range s.Runs() {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", r.Index, s.Dir(r), r.Base, strings.Join(labels(s, r), "\t"))
	}
	return tw.Flush()
}

func labels(s *sweep.Sweep, r sweep.Run) []string {
	out := make([]string, len(s.AxisKeys))
	for i, k := range s.AxisKeys {
		out[i] = r.Labels[k]
	}
	return out
}

// status prints one line per run and a count per state.
func status(s *sweep.Sweep, w io.Writer) error {
	counts := map[sweep.RunState]int{}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "index\tid\tstate\tstep\tbase\t%s\tdetail\n", strings.Join(s.AxisKeys, "\t"))
	for _, r := range s.Runs() {
		st := sweep.StatusOf(s.Dir(r))
		counts[st.State]++
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d/%d\t%s\t%s\t%s\n", r.Index, r.ID, st.State, st.Step, r.Config.Run.Iterations, r.Base,
			strings.Join(labels(s, r), "\t"), st.Detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var parts []string
	for _, state := range []sweep.RunState{sweep.StateDone, sweep.StateRunning, sweep.StateFailed, sweep.StateInterrupted, sweep.StatePending} {
		parts = append(parts, fmt.Sprintf("%d %s", counts[state], state))
	}
	_, err := fmt.Fprintf(w, "sweep %s (%s): %d runs: %s\n", s.Path, s.OutDir, len(s.Runs()), strings.Join(parts, ", "))
	return err
}
