//go:build !linux

package main

import "os/exec"

// dieWithParent is Linux only; elsewhere a worker outlives a killed sweep
// and its run shows as running until it ends.
func dieWithParent(cmd *exec.Cmd) {}
