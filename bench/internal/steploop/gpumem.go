package steploop

import (
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// addGPUMemory adds peak_alloc_mb and peak_reserved_mb on a CUDA device:
// the caching allocator's peaks (ts.CUDAMemory) in MiB over the whole
// process, warm-up and capture included, as torch.cuda.max_memory_* in
// the PyTorch twins. A libtch without CUDA graphs support reports an
// error; the fields then stay out (the tables show "–").
func addGPUMemory(fields map[string]any, dev gotch.Device) {
	if !dev.IsCuda() {
		return
	}
	if s, err := ts.CUDAMemory(dev.Value); err == nil {
		fields["peak_alloc_mb"], fields["peak_reserved_mb"] = float64(s.PeakAllocated)/(1<<20), float64(s.PeakReserved)/(1<<20)
	}
}

// syncDevice waits for the work queued on a CUDA device (nothing on the
// CPU, whose ops finish before they return).
func syncDevice(dev gotch.Device) error {
	if !dev.IsCuda() {
		return nil
	}
	return ts.CUDASynchronize(dev.Value)
}
