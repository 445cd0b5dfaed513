package config

import "time"

// Distributed holds the data-parallel settings (distributed:). Whether a
// run is distributed is not a setting: it is when the job's environment
// (torchrun's RANK/WORLD_SIZE, cmd/launch, Slurm's SLURM_NTASKS) has more
// than one process. data.batch_size stays the global batch, so none of
// these keys changes what is trained (they are left out of run ids);
// sync_batchnorm makes a run with batch norm in training mode train what
// one process would.
type Distributed struct {
	// Backend is the c10d backend: auto (nccl on a CUDA device, gloo on
	// the CPU), gloo or nccl.
	Backend string `mapstructure:"backend" yaml:"backend"`
	// BucketMB is the gradient bucket size in MiB (PyTorch DDP's
	// bucket_cap_mb).
	BucketMB float64 `mapstructure:"bucket_mb" yaml:"bucket_mb"`
	// HeartbeatSeconds is how long a rank may stay silent before the
	// others report it dead and exit.
	HeartbeatSeconds float64 `mapstructure:"heartbeat_seconds" yaml:"heartbeat_seconds"`
	// TimeoutMinutes bounds the rendezvous and every collective. Keep it
	// longer than rank 0's longest evaluation (FID): the other ranks wait
	// in a collective meanwhile. A dead rank is found by the heartbeat.
	TimeoutMinutes float64 `mapstructure:"timeout_minutes" yaml:"timeout_minutes"`
	// SyncBatchNorm normalises batch norms in training mode with the
	// statistics of the global batch, as one process would (torch's
	// SyncBatchNorm; NVlabs' NVAE trains its multi-GPU recipe so): one
	// more small all-reduce per batch-norm layer, forward and backward.
	// Off, each rank uses its own rows' statistics, as DDP does.
	SyncBatchNorm bool `mapstructure:"sync_batchnorm" yaml:"sync_batchnorm"`
}

// Backends of distributed.backend.
const (
	BackendAuto = "auto"
	BackendGloo = "gloo"
	BackendNCCL = "nccl"
)

// DefaultDistributed: auto backend, DDP's 25 MiB buckets, a 20 s
// heartbeat, 30 minutes for a collective and per-rank batch norm (DDP's
// default).
func DefaultDistributed() Distributed {
	return Distributed{Backend: BackendAuto, BucketMB: 25, HeartbeatSeconds: 20, TimeoutMinutes: 30}
}

// BackendFor resolves auto for a device: nccl on CUDA, gloo on the CPU.
func (d Distributed) BackendFor(cuda bool) string {
	if d.Backend != BackendAuto {
		return d.Backend
	}
	if cuda {
		return BackendNCCL
	}
	return BackendGloo
}

// BucketBytes is BucketMB in bytes.
func (d Distributed) BucketBytes() int64 { return int64(d.BucketMB * (1 << 20)) }

// HeartbeatTimeout is HeartbeatSeconds as a duration.
func (d Distributed) HeartbeatTimeout() time.Duration {
	return time.Duration(d.HeartbeatSeconds * float64(time.Second))
}

// HeartbeatInterval beats ten times per timeout, at most once a second.
func (d Distributed) HeartbeatInterval() time.Duration {
	return min(d.HeartbeatTimeout()/10, time.Second)
}

// Timeout is TimeoutMinutes as a duration.
func (d Distributed) Timeout() time.Duration {
	return time.Duration(d.TimeoutMinutes * float64(time.Minute))
}

// Validate returns a *ValidationError listing every problem, or nil.
func (d Distributed) Validate() error {
	var k checker
	d.check(&k)
	return k.err()
}

func (d Distributed) check(k *checker) {
	k.oneOf("distributed.backend", d.Backend, BackendAuto, BackendGloo, BackendNCCL)
	k.positiveFloat("distributed.bucket_mb", d.BucketMB)
	k.positiveFloat("distributed.heartbeat_seconds", d.HeartbeatSeconds)
	if d.HeartbeatSeconds > 0 && d.HeartbeatSeconds < 0.2 {
		k.addf("distributed.heartbeat_seconds must be at least 0.2 (the heartbeat beats every tenth of it), got %g", d.HeartbeatSeconds)
	}
	k.positiveFloat("distributed.timeout_minutes", d.TimeoutMinutes)
	if d.TimeoutMinutes > 0 && d.HeartbeatSeconds > 0 && d.TimeoutMinutes*60 <= d.HeartbeatSeconds {
		k.addf("distributed.timeout_minutes (%g min) must be longer than distributed.heartbeat_seconds (%g s): a dead rank is found by the heartbeat, the timeout only bounds a collective", d.TimeoutMinutes, d.HeartbeatSeconds)
	}
}
