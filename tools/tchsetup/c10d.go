package main

import (
	"debug/elf"
	"fmt"
	"path/filepath"
	"strings"
)

// c10d (issue 16): libtch's distributed code is two optional units, like
// the CUDA graph code. mollify_c10d.cpp (stores, the Gloo process group,
// collectives) needs the libtorch's c10d headers, a libtorch that exports
// ProcessGroupGloo, and the Gloo headers (Debian: libgloo-dev, which setup
// installs for Debian's libtorch); mollify_c10d_nccl.cpp needs that too,
// plus a CUDA libtorch with ProcessGroupNCCL. Each has a stand-in whose
// calls say why it is missing.

const (
	c10dUnitName = "mollify_c10d"
	ncclUnitName = "mollify_c10d_nccl"
)

// Why mollify_c10d_stub.cpp stands in (its MLF_C10D_STUB).
const (
	c10dStubNoC10d = iota + 1 // no c10d headers or no ProcessGroupGloo export
	c10dStubNoGloo            // no Gloo headers
	c10dStubNoCompile
)

// Why mollify_c10d_nccl_stub.cpp stands in (its MLF_NCCL_STUB).
const (
	ncclStubCPUOnly = iota + 1
	ncclStubMissing // CUDA, but no ProcessGroupNCCL (headers, export) or no c10d unit
	ncclStubNoCompile
)

// findInclude returns the first folder of dirs holding rel, or "".
func findInclude(dirs []string, rel string) string {
	for _, d := range dirs {
		if exists(filepath.Join(d, rel)) {
			return d
		}
	}
	return ""
}

// exportsSymbol reports whether one of libs (shared objects in dir)
// defines a dynamic symbol containing part.
func exportsSymbol(dir string, libs []string, part string) bool {
	for _, name := range libs {
		f, err := elf.Open(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		syms, err := f.DynamicSymbols()
		f.Close()
		if err != nil {
			continue
		}
		for _, s := range syms {
			if s.Section != elf.SHN_UNDEF && strings.Contains(s.Name, part) {
				return true
			}
		}
	}
	return false
}

// c10dSupport fills lt's C10d, Gloo and NCCL fields.
func c10dSupport(lt *Libtorch, systemIncludes []string) {
	inc := append(append([]string{}, lt.Includes...), systemIncludes...)
	lt.C10d = findInclude(inc, "torch/csrc/distributed/c10d/ProcessGroupGloo.hpp") != "" &&
		exportsSymbol(lt.Lib, []string{"libtorch_cpu.so", "libtorch.so"}, "ProcessGroupGloo")
	lt.Gloo = findInclude(inc, "gloo/context.h") != ""
	lt.NCCL = lt.CUDA && findInclude(inc, "torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp") != "" &&
		exportsSymbol(lt.Lib, []string{"libtorch_cuda.so"}, "ProcessGroupNCCL")
}

// c10dPlan picks the sources of both units for lt: the real files or the
// stand-ins with their reasons, and a line for setup's output.
func c10dPlan(lt *Libtorch) (c10dStub, ncclStub int, note string) {
	switch {
	case !lt.C10d:
		c10dStub = c10dStubNoC10d
		note = "c10d: libtorch has no c10d headers or no ProcessGroupGloo; mollify_c10d_stub.cpp stands in"
	case !lt.Gloo:
		c10dStub = c10dStubNoGloo
		note = "c10d: no Gloo headers (gloo/context.h; Debian: libgloo-dev); mollify_c10d_stub.cpp stands in"
	default:
		note = "c10d: mollify_c10d.cpp (Gloo)"
	}
	switch {
	case !lt.CUDA:
		ncclStub = ncclStubCPUOnly
	case !lt.NCCL || c10dStub != 0 || len(lt.CUDAIncludes) == 0:
		ncclStub = ncclStubMissing
		note += "; NCCL: no ProcessGroupNCCL, CUDA headers or c10d unit, mollify_c10d_nccl_stub.cpp stands in"
	default:
		note += "; NCCL: mollify_c10d_nccl.cpp"
	}
	return c10dStub, ncclStub, note
}

// c10dUnits returns the units for the plan; the sources are read from csrc.
func c10dUnits(lt *Libtorch, read func(string) (string, error), c10dStub, ncclStub int) ([]*unit, error) {
	var units []*unit
	if c10dStub == 0 {
		src, err := read("mollify_c10d.cpp")
		if err != nil {
			return nil, fmt.Errorf("%w (build/csrc predates the c10d patch: run `make setup` again)", err)
		}
		units = append(units, &unit{name: c10dUnitName, segs: splitSegments(src), flags: []string{"-DUSE_C10D_GLOO"}})
	} else {
		u, err := c10dStubUnit(lt, read, c10dStub)
		if err != nil {
			return nil, err
		}
		units = append(units, u)
	}
	if ncclStub == 0 {
		src, err := read("mollify_c10d_nccl.cpp")
		if err != nil {
			return nil, err
		}
		u := &unit{name: ncclUnitName, segs: splitSegments(src), flags: []string{"-DUSE_C10D_GLOO", "-DUSE_C10D_NCCL"}}
		for _, inc := range lt.CUDAIncludes {
			u.flags = append(u.flags, "-I"+inc)
		}
		units = append(units, u)
	} else {
		u, err := ncclStubUnit(lt, read, ncclStub)
		if err != nil {
			return nil, err
		}
		units = append(units, u)
	}
	return units, nil
}

func c10dStubUnit(lt *Libtorch, read func(string) (string, error), why int) (*unit, error) {
	src, err := read("mollify_c10d_stub.cpp")
	if err != nil {
		return nil, err
	}
	return &unit{name: "mollify_c10d_stub", segs: splitSegments(src), flags: []string{
		fmt.Sprintf("-DMLF_C10D_STUB=%d", why), fmt.Sprintf("-DMLF_LIBTORCH_VERSION=%q", lt.Version),
	}}, nil
}

func ncclStubUnit(lt *Libtorch, read func(string) (string, error), why int) (*unit, error) {
	src, err := read("mollify_c10d_nccl_stub.cpp")
	if err != nil {
		return nil, err
	}
	return &unit{name: "mollify_c10d_nccl_stub", segs: splitSegments(src), flags: []string{
		fmt.Sprintf("-DMLF_NCCL_STUB=%d", why), fmt.Sprintf("-DMLF_LIBTORCH_VERSION=%q", lt.Version),
	}}, nil
}
