package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Which c10d sources are compiled, and why a stand-in is.
func TestC10dPlan(t *testing.T) {
	for _, c := range []struct {
		name             string
		lt               Libtorch
		c10dStub, nccl   int
		noteHas, noteNot string
	}{
		{"Debian CPU libtorch with libgloo-dev", Libtorch{C10d: true, Gloo: true}, 0, ncclStubCPUOnly, "mollify_c10d.cpp (Gloo)", "NCCL"},
		{"no Gloo headers", Libtorch{C10d: true}, c10dStubNoGloo, ncclStubCPUOnly, "libgloo-dev", ""},
		{"no c10d", Libtorch{Gloo: true}, c10dStubNoC10d, ncclStubCPUOnly, "no c10d headers", ""},
		{"CUDA with NCCL", Libtorch{C10d: true, Gloo: true, CUDA: true, NCCL: true, CUDAIncludes: []string{"/cuda/include"}}, 0, 0, "NCCL: mollify_c10d_nccl.cpp", ""},
		{"CUDA without ProcessGroupNCCL", Libtorch{C10d: true, Gloo: true, CUDA: true, CUDAIncludes: []string{"/cuda/include"}}, 0, ncclStubMissing, "mollify_c10d_nccl_stub.cpp stands in", ""},
		{"CUDA without CUDA headers", Libtorch{C10d: true, Gloo: true, CUDA: true, NCCL: true}, 0, ncclStubMissing, "", ""},
		{"CUDA, NCCL, but no Gloo", Libtorch{C10d: true, CUDA: true, NCCL: true, CUDAIncludes: []string{"/cuda/include"}}, c10dStubNoGloo, ncclStubMissing, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			cs, ns, note := c10dPlan(&c.lt)
			if cs != c.c10dStub || ns != c.nccl {
				t.Errorf("stubs (c10d %d, nccl %d), want (%d, %d)", cs, ns, c.c10dStub, c.nccl)
			}
			if !strings.Contains(note, c.noteHas) || (c.noteNot != "" && strings.Contains(note, c.noteNot)) {
				t.Errorf("note %q: want %q in it and not %q", note, c.noteHas, c.noteNot)
			}
		})
	}
}

// c10dSupport needs both the headers and the exported ProcessGroupGloo.
func TestC10dSupport(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"include/torch/csrc/distributed/c10d/ProcessGroupGloo.hpp": "",
		"include/gloo/context.h":                                   "",
		"lib/libtorch_cpu.so":                                      "not an ELF file",
	})
	lt := &Libtorch{Includes: []string{filepath.Join(root, "include")}, Lib: filepath.Join(root, "lib")}
	c10dSupport(lt, nil)
	if lt.C10d || !lt.Gloo || lt.NCCL {
		t.Errorf("headers without the export: C10d %v Gloo %v NCCL %v, want false true false", lt.C10d, lt.Gloo, lt.NCCL)
	}
	lt = &Libtorch{Includes: []string{filepath.Join(root, "missing")}, Lib: filepath.Join(root, "lib")}
	c10dSupport(lt, nil)
	if lt.C10d || lt.Gloo {
		t.Errorf("no headers: C10d %v Gloo %v", lt.C10d, lt.Gloo)
	}
	// Debian's libtorch exports ProcessGroupGloo from libtorch_cpu.so.
	if deb, err := debianLibtorch(); err == nil && exists(filepath.Join(deb.Lib, "libtorch_cpu.so")) &&
		exists("/usr/include/torch/csrc/distributed/c10d/ProcessGroupGloo.hpp") {
		c10dSupport(deb, []string{"/usr/include"})
		if !deb.C10d {
			t.Errorf("Debian's libtorch in %s: ProcessGroupGloo not found", deb.Lib)
		}
	}
}

// The stand-ins' messages, compiled and run against a minimal torch_api.h
// (the sources are the ones `make setup` prepared in build/csrc).
func TestC10dStubMessages(t *testing.T) {
	csrc := filepath.Join("..", "..", "build", "csrc")
	if _, err := exec.LookPath("g++"); err != nil {
		t.Skip("needs g++")
	}
	if !exists(filepath.Join(csrc, "mollify_c10d_stub.cpp")) {
		t.Skip("run `make setup` first: build/csrc has no mollify_c10d_stub.cpp")
	}
	dir := t.TempDir()
	for _, f := range []string{"mollify_c10d_stub.cpp", "mollify_c10d_nccl_stub.cpp", "mollify_c10d.h"} {
		b, err := os.ReadFile(filepath.Join(csrc, f))
		if err != nil {
			t.Fatal(err)
		}
		writeFiles(t, dir, map[string]string{f: string(b)})
	}
	writeFiles(t, dir, map[string]string{
		"torch_api.h":     "#include <stdlib.h>\n#include <string.h>\nextern thread_local char *torch_last_err;\ntypedef void *tensor;\n",
		"torch/version.h": "#define TORCH_VERSION \"9.9.9\"\n",
		"main.cpp": `#include "mollify_c10d.h"
#include <stdio.h>
thread_local char *torch_last_err = nullptr;
int main() {
  mlf_store s = mlf_store_tcp("h", 1, 2, 1, 1000);
  printf("%d %d|%s|", s == nullptr, mlf_c10d_available(), torch_last_err);
  torch_last_err = nullptr;
  mlf_pg_nccl(nullptr, 0, 1, 1000);
  printf("%s|", torch_last_err);
  torch_last_err = nullptr;
  tensor t = mlf_pg_all_reduce_sum_autograd(nullptr, nullptr);
  printf("autograd %d: %s\n", t == nullptr, torch_last_err);
}
`,
	})
	for _, c := range []struct {
		c10d, nccl int
		want       []string
	}{
		{c10dStubNoC10d, ncclStubCPUOnly, []string{"1 0|distributed training needs libtorch built with c10d/gloo: libtorch 1.2.3 has no c10d headers",
			"the NCCL backend needs a CUDA build of libtorch", "CPU only; use the gloo backend"}},
		{c10dStubNoGloo, ncclStubMissing, []string{"distributed training needs libtorch built with c10d/gloo: setup found no Gloo headers", "apt-get install libgloo-dev",
			"has CUDA but setup found no ProcessGroupNCCL.hpp"}},
		{c10dStubNoCompile, ncclStubNoCompile, []string{"mollify_c10d.cpp did not compile against libtorch 1.2.3", "mollify_c10d_nccl.cpp did not compile"}},
	} {
		c.want = append(c.want, "autograd 1: distributed training needs libtorch built with c10d/gloo")
		bin := filepath.Join(dir, "stub")
		out, err := exec.Command("g++", "-std=c++17", "-I"+dir, "-DMLF_LIBTORCH_VERSION=\"1.2.3\"",
			"-DMLF_C10D_STUB="+string(rune('0'+c.c10d)), "-DMLF_NCCL_STUB="+string(rune('0'+c.nccl)),
			filepath.Join(dir, "main.cpp"), filepath.Join(dir, "mollify_c10d_stub.cpp"), filepath.Join(dir, "mollify_c10d_nccl_stub.cpp"), "-o", bin).CombinedOutput()
		if err != nil {
			t.Fatalf("compiling the stand-ins: %v\n%s", err, out)
		}
		got, err := exec.Command(bin).Output()
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range c.want {
			if !strings.Contains(string(got), w) {
				t.Errorf("stubs %d/%d: %q lacks %q", c.c10d, c.nccl, got, w)
			}
		}
	}
}
