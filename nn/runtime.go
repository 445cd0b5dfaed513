package nn

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/sugarme/gotch"
	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/ts"
)

// ParseDevice parses "auto", "cpu", "cuda" or "cuda:N". "auto" picks
// CUDA device 0 when libtch.so was built with CUDA and a GPU is visible.
func ParseDevice(s string) (gotch.Device, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	switch {
	case s == "" || s == "auto":
		if gotch.CUDA.IsAvailable() {
			return gotch.CudaBuilder(0), nil
		}
		return gotch.CPU, nil
	case s == "cpu":
		return gotch.CPU, nil
	case s == "cuda" || strings.HasPrefix(s, "cuda:"):
		idx := 0
		if rest, ok := strings.CutPrefix(s, "cuda:"); ok {
			n, err := strconv.Atoi(rest)
			if err != nil || n < 0 {
				return gotch.CPU, fmt.Errorf("device %q: the CUDA index must be a non-negative integer, e.g. cuda:0", s)
			}
			idx = n
		}
		if !gotch.CUDA.IsAvailable() {
			return gotch.CPU, fmt.Errorf("device %q: CUDA is not available (libtch.so built against libtorch %s; rebuild with `LIBTORCH=/path/to/cuda/libtorch make setup`, or use device auto or cpu)", s, lib.TorchVersion())
		}
		if n := gotch.CUDA.DeviceCount(); idx >= int(n) {
			return gotch.CPU, fmt.Errorf("device %q: only %d CUDA device(s) visible", s, n)
		}
		return gotch.CudaBuilder(uint(idx)), nil
	}
	return gotch.CPU, fmt.Errorf("device %q: want auto, cpu, cuda or cuda:N", s)
}

// DeviceIndex returns -1 for the CPU, else the CUDA index.
func DeviceIndex(d gotch.Device) int {
	if d.IsCuda() {
		return d.Value
	}
	return -1
}

// SetThreads sets libtorch's intra-op thread count and, when libtorch links
// OpenBLAS, OpenBLAS's. n <= 0 leaves both at their defaults. On small
// models OpenBLAS workers spinning in sched_yield cost ~30% of a step, so
// mollify's default is 1 (see README, "Threads").
func SetThreads(n int) {
	if n <= 0 {
		return
	}
	lib.SetNumThreads(n)
	lib.SetBLASThreads(n)
}

// Threads returns libtorch's intra-op thread count.
func Threads() int { return lib.GetNumThreads() }

// TorchVersion is the libtorch version libtch.so was compiled against.
func TorchVersion() string { return lib.TorchVersion() }

// RNG is the run's random state: libtorch's CPU (and CUDA) generator plus a
// Go PCG stream for host-side randomness (shuffling, flips, toy data).
type RNG struct {
	Seed uint64
	pcg  *rand.PCG
	Go   *rand.Rand
}

// Seed seeds libtorch's generators and returns the Go-side RNG.
func Seed(seed uint64) (*RNG, error) {
	if err := ts.ManualSeed(seed); err != nil {
		return nil, fmt.Errorf("seeding libtorch: %w", err)
	}
	pcg := rand.NewPCG(seed, 0x6d6f6c6c696679) // "mollify"
	return &RNG{Seed: seed, pcg: pcg, Go: rand.New(pcg)}, nil
}

// State captures the generators' state for a checkpoint.
func (r *RNG) State(device gotch.Device) (map[string]*ts.Tensor, []byte, error) {
	out := map[string]*ts.Tensor{}
	cpu, err := ts.RNGState(-1)
	if err != nil {
		return nil, nil, err
	}
	out["rng.cpu"] = cpu
	if device.IsCuda() {
		cuda, err := ts.RNGState(device.Value)
		if err != nil {
			cpu.MustDrop()
			return nil, nil, err
		}
		out["rng.cuda"] = cuda
	}
	goState, err := r.pcg.MarshalBinary()
	if err != nil {
		return nil, nil, err
	}
	return out, goState, nil
}

// Restore sets the generators back to a state taken by State.
func (r *RNG) Restore(device gotch.Device, tensors map[string]*ts.Tensor, goState []byte) error {
	cpu, ok := tensors["rng.cpu"]
	if !ok {
		return errors.New("checkpoint has no rng.cpu state")
	}
	if err := ts.SetRNGState(cpu, -1); err != nil {
		return fmt.Errorf("restoring the CPU generator: %w", err)
	}
	if device.IsCuda() {
		if cuda, ok := tensors["rng.cuda"]; ok {
			if err := ts.SetRNGState(cuda, device.Value); err != nil {
				return fmt.Errorf("restoring the CUDA generator: %w", err)
			}
		}
	}
	return r.pcg.UnmarshalBinary(goState)
}

// Recover converts a panic raised by a torch op (patched gotch Must* ops
// panic with an error) into *err. Use it as `defer nn.Recover(&err)` at API
// boundaries. A Go runtime error (nil dereference, index out of range) is
// a bug, not a torch failure: it is re-raised with its stack, and so is
// any other panic that is not an error.
func Recover(err *error) { RecoverValue(recover(), err, "") }

// RecoverValue is Recover for a package's own deferred helper, which must
// call recover() itself (recover works only in the deferred function):
// `func recoverTorch(err *error) { nn.RecoverValue(recover(), err, "data") }`.
// A non-empty what prefixes the error ("data: Batch.Tensor: ...").
func RecoverValue(r any, err *error, what string) {
	if r == nil {
		return
	}
	if _, bug := r.(runtime.Error); bug {
		panic(r)
	}
	var e error
	switch v := r.(type) {
	case error:
		e = v
	case string:
		if !strings.HasPrefix(v, "ts:") {
			panic(r)
		}
		e = errors.New(v)
	default:
		panic(r)
	}
	if what != "" {
		e = fmt.Errorf("%s: %w", what, e)
	}
	*err = e
}

// LockThread pins the calling goroutine to its OS thread for torch's
// thread-local state; call the returned function to unpin.
func LockThread() func() {
	runtime.LockOSThread()
	return runtime.UnlockOSThread
}

// DefaultThreads is the thread count used when a config leaves it at 0:
// $MOLLIFY_THREADS if set, else 1.
func DefaultThreads() int {
	if v, err := strconv.Atoi(os.Getenv("MOLLIFY_THREADS")); err == nil && v > 0 {
		return v
	}
	return 1
}
