package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill the worker if sweep dies first (even
// by SIGKILL), so no orphan keeps training and holding its run's lock.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
