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

// buildReport builds cmd/report into a temporary folder, as a user's
// `go build ./cmd/report` would.
func buildReport(t *testing.T) string {
	t.Helper()
	testenv.NeedGoTool(t)
	bin := filepath.Join(t.TempDir(), "report")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

const fixture = "../../experiments/testdata/report_sweep"

// runReport runs the binary in dir and returns its exit code, stdout and stderr.
func runReport(t *testing.T, bin, dir string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

func TestCommandLine(t *testing.T) {
	bin := buildReport(t)

	t.Run("bad input", func(t *testing.T) {
		wd := t.TempDir()
		for name, body := range map[string]string{
			"empty/manifest.jsonl": "\n",
			"notsweep/sweep.yaml":  "base: glow_cifar10\n",
			"afile":                "",
		} {
			p := filepath.Join(wd, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range []struct {
			name string
			args []string
			want []string
		}{
			{"no folder", nil, []string{"no sweep folder given", "usage: report SWEEP_DIR"}},
			{"not a sweep folder", []string{"notsweep"}, []string{"notsweep is not a sweep folder: it has no manifest.jsonl"}},
			{"empty manifest", []string{"empty"}, []string{"empty/manifest.jsonl lists no runs"}},
			{"missing folder", []string{"nope"}, []string{"sweep folder: stat nope: no such file or directory"}},
			{"a file", []string{"afile"}, []string{"afile is a file, not a sweep folder"}},
			{"two folders", []string{"empty", "notsweep"}, []string{"one sweep folder at a time, got 2"}},
			{"bad metric", []string{"empty", "-metric", "bpd"}, []string{`metric "bpd": want fid or fcd (flag -metric)`}},
			{"unknown flag", []string{"-x", "empty"}, []string{"flag provided but not defined: -x"}},
		} {
			t.Run(c.name, func(t *testing.T) {
				code, stdout, stderr := runReport(t, bin, wd, c.args...)
				if code != 1 {
					t.Fatalf("report %v: exit %d, want 1\nstderr:\n%s", c.args, code, stderr)
				}
				if stdout != "" || strings.Contains(stderr, "goroutine") || strings.Contains(stderr, "panic") {
					t.Errorf("report %v: stdout %q; stderr should be one clear message:\n%s", c.args, stdout, stderr)
				}
				if !strings.Contains(stderr, "report: ") {
					t.Errorf("report %v: stderr lacks the \"report: \" prefix:\n%s", c.args, stderr)
				}
				for _, w := range c.want {
					if !strings.Contains(stderr, w) {
						t.Errorf("report %v: stderr lacks %q:\n%s", c.args, w, stderr)
					}
				}
			})
		}
		if _, err := os.Stat(filepath.Join(wd, "empty", "report")); err == nil {
			t.Error("a failed report left a report folder behind")
		}
	})

	// On the fixture sweep, with -o after the folder: the Markdown on
	// stdout and in report.md is the golden report of experiments.
	t.Run("fixture", func(t *testing.T) {
		out := t.TempDir()
		code, stdout, stderr := runReport(t, bin, "../../experiments", "testdata/report_sweep", "-o", out)
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, stderr)
		}
		golden, err := os.ReadFile("../../experiments/testdata/report_sweep.md")
		if err != nil {
			t.Fatal(err)
		}
		if stdout != string(golden) {
			t.Errorf("stdout differs from experiments/testdata/report_sweep.md:\n%s", stdout)
		}
		md, err := os.ReadFile(filepath.Join(out, "report.md"))
		if err != nil || string(md) != stdout {
			t.Errorf("report.md (%v) differs from stdout", err)
		}
		for _, f := range []string{"report.csv", "fid_cifar10.png", "samples_cifar10.png"} {
			if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
				t.Errorf("%s not written: %v", f, err)
			}
		}
		if !strings.Contains(stderr, "wrote report.md, report.csv and 2 figure(s)") {
			t.Errorf("stderr: %s", stderr)
		}
	})
}
