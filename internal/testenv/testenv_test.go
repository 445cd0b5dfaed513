package testenv

import (
	"os/exec"
	"strings"
	"testing"
)

// skipRecorder records a Skip instead of stopping the test.
type skipRecorder struct {
	testing.TB
	skipped string
}

func (r *skipRecorder) Skipf(format string, args ...any) {
	r.skipped = format
}

func TestNeedGoTool(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	r := &skipRecorder{TB: t}
	NeedGoTool(r)
	if !strings.HasPrefix(r.skipped, "needs the go tool") {
		t.Errorf("with no go on the PATH: skip message %q, want one starting %q", r.skipped, "needs the go tool")
	}
}

func TestNeedGoToolPresent(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go tool on the PATH to test with")
	}
	r := &skipRecorder{TB: t}
	NeedGoTool(r)
	if r.skipped != "" {
		t.Errorf("go is on the PATH, yet NeedGoTool skipped: %q", r.skipped)
	}
}
