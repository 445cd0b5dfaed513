package config

import (
	"strings"
	"testing"
	"time"
)

func TestDistributedSettings(t *testing.T) {
	c, err := Load("demo", []string{"distributed.heartbeat_seconds=5", "distributed.bucket_mb=0.5"})
	if err != nil {
		t.Fatal(err)
	}
	d := c.Distributed
	if d.Backend != BackendAuto || d.TimeoutMinutes != 30 || d.SyncBatchNorm {
		t.Errorf("defaults: %+v", d)
	}
	if c, err := Load("demo", []string{"distributed.sync_batchnorm=true"}); err != nil || !c.Distributed.SyncBatchNorm {
		t.Errorf("distributed.sync_batchnorm=true: %v, %+v", err, c)
	}
	if d.HeartbeatTimeout() != 5*time.Second || d.HeartbeatInterval() != 500*time.Millisecond || d.BucketBytes() != 1<<19 {
		t.Errorf("derived: heartbeat %v every %v, bucket %d bytes", d.HeartbeatTimeout(), d.HeartbeatInterval(), d.BucketBytes())
	}
	for _, tc := range []struct {
		backend string
		cuda    bool
		want    string
	}{{"auto", false, "gloo"}, {"auto", true, "nccl"}, {"gloo", true, "gloo"}, {"nccl", false, "nccl"}} {
		if got := (Distributed{Backend: tc.backend}).BackendFor(tc.cuda); got != tc.want {
			t.Errorf("BackendFor(%s, cuda=%v) = %s, want %s", tc.backend, tc.cuda, got, tc.want)
		}
	}
}

func TestDistributedErrorsNameTheKeys(t *testing.T) {
	for _, tc := range []struct {
		sets []string
		want []string
	}{
		{[]string{"distributed.backend=mpi"}, []string{`distributed.backend: unknown value "mpi"`}},
		{[]string{"distributed.bucket_mb=0", "distributed.timeout_minutes=-1"}, []string{"distributed.bucket_mb must be", "distributed.timeout_minutes must be"}},
		{[]string{"distributed.heartbeat_seconds=0.1"}, []string{"distributed.heartbeat_seconds must be at least 0.2"}},
		{[]string{"distributed.heartbeat_seconds=120", "distributed.timeout_minutes=1"}, []string{"distributed.timeout_minutes (1 min) must be longer than distributed.heartbeat_seconds"}},
		{[]string{"distributed.backnd=gloo"}, []string{`"distributed.backnd"`, "distributed.backend"}},
		{[]string{"distributed.sync_batch_norm=true"}, []string{`"distributed.sync_batch_norm"`, "distributed.sync_batchnorm"}},
		{[]string{"distributed.sync_batchnorm=maybe"}, []string{"distributed.sync_batchnorm", "bool"}},
	} {
		_, err := Load("demo", tc.sets)
		if err == nil {
			t.Errorf("%v: no error", tc.sets)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q does not say %q", tc.sets, err, w)
			}
		}
	}
}
