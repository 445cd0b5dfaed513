package linalg

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// The kernels here are called thousands of times in a row (a SYMV per
// column of a tridiagonal reduction, a GEMM per panel), and waking a parked
// Go worker thread costs ~100–200 µs on a virtual machine: more than many
// of those calls take. So parallel sections run on a small pool whose
// helpers spin for a while after each job before parking, and a job is a
// counter of tasks that the caller and the helpers claim.

// spinTime is how long an idle helper keeps polling for the next job.
const spinTime = 50 * time.Microsecond

// maxHelpers bounds the pool; the memory-bound kernels stop scaling early.
const maxHelpers = 15

type job struct {
	tasks int64
	fn    func(task int)
	next  atomic.Int64 // next task to claim
	left  atomic.Int64 // tasks not finished
}

func (j *job) work() {
	for {
		i := j.next.Add(1) - 1
		if i >= j.tasks {
			return
		}
		j.fn(int(i))
		j.left.Add(-1)
	}
}

var pool struct {
	mu       sync.Mutex // one job at a time; a second caller runs serially
	start    sync.Once
	seq      atomic.Int64 // bumped for every job
	job      atomic.Pointer[job]
	sleeping []atomic.Bool
	wake     []chan struct{}
}

func startPool() {
	n := min(runtime.GOMAXPROCS(0)-1, maxHelpers)
	pool.sleeping = make([]atomic.Bool, n)
	pool.wake = make([]chan struct{}, n)
	for h := range n {
		pool.wake[h] = make(chan struct{}, 1)
		go helper(h)
	}
}

func helper(h int) {
	var seen int64
	for {
		idleSince := time.Now()
		for pool.seq.Load() == seen {
			if time.Since(idleSince) < spinTime {
				runtime.Gosched()
				continue
			}
			// Park; re-check after announcing it so no job is missed.
			pool.sleeping[h].Store(true)
			if pool.seq.Load() == seen {
				<-pool.wake[h]
			}
			pool.sleeping[h].Store(false)
			idleSince = time.Now()
		}
		seen = pool.seq.Load()
		if j := pool.job.Load(); j != nil {
			j.work()
		}
	}
}

// parallel runs fn(0..tasks-1) on the caller and the pool's helpers and
// returns when all have finished. Tasks must be independent.
func parallel(tasks int, fn func(task int)) {
	if tasks <= 0 {
		return
	}
	if tasks == 1 || runtime.GOMAXPROCS(0) == 1 || !pool.mu.TryLock() {
		for i := 0; i < tasks; i++ {
			fn(i)
		}
		return
	}
	defer pool.mu.Unlock()
	pool.start.Do(startPool)
	j := &job{tasks: int64(tasks), fn: fn}
	j.left.Store(int64(tasks))
	pool.job.Store(j)
	pool.seq.Add(1)
	for h := range pool.sleeping {
		if pool.sleeping[h].Load() {
			select {
			case pool.wake[h] <- struct{}{}:
			default:
			}
		}
	}
	j.work()
	for j.left.Load() > 0 {
		runtime.Gosched()
	}
	pool.job.Store(nil)
}
