// Package testenv holds helpers for tests that depend on their
// environment. The GPU check (bench/gpu_check.sh, docs/gpu.md) runs the
// compiled test binaries on a machine with no Go toolchain, so a test that
// needs the go tool says so and skips there instead of failing.
package testenv

import (
	"os/exec"
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
