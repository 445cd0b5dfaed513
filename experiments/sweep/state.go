package sweep

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// RunState is where a run of a sweep stands.
type RunState string

const (
	StateDone        RunState = "done"        // done.json exists
	StateRunning     RunState = "running"     // a live worker holds .lock
	StateFailed      RunState = "failed"      // the last attempt ended with a "train: ..." error
	StateInterrupted RunState = "interrupted" // progress but no live worker and no error: resumable
	StatePending     RunState = "pending"     // no folder, or no progress yet
)

// RunStatus is a run's state with its detail: the error line of a failed
// run, the worker of a running one, and the last step logged.
type RunStatus struct {
	State  RunState
	Detail string
	Step   int
}

// Done is what done.json holds.
type Done struct {
	Steps    int     `json:"steps"`
	WallS    float64 `json:"wall_s"` // seconds of the invocation that finished the run
	Finished string  `json:"finished"`
	// Diverged is why a run that stopped on non-finite losses stopped
	// (train.ErrNonFinite): a result, as the paper's 2-D tables count
	// it, so a rerun of the sweep keeps it instead of training it again.
	Diverged string `json:"diverged,omitempty"`
}

// WriteDone records in dir that its run finished after steps steps.
func WriteDone(dir string, steps int, wall time.Duration) error {
	return writeDone(dir, Done{Steps: steps, WallS: wall.Seconds()})
}

// WriteDiverged records in dir that its run diverged at step steps, for
// the reason given: the run is over, as a result.
func WriteDiverged(dir string, steps int, wall time.Duration, reason string) error {
	return writeDone(dir, Done{Steps: steps, WallS: wall.Seconds(), Diverged: reason})
}

func writeDone(dir string, d Done) error {
	d.Finished = time.Now().UTC().Format(time.RFC3339)
	b, _ := json.Marshal(d)
	return WriteFileAtomic(filepath.Join(dir, DoneName), append(b, '\n'))
}

// LogMarker starts the lines a worker appends to train.log at each
// attempt; the state of a run reads its last attempt only.
const LogMarker = "==> "

// StatusOf reads the state of the run in dir.
func StatusOf(dir string) RunStatus {
	if b, err := os.ReadFile(filepath.Join(dir, DoneName)); err == nil {
		var d Done
		if json.Unmarshal(b, &d) == nil {
			if d.Diverged != "" {
				return RunStatus{State: StateDone, Step: d.Steps, Detail: fmt.Sprintf("diverged at step %d: %s", d.Steps, d.Diverged)}
			}
			return RunStatus{State: StateDone, Step: d.Steps, Detail: "finished " + d.Finished}
		}
	}
	step := lastStep(dir)
	if l, ok := readLock(dir); ok && l.live(dir) {
		return RunStatus{State: StateRunning, Step: step, Detail: fmt.Sprintf("pid %d on %s since %s", l.PID, l.Host, l.Started)}
	}
	if line := lastError(dir); line != "" {
		return RunStatus{State: StateFailed, Step: step, Detail: line}
	}
	if step > 0 || hasCheckpoint(dir) {
		return RunStatus{State: StateInterrupted, Step: step}
	}
	return RunStatus{State: StatePending}
}

// lastStep is the step of the last metrics row, 0 if none.
func lastStep(dir string) int {
	f, err := os.Open(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		return 0
	}
	defer f.Close()
	tail := readTail(f, 8192)
	lines := strings.Split(strings.TrimSpace(tail), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		var row struct {
			Step *int `json:"step"`
		}
		if json.Unmarshal([]byte(lines[i]), &row) == nil && row.Step != nil {
			return *row.Step
		}
	}
	return 0
}

func readTail(f *os.File, n int64) string {
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(st.Size()-n, 0)
	b := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return ""
	}
	return string(b)
}

func hasCheckpoint(dir string) bool {
	m, _ := filepath.Glob(filepath.Join(dir, "checkpoints", "ckpt-*"))
	return len(m) > 0
}

// lastError is the last line of the last attempt in train.log when it is
// an error ("train: ..."), else "".
func lastError(dir string) string {
	f, err := os.Open(filepath.Join(dir, LogName))
	if err != nil {
		return ""
	}
	defer f.Close()
	tail := readTail(f, 64<<10)
	if i := strings.LastIndex(tail, "\n"+LogMarker); i >= 0 {
		tail = tail[i+1:]
	}
	lines := strings.Split(strings.TrimRight(tail, "\n"), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	if strings.HasPrefix(last, "train: ") {
		return last
	}
	return ""
}

// runLock is what .lock holds.
type runLock struct {
	PID     int    `json:"pid"`
	Host    string `json:"host"`
	Started string `json:"started"`
}

// LockHeartbeat is how often a worker touches its .lock; a lock from
// another host untouched for LockStale is taken as left by a dead worker.
const (
	LockHeartbeat = 20 * time.Second
	LockStale     = 90 * time.Second
)

func readLock(dir string) (runLock, bool) {
	var l runLock
	b, err := os.ReadFile(filepath.Join(dir, LockName))
	return l, err == nil && json.Unmarshal(b, &l) == nil
}

// live reports whether the worker that wrote the lock still runs: its pid
// on this host, the lock's heartbeat on another.
func (l runLock) live(dir string) bool {
	if host, _ := os.Hostname(); host == l.Host {
		if l.PID <= 0 {
			return false
		}
		err := syscall.Kill(l.PID, 0)
		return (err == nil || errors.Is(err, syscall.EPERM)) && !zombie(l.PID)
	}
	st, err := os.Stat(filepath.Join(dir, LockName))
	return err == nil && time.Since(st.ModTime()) < LockStale
}

// ErrRunLocked is returned by LockRun when a live worker holds the run.
var ErrRunLocked = errors.New("run is in use by another worker")

// LockRun marks the run in dir as running in this process (dir/.lock:
// pid, host, start) until the returned release is called, touching it every
// LockHeartbeat. A lock left by a dead worker is taken over.
func LockRun(dir string) (release func(), err error) {
	host, _ := os.Hostname()
	me := runLock{PID: os.Getpid(), Host: host, Started: time.Now().UTC().Format(time.RFC3339)}
	b, _ := json.Marshal(me)
	path := filepath.Join(dir, LockName)
	for attempt := 0; ; attempt++ {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			_, err = f.Write(b)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				os.Remove(path)
				return nil, fmt.Errorf("locking %s: %w", dir, err)
			}
			break
		}
		if !errors.Is(err, fs.ErrExist) || attempt > 0 {
			return nil, fmt.Errorf("locking %s: %w", dir, err)
		}
		if l, ok := readLock(dir); ok && l.live(dir) {
			return nil, fmt.Errorf("%w: %s is held by pid %d on %s since %s; wait for it, or remove %s if that worker is gone",
				ErrRunLocked, dir, l.PID, l.Host, l.Started, path)
		}
		os.Remove(path) // stale: its worker is gone
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(LockHeartbeat)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-tick.C:
				os.Chtimes(path, now, now)
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(stop)
			wg.Wait()
			if l, ok := readLock(dir); ok && l.PID == me.PID && l.Host == me.Host {
				os.Remove(path)
			}
		})
	}, nil
}

// zombie reports whether pid has exited but was not reaped yet (a worker
// killed with its parent, in a container whose init does not reap): it
// still answers kill(pid, 0). Where /proc is missing it says no.
func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}
