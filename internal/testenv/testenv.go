// Package testenv holds helpers the tests of several packages share: a
// skip for tests that need the go tool (the GPU check, bench/gpu_check.sh,
// runs compiled test binaries on a machine without one), error-message
// assertions, and the run-folder comparison of resume tests (ReadRunFolder,
// CompareRunFolders: cmd/train, cmd/sweep). It imports no mollify package, so every package's tests can
// use it (PyTorch golden files: internal/golden).
package testenv

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// NeedGoTool skips the test when no go command is on the PATH, naming why.
// Call it first in a test that runs `go build`, `go run` or another go
// subcommand.
func NeedGoTool(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skipf("needs the go tool: %v", err)
	}
}

// AssertError fails the test unless err is non-nil, mentions every string
// of want and, when is is not nil, wraps is.
func AssertError(t testing.TB, err error, want []string, is error) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	if is != nil && !errors.Is(err, is) {
		t.Errorf("error %q is not %v", err, is)
	}
}
