package dist

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// Env is one process's place in a job.
type Env struct {
	Rank       int // global rank, 0..WorldSize-1
	WorldSize  int
	LocalRank  int    // rank on this node: the GPU index with one GPU per rank
	MasterAddr string // host of rank 0's store
	MasterPort int
	// GlooInterface is GLOO_SOCKET_IFNAME: the network interface Gloo
	// binds to (empty: the address of this machine's hostname, or the
	// loopback when MasterAddr is a loopback address).
	GlooInterface string
	// Source is "torchrun" (RANK, WORLD_SIZE, ...; cmd/launch sets them
	// too), "slurm" (SLURM_PROCID, ...) or "single" (none: one process).
	Source string
}

// Distributed reports whether the job has more than one process.
func (e Env) Distributed() bool { return e.WorldSize > 1 }

// Single is the environment of a plain, one-process run.
func Single() Env { return Env{Rank: 0, WorldSize: 1, Source: "single"} }

// DefaultSlurmPortBase is the first MASTER_PORT derived for a Slurm job
// that sets none: DefaultSlurmPortBase + SLURM_JOB_ID mod 10000, so two
// jobs on one node rarely collide.
const DefaultSlurmPortBase = 20000

// FromEnv reads the job from the process environment: torchrun's variables
// (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) when RANK or
// WORLD_SIZE is set, else Slurm's (SLURM_PROCID, SLURM_NTASKS,
// SLURM_LOCALID, and the first host of SLURM_JOB_NODELIST or
// SLURM_NODELIST as MASTER_ADDR unless MASTER_ADDR is set; MASTER_PORT if
// set, else one derived from SLURM_JOB_ID), else a single process. The
// error lists every missing or inconsistent variable.
func FromEnv() (Env, error) { return FromLookup(os.LookupEnv) }

// FromLookup is FromEnv over any variable lookup (tests pass a map's).
func FromLookup(lookup func(string) (string, bool)) (Env, error) {
	get := func(k string) string {
		v, _ := lookup(k)
		return strings.TrimSpace(v)
	}
	var problems []string
	num := func(k string, required bool) (int, bool) {
		v := get(k)
		if v == "" {
			if required {
				problems = append(problems, k+" is not set")
			}
			return 0, false
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s=%q is not an integer", k, v))
			return 0, false
		}
		return n, true
	}
	env := Env{GlooInterface: get("GLOO_SOCKET_IFNAME")}
	switch {
	case get("RANK") != "" || get("WORLD_SIZE") != "":
		env.Source = "torchrun"
		env.Rank, _ = num("RANK", true)
		env.WorldSize, _ = num("WORLD_SIZE", true)
		var ok bool
		if env.LocalRank, ok = num("LOCAL_RANK", false); !ok && get("LOCAL_RANK") == "" {
			env.LocalRank = env.Rank // one node
		}
		env.MasterAddr = get("MASTER_ADDR")
		if env.MasterAddr == "" {
			problems = append(problems, "MASTER_ADDR is not set (the host of rank 0, e.g. 127.0.0.1 on one machine)")
		}
		env.MasterPort, _ = num("MASTER_PORT", true)
	case get("SLURM_PROCID") != "":
		env.Source = "slurm"
		env.Rank, _ = num("SLURM_PROCID", true)
		ntasks := "SLURM_NTASKS"
		if get(ntasks) == "" && get("SLURM_NPROCS") != "" {
			ntasks = "SLURM_NPROCS"
		}
		env.WorldSize, _ = num(ntasks, true)
		env.LocalRank, _ = num("SLURM_LOCALID", true)
		env.MasterAddr = get("MASTER_ADDR")
		if env.MasterAddr == "" {
			list := get("SLURM_JOB_NODELIST")
			if list == "" {
				list = get("SLURM_NODELIST")
			}
			if list == "" {
				problems = append(problems, "SLURM_JOB_NODELIST (or SLURM_NODELIST) is not set, and no MASTER_ADDR either")
			} else if hosts, err := ParseHostList(list); err != nil {
				problems = append(problems, err.Error())
			} else {
				env.MasterAddr = hosts[0]
			}
		}
		if get("MASTER_PORT") != "" {
			env.MasterPort, _ = num("MASTER_PORT", true)
		} else if id, ok := num("SLURM_JOB_ID", false); ok {
			env.MasterPort = DefaultSlurmPortBase + id%10000
		} else if get("SLURM_JOB_ID") == "" {
			problems = append(problems, "MASTER_PORT is not set and there is no SLURM_JOB_ID to derive one from")
		}
	default:
		return Single(), nil
	}
	if len(problems) == 0 {
		problems = env.check()
	}
	if len(problems) > 0 {
		return Env{}, fmt.Errorf("dist: the %s environment is not usable: %s", env.Source, strings.Join(problems, "; "))
	}
	return env, nil
}

// check lists the inconsistencies of a parsed environment.
func (e Env) check() []string {
	var p []string
	if e.WorldSize < 1 {
		p = append(p, fmt.Sprintf("the world size must be at least 1, got %d", e.WorldSize))
	} else if e.Rank < 0 || e.Rank >= e.WorldSize {
		p = append(p, fmt.Sprintf("the rank must be in 0..%d (world size %d), got %d", e.WorldSize-1, e.WorldSize, e.Rank))
	}
	if e.LocalRank < 0 || (e.WorldSize >= 1 && e.LocalRank >= e.WorldSize) {
		p = append(p, fmt.Sprintf("the local rank must be in 0..%d, got %d", max(e.WorldSize-1, 0), e.LocalRank))
	}
	if e.MasterPort < 1 || e.MasterPort > 65535 {
		p = append(p, fmt.Sprintf("the master port must be in 1..65535, got %d", e.MasterPort))
	}
	return p
}

// Validate checks an Env built by hand.
func (e Env) Validate() error {
	if e.WorldSize == 1 && e.MasterAddr == "" {
		return nil // a single process needs no store
	}
	p := e.check()
	if e.MasterAddr == "" {
		p = append(p, "the master address is empty")
	}
	if len(p) > 0 {
		return errors.New("dist: " + strings.Join(p, "; "))
	}
	return nil
}

// loopback reports whether host names this machine's loopback.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
