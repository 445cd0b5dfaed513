package dist

import (
	"fmt"
	"runtime"
	"strconv"
	"time"
)

// The heartbeat: one goroutine per rank, locked to its OS thread (libtch's
// errors are per thread), adds 1 to the rank's counter in the store every
// interval and reads the other ranks' counters. A counter that has not
// moved for the timeout means its process is gone (killed, crashed, its
// machine down): the watcher reports it on Group.Failed. The goroutine
// runs whatever the rank's main goroutine does, so a long wait in a
// collective or a long evaluation on rank 0 does not trip it; a process
// that is alive but hung in C code keeps beating and is not reported.

const keyPrefix = "mollify/dist/"

func beatKey(rank int) string { return keyPrefix + "beat/" + strconv.Itoa(rank) }
func doneKey(rank int) string { return keyPrefix + "done/" + strconv.Itoa(rank) }
func leftKey(rank int) string { return keyPrefix + "left/" + strconv.Itoa(rank) }

type heartbeat struct {
	g       *Group
	quit    chan struct{}
	stopped chan struct{}
}

func startHeartbeat(g *Group) *heartbeat {
	h := &heartbeat{g: g, quit: make(chan struct{}), stopped: make(chan struct{})}
	if g.env.WorldSize <= 1 {
		close(h.stopped)
		return h
	}
	go h.run()
	return h
}

func (h *heartbeat) run() {
	defer close(h.stopped)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	g := h.g
	n := g.env.WorldSize
	last := make([]int64, n)
	seen := make([]time.Time, n)
	start := time.Now()
	for r := range seen {
		seen[r] = start
	}
	tick := time.NewTicker(g.opts.hbInterval)
	defer tick.Stop()
	for {
		if _, err := g.store.Add(beatKey(g.env.Rank), 1); err != nil {
			g.fail(h.storeErr(err))
			return
		}
		now := time.Now()
		for r := 0; r < n; r++ {
			if r == g.env.Rank {
				continue
			}
			v, err := g.store.Add(beatKey(r), 0)
			if err != nil {
				g.fail(h.storeErr(err))
				return
			}
			if v != last[r] {
				last[r], seen[r] = v, now
			} else if ago := now.Sub(seen[r]); ago > g.opts.hbTTL {
				g.fail(fmt.Errorf("dist: rank %d stopped responding (last heartbeat %.0fs ago)", r, ago.Seconds()))
				return
			}
		}
		select {
		case <-h.quit:
			return
		case <-tick.C:
		}
	}
}

// storeErr is the failure when the store itself is gone: rank 0 serves a
// TCPStore, so its death takes the store down.
func (h *heartbeat) storeErr(err error) error {
	g := h.g
	if g.opts.fileStore == "" {
		return fmt.Errorf("dist: rank 0 stopped responding (%s is unreachable: %v)", g.where, err)
	}
	return fmt.Errorf("dist: %s failed: %v", g.where, err)
}

// leave marks this rank done and waits until every rank is, then until
// every other rank has let go of the store (rank 0, which serves it).
func (h *heartbeat) leave() error {
	g := h.g
	n := g.env.WorldSize
	if err := g.store.Set(doneKey(g.env.Rank), []byte{1}); err != nil {
		return h.storeErr(err)
	}
	all := make([]string, n)
	for r := range all {
		all[r] = doneKey(r)
	}
	for {
		ok, err := g.store.Check(all)
		if err != nil {
			return h.storeErr(err)
		}
		if ok {
			break
		}
		select {
		case <-g.dead:
			return g.Err()
		case <-time.After(g.opts.hbInterval / 4):
		}
	}
	h.stop()
	if g.env.Rank != 0 {
		if err := g.store.Set(leftKey(g.env.Rank), []byte{1}); err != nil {
			return h.storeErr(err)
		}
		return nil
	}
	others := make([]string, 0, n-1)
	for r := 1; r < n; r++ {
		others = append(others, leftKey(r))
	}
	// Bounded: a rank that dies now has finished its work anyway.
	deadline := time.Now().Add(g.opts.hbTTL)
	for time.Now().Before(deadline) {
		if ok, err := g.store.Check(others); err != nil || ok {
			return nil
		}
		time.Sleep(g.opts.hbInterval / 4)
	}
	return nil
}

func (h *heartbeat) stop() {
	select {
	case <-h.quit:
	default:
		close(h.quit)
	}
	<-h.stopped
}
