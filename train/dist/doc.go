// Package dist is data-parallel training across processes on libtorch's
// c10d engine (issue 16): the job's environment (torchrun's or Slurm's),
// a process group (Gloo on CPU, NCCL on CUDA) with bucketed gradient
// averaging, and a heartbeat through the store that notices a dead rank.
// The design, the variables and what is measured: docs/distributed.md.
//
// Conventions:
//   - FromEnv reads the job once; New joins the group (it blocks until
//     every rank has joined, up to the timeout). One Group per process.
//   - Collectives run on the calling goroutine, which they lock to its OS
//     thread for the call (libtch's errors are per thread). Every rank
//     calls the same collectives with tensors of the same shapes and
//     dtypes, in the same order.
//   - AllReduceMean and AllReduceSum work in place on the caller's tensors;
//     their temporaries (the flat buckets) live in a scope of their own and
//     are freed before they return. Nothing the caller passes is freed.
//   - Buckets: the tensors are taken in the order given and packed into
//     flat buckets of one dtype and device, each closed once it holds at
//     least BucketBytes (default 25 MiB, PyTorch DDP's bucket_cap_mb); a
//     tensor larger than that is a bucket by itself. Every bucket's
//     all-reduce is started before the first is waited for.
//   - Failures: a rank that dies stops its heartbeat; the others' watchers
//     report "rank R stopped responding (last heartbeat Xs ago)" on
//     Failed() and Err() within the heartbeat timeout. The library never
//     exits the process: a command that must abandon a collective blocked
//     in Gloo exits itself (see Failed).
package dist
