// Package golden reads the PyTorch golden files that packages' testdata
// scripts (gen_golden*.py) write, for their parity tests. It is apart from
// internal/testenv because it needs nn, whose own tests use testenv.
package golden

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"

	"github.com/mollify/mollify/nn"
	"github.com/sugarme/gotch/ts"
)

// File is a golden file written by a package's testdata/gen_golden*.py:
// tensors named "<case>.<part>.<name>" and, in the metadata, one JSON entry
// of settings per case beside the "torch" version.
type File struct {
	Tensors map[string]*ts.Tensor
	Meta    map[string]string
	Cases   []string // sorted
}

// Load reads path and fails the test unless it holds want cases. The
// tensors belong to the caller's open ts.Scope.
func Load(t testing.TB, path string, want int) File {
	t.Helper()
	g, meta, err := nn.LoadTensors(path)
	if err != nil {
		t.Fatal(err)
	}
	var cases []string
	for k := range meta {
		if k != "torch" {
			cases = append(cases, k)
		}
	}
	sort.Strings(cases)
	if len(cases) != want {
		t.Fatalf("golden file has cases %v, want %d", cases, want)
	}
	return File{Tensors: g, Meta: meta, Cases: cases}
}

// Settings decodes a case's JSON settings into v.
func (g File) Settings(t testing.TB, name string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(g.Meta[name]), v); err != nil {
		t.Fatal(err)
	}
}

// Pick returns a case's tensors under prefix ("w.", "grad.", ...), keyed
// by the rest of their names.
func (g File) Pick(name, prefix string) map[string]*ts.Tensor {
	out := map[string]*ts.Tensor{}
	for k, v := range g.Tensors {
		if rest, ok := strings.CutPrefix(k, name+"."+prefix); ok {
			out[rest] = v
		}
	}
	return out
}
