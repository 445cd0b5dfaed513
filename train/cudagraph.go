package train

import (
	"fmt"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// cudaGrapher captures CUDA graphs through libtch (patch 0008): each
// capture runs on a side stream from the pool into a private memory pool,
// or into the pool of the graph it shares with.
type cudaGrapher struct{ device int }

// NewCUDAGrapher captures on a CUDA device; it is an error on the CPU or
// with a libtch built against a CPU-only libtorch.
func NewCUDAGrapher(dev gotch.Device) (Grapher, error) {
	if !dev.IsCuda() {
		return nil, fmt.Errorf("train: CUDA graphs need a CUDA device, got the CPU")
	}
	if !ts.CUDAGraphsAvailable() {
		return nil, fmt.Errorf("train: CUDA graphs need a CUDA build of libtorch with its CUDA headers (make setup with LIBTORCH pointing at one; see build/stubs.txt)")
	}
	return cudaGrapher{device: dev.Value}, nil
}

type cudaGraph struct{ g *ts.CUDAGraph }

func (c cudaGraph) Replay() error { return c.g.Replay() }
func (c cudaGraph) Close()        { c.g.Close() }

// Capture records fn's kernels on the capturing goroutine's thread;
// nothing runs until Replay.
func (g cudaGrapher) Capture(share Graph, fn func() error) (Graph, error) {
	cg, err := ts.NewCUDAGraph(g.device)
	if err != nil {
		return nil, err
	}
	var pool *ts.CUDAGraph
	if s, ok := share.(cudaGraph); ok {
		pool = s.g
	}
	if err := cg.CaptureBegin(pool); err != nil {
		cg.Close()
		return nil, err
	}
	ferr := fn()
	if err := cg.CaptureEnd(); err != nil || ferr != nil {
		cg.Close()
		if ferr != nil {
			return nil, fmt.Errorf("train: capturing: %w", ferr)
		}
		return nil, err
	}
	return cudaGraph{cg}, nil
}
