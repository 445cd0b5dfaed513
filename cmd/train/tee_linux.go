package main

import (
	"fmt"
	"io"
	"os"
	"syscall"
)

// teeOutput sends everything the process writes to stdout and stderr,
// libtorch's own messages included, to the terminal's stderr and to the
// end of logPath as well. The returned function flushes and closes the
// copy; call it before exiting.
func teeOutput(logPath string) (func(), error) {
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the run log: %w", err)
	}
	origErr, err := syscall.Dup(2)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("run log: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("run log: %w", err)
	}
	for _, fd := range []int{1, 2} {
		if err := syscall.Dup3(int(w.Fd()), fd, 0); err != nil {
			return nil, fmt.Errorf("run log: %w", err)
		}
	}
	console := os.NewFile(uintptr(origErr), "stderr")
	done := make(chan struct{})
	go func() {
		io.Copy(io.MultiWriter(bestEffort{console}, f), r)
		close(done)
	}()
	return func() {
		// Put stderr back (stdout too, onto it) and close every write end
		// of the pipe so the copy sees EOF.
		syscall.Dup3(origErr, 2, 0)
		syscall.Dup3(origErr, 1, 0)
		w.Close()
		<-done
		f.Close()
	}, nil
}

// bestEffort drops write errors, so a closed terminal does not stop the
// copy into the log.
type bestEffort struct{ w io.Writer }

func (b bestEffort) Write(p []byte) (int, error) {
	b.w.Write(p)
	return len(p), nil
}
