package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"

	"github.com/mollify/mollify/experiments/sweep"
)

// clusterOptions are the settings of the Slurm script and the Kubernetes
// Job; each subcommand registers those it uses.
type clusterOptions struct {
	out, train, partition, time, mem, image, pvc, workdir, name string
	gpus, cpus, parallel, backoff, ntasks                       int
}

func clusterFlags(fs *flag.FlagSet, kind string) *clusterOptions {
	o := &clusterOptions{}
	fs.StringVar(&o.out, "o", "", "where to write it (default: OUT_DIR/sweep.sbatch or OUT_DIR/sweep.k8s.yaml; - for stdout)")
	fs.StringVar(&o.train, "train", "train", "the train command as the tasks find it (a path or a name on their PATH)")
	fs.IntVar(&o.gpus, "gpus", 0, "GPUs per task (0: CPU only)")
	fs.IntVar(&o.cpus, "cpus", 0, "CPUs per task, also run.threads (0: the scheduler's default)")
	fs.StringVar(&o.mem, "mem", "", "memory per task (Slurm: 32G; Kubernetes: 32Gi)")
	fs.IntVar(&o.parallel, "parallel", 0, "at most this many tasks at once (0: no limit)")
	switch kind {
	case "slurm":
		fs.StringVar(&o.partition, "partition", "", "Slurm partition")
		fs.StringVar(&o.time, "time", "24:00:00", "time limit per task; a preempted or timed-out task resumes when requeued")
		fs.IntVar(&o.ntasks, "ntasks", 1, "processes per run (data parallel, docs/distributed.md): srun starts them, each with -gpus GPUs")
	case "k8s":
		fs.StringVar(&o.image, "image", "mollify:latest", "container image with the train binary, configs and datasets")
		fs.StringVar(&o.pvc, "pvc", "mollify-work", "PersistentVolumeClaim holding the project folder (sweep file, datasets, runs)")
		fs.StringVar(&o.workdir, "workdir", "/work", "where the claim is mounted; the tasks run there")
		fs.StringVar(&o.name, "name", "", "Job name (default: sweep-NAME)")
		fs.IntVar(&o.backoff, "backoff", 3, "failed attempts allowed per run (backoffLimitPerIndex); evictions do not count")
	}
	return o
}

// clusterData is what the templates see.
type clusterData struct {
	*clusterOptions
	Sweep        *sweep.Sweep
	Runs, Last   int
	Command, Job string
	RunsDir      string // the sweep folder as the tasks see it
	Parallelism  int
}

// shellQuote quotes s for sh when it needs it.
func shellQuote(s string) string {
	if s != "" && regexp.MustCompile(`^[A-Za-z0-9_./:=,+-]+$`).MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// taskCommand is the command a task runs, with indexVar as the run index.
func taskCommand(s *sweep.Sweep, o *clusterOptions, indexVar, threadsVar string) string {
	parts := []string{shellQuote(o.train), "-sweep", shellQuote(s.Path), "-index", `"$` + indexVar + `"`}
	if o.gpus > 0 {
		parts = append(parts, "--set", "run.device=cuda")
	}
	if o.cpus > 0 {
		parts = append(parts, "--set", "run.threads="+threadsVar)
	}
	return strings.Join(parts, " ")
}

var slurmScript = template.Must(template.New("slurm").Parse(`#!/bin/bash
# {{.Runs}} runs of sweep {{.Sweep.Path}}, one Slurm array task each.
# Written by: sweep slurm {{.Sweep.Path}}
# Submit from the project folder (paths are relative to it):
#   sbatch {{.Job}}
# Task I trains run I in {{.Sweep.OutDir}}/<id> (sweep plan lists them),
# resuming from its newest checkpoint when requeued after a preemption;
# after a time limit, submit the script again: done runs return at once.
# sweep status shows where each run stands.
#SBATCH --job-name=sweep-{{.Sweep.Name}}
#SBATCH --array=0-{{.Last}}{{if .Parallelism}}%{{.Parallelism}}{{end}}
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output={{.Sweep.OutDir}}/slurm-%A_%a.out
#SBATCH --time={{.Time}}
{{- if .Partition}}
#SBATCH --partition={{.Partition}}
{{- end}}
{{- if gt .NTasks 1}}
#SBATCH --ntasks={{.NTasks}}
{{- if .GPUs}}
#SBATCH --gpus-per-task={{.GPUs}}
{{- end}}
{{- else if .GPUs}}
#SBATCH --gres=gpu:{{.GPUs}}
{{- end}}
{{- if .CPUs}}
#SBATCH --cpus-per-task={{.CPUs}}
{{- end}}
{{- if .Mem}}
#SBATCH --mem={{.Mem}}
{{- end}}
set -euo pipefail
{{- if .CPUs}}
export OMP_NUM_THREADS="$SLURM_CPUS_PER_TASK" MKL_NUM_THREADS="$SLURM_CPUS_PER_TASK"
{{- end}}
{{- if gt .NTasks 1}}
# {{.NTasks}} processes train the run together: srun starts them with
# SLURM_PROCID, SLURM_NTASKS and SLURM_NODELIST, from which train joins
# the group (the first node serves the store); each sees its own GPU as
# cuda:0 through --gpus-per-task. If one fails, srun stops the others.
exec srun --kill-on-bad-exit=1 {{.Command}}
{{- else}}
exec {{.Command}}
{{- end}}
`))

var k8sJob = template.Must(template.New("k8s").Parse(`# {{.Runs}} runs of sweep {{.Sweep.Path}}, one index of a Kubernetes Indexed Job each.
# Written by: sweep k8s {{.Sweep.Path}}
#   kubectl apply -f {{.Job}}
# The pod of index I trains run I in {{.RunsDir}}/<id> on the
# claim {{.PVC}}, resuming from its newest checkpoint when retried, and
# returning at once when the run is done. Evicted or preempted pods are
# retried without counting against backoffLimitPerIndex.
apiVersion: batch/v1
kind: Job
metadata:
  name: {{.Name}}
  labels:
    app.kubernetes.io/name: mollify
    mollify/sweep: {{.Sweep.Name}}
spec:
  completionMode: Indexed
  completions: {{.Runs}}
  parallelism: {{.Parallelism}}
  backoffLimitPerIndex: {{.Backoff}}
  podFailurePolicy:
    rules:
      - action: Ignore
        onPodConditions:
          - type: DisruptionTarget
  template:
    metadata:
      labels:
        app.kubernetes.io/name: mollify
        mollify/sweep: {{.Sweep.Name}}
    spec:
      restartPolicy: Never
      containers:
        - name: train
          image: {{.Image}}
          workingDir: {{.Workdir}}
          command: ["sh", "-c", {{printf "%q" .Command}}]
{{- if or .GPUs .CPUs .Mem}}
          resources:
            limits:
{{- if .GPUs}}
              nvidia.com/gpu: {{.GPUs}}
{{- end}}
{{- if .CPUs}}
              cpu: {{.CPUs}}
{{- end}}
{{- if .Mem}}
              memory: {{.Mem}}
{{- end}}
{{- end}}
{{- if .CPUs}}
          env:
            - name: OMP_NUM_THREADS
              value: "{{.CPUs}}"
            - name: MKL_NUM_THREADS
              value: "{{.CPUs}}"
{{- end}}
          volumeMounts:
            - name: work
              mountPath: {{.Workdir}}
      volumes:
        - name: work
          persistentVolumeClaim:
            claimName: {{.PVC}}
`))

// The templates read these names.
func (o *clusterOptions) Time() string      { return o.time }
func (o *clusterOptions) Partition() string { return o.partition }
func (o *clusterOptions) GPUs() int         { return o.gpus }
func (o *clusterOptions) CPUs() int         { return o.cpus }
func (o *clusterOptions) Mem() string       { return o.mem }
func (o *clusterOptions) Image() string     { return o.image }
func (o *clusterOptions) PVC() string       { return o.pvc }
func (o *clusterOptions) Workdir() string   { return o.workdir }
func (o *clusterOptions) Backoff() int      { return o.backoff }
func (o *clusterOptions) NTasks() int       { return o.ntasks }

var dns1123 = regexp.MustCompile(`[^a-z0-9-]+`)

// writeCluster renders tmpl for the sweep, writes it (and the sweep
// folder's manifest, which the tasks' log folder needs) and says how to
// submit it.
func writeCluster(s *sweep.Sweep, o *clusterOptions, tmpl *template.Template, defaultName, submit string, stdout io.Writer) error {
	switch {
	case o.gpus < 0 || o.cpus < 0 || o.parallel < 0 || o.backoff < 0:
		return fmt.Errorf("-gpus, -cpus, -parallel and -backoff must be >= 0")
	case tmpl == slurmScript && o.ntasks < 1:
		return fmt.Errorf("-ntasks must be >= 1 (processes per run), got %d", o.ntasks)
	case o.train == "":
		return fmt.Errorf("-train must name the train command")
	case tmpl == k8sJob && o.image == "":
		return fmt.Errorf("-image must name the container image")
	}
	out := o.out
	if out == "" {
		out = filepath.Join(s.OutDir, defaultName)
	}
	d := clusterData{clusterOptions: o, Sweep: s, Runs: len(s.Runs()), Last: len(s.Runs()) - 1, Job: out, Parallelism: o.parallel, RunsDir: s.OutDir}
	if out == "-" {
		d.Job = "FILE"
	}
	if tmpl == k8sJob {
		d.Command = taskCommand(s, o, "JOB_COMPLETION_INDEX", fmt.Sprint(o.cpus))
		if !filepath.IsAbs(s.OutDir) {
			d.RunsDir = filepath.Join(o.workdir, s.OutDir)
		}
		if d.Parallelism == 0 {
			d.Parallelism = d.Runs
		}
		if o.name == "" {
			o.name = strings.Trim(dns1123.ReplaceAllString("sweep-"+strings.ToLower(s.Name), "-"), "-")
			o.name = strings.TrimRight(o.name[:min(len(o.name), 52)], "-") // pods are NAME-INDEX-xxxxx
		}
	} else {
		d.Command = taskCommand(s, o, "SLURM_ARRAY_TASK_ID", `"$SLURM_CPUS_PER_TASK"`)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, d); err != nil {
		return err
	}
	if err := s.WriteManifest(); err != nil {
		return err
	}
	if out == "-" {
		_, err := stdout.Write(buf.Bytes())
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := sweep.WriteFileAtomic(out, buf.Bytes()); err != nil {
		return err
	}
	_, err := fmt.Fprintf(stdout, "wrote %s (%d runs); submit with: %s %s\n", out, len(s.Runs()), submit, out)
	return err
}

// Name is the Job's name.
func (o *clusterOptions) Name() string { return o.name }
