package dist

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseHostList(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"node01", []string{"node01"}},
		{"node[01-04]", []string{"node01", "node02", "node03", "node04"}},
		{"node[1,3,5-7],gpu[01-02]", []string{"node1", "node3", "node5", "node6", "node7", "gpu01", "gpu02"}},
		{"a-b[001-002]", []string{"a-b001", "a-b002"}},
		{"n[8-11]", []string{"n8", "n9", "n10", "n11"}},
		{"n[098-101]", []string{"n098", "n099", "n100", "n101"}},
		{"host1,host2", []string{"host1", "host2"}},
		{"r[1-2]-n[1-2]", []string{"r1-n1", "r1-n2", "r2-n1", "r2-n2"}},
		{"c[1-2].cluster", []string{"c1.cluster", "c2.cluster"}},
	} {
		got, err := ParseHostList(c.in)
		if err != nil {
			t.Errorf("ParseHostList(%q): %v", c.in, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseHostList(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestParseHostListErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", "empty"},
		{"node[01-04", "'[' without ']'"},
		{"node01]", "']' without '['"},
		{"node[04-01]", `range "04-01" ends before it starts`},
		{"node[a-b]", `"a-b" is not a number`},
		{"node[1-]", `"1-" is not a number`},
		{"a,,b", "empty entry"},
	} {
		_, err := ParseHostList(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseHostList(%q): error %v, want one mentioning %q", c.in, err, c.want)
		}
	}
}

func lookupIn(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestFromLookup(t *testing.T) {
	for _, c := range []struct {
		name string
		vars map[string]string
		want Env
	}{
		{"nothing: one process", nil, Env{Rank: 0, WorldSize: 1, Source: "single"}},
		{"torchrun", map[string]string{"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"},
			Env{Rank: 3, WorldSize: 8, LocalRank: 1, MasterAddr: "10.0.0.1", MasterPort: 29500, Source: "torchrun"}},
		{"torchrun without LOCAL_RANK: one node", map[string]string{"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1234", "GLOO_SOCKET_IFNAME": "lo"},
			Env{Rank: 1, WorldSize: 2, LocalRank: 1, MasterAddr: "127.0.0.1", MasterPort: 1234, GlooInterface: "lo", Source: "torchrun"}},
		{"slurm", map[string]string{"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_JOB_NODELIST": "gpu[03-06]", "SLURM_JOB_ID": "123456"},
			Env{Rank: 5, WorldSize: 8, LocalRank: 1, MasterAddr: "gpu03", MasterPort: 20000 + 3456, Source: "slurm"}},
		{"slurm with MASTER_ADDR/PORT and SLURM_NODELIST", map[string]string{"SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_LOCALID": "0", "SLURM_NODELIST": "a-b[001-002]", "MASTER_ADDR": "login", "MASTER_PORT": "4000"},
			Env{Rank: 0, WorldSize: 2, LocalRank: 0, MasterAddr: "login", MasterPort: 4000, Source: "slurm"}},
		{"slurm, first host of a mixed list", map[string]string{"SLURM_PROCID": "0", "SLURM_NPROCS": "4", "SLURM_LOCALID": "0", "SLURM_NODELIST": "node[1,3],gpu[01-02]", "MASTER_PORT": "4000"},
			Env{Rank: 0, WorldSize: 4, LocalRank: 0, MasterAddr: "node1", MasterPort: 4000, Source: "slurm"}},
		{"torchrun wins over Slurm (torchrun inside an allocation)", map[string]string{"RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "h", "MASTER_PORT": "5", "SLURM_PROCID": "7"},
			Env{Rank: 0, WorldSize: 1, LocalRank: 0, MasterAddr: "h", MasterPort: 5, Source: "torchrun"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := FromLookup(lookupIn(c.vars))
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestFromLookupErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		vars map[string]string
		want []string
	}{
		{"torchrun, everything missing but RANK", map[string]string{"RANK": "0"},
			[]string{"torchrun environment", "WORLD_SIZE is not set", "MASTER_ADDR is not set", "MASTER_PORT is not set"}},
		{"rank out of range", map[string]string{"RANK": "2", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "1"},
			[]string{"the rank must be in 0..1 (world size 2), got 2"}},
		{"not a number, bad port", map[string]string{"RANK": "x", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "70000"},
			[]string{`RANK="x" is not an integer`}},
		{"port out of range", map[string]string{"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "70000"},
			[]string{"the master port must be in 1..65535, got 70000"}},
		{"zero world size", map[string]string{"RANK": "0", "WORLD_SIZE": "0", "MASTER_ADDR": "h", "MASTER_PORT": "1"},
			[]string{"the world size must be at least 1, got 0"}},
		{"slurm without tasks and nodes", map[string]string{"SLURM_PROCID": "0", "SLURM_LOCALID": "0"},
			[]string{"slurm environment", "SLURM_NTASKS is not set", "SLURM_JOB_NODELIST (or SLURM_NODELIST) is not set", "no SLURM_JOB_ID"}},
		{"slurm with a broken host list", map[string]string{"SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_LOCALID": "0", "SLURM_NODELIST": "node[1-", "SLURM_JOB_ID": "1"},
			[]string{`Slurm host list "node[1-"`, "without ']'"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := FromLookup(lookupIn(c.vars))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
