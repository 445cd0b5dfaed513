package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Libtorch describes the libtorch that libtch.so is built against.
type Libtorch struct {
	Root     string   // folder given by $LIBTORCH, or "/usr" for Debian's package
	Lib      string   // folder holding libtorch.so
	Includes []string // -I folders
	Version  string   // e.g. 1.13.1
	ABI      int      // _GLIBCXX_USE_CXX11_ABI
	CUDA     bool     // libtorch_cuda.so is present
	// CUDAIncludes are the -I folders of the CUDA runtime headers that
	// mollify_cuda.cpp needs; empty without CUDA or when none were found.
	CUDAIncludes []string
	// C10d: the c10d headers are there and ProcessGroupGloo is exported;
	// Gloo: the Gloo headers were found; NCCL: a CUDA libtorch with
	// ProcessGroupNCCL (see c10d.go).
	C10d, Gloo, NCCL bool
}

func findLibtorch() (*Libtorch, error) {
	var lt *Libtorch
	var err error
	if p := os.Getenv("LIBTORCH"); p != "" {
		lt, err = libtorchFolder(p)
	} else {
		lt, err = debianLibtorch()
	}
	if err != nil {
		return nil, err
	}
	if lt.CUDA {
		lt.CUDAIncludes = cudaIncludes(lt.Root, cudaHomes())
	}
	c10dSupport(lt, []string{"/usr/include"})
	// Debian's libtorch is built against Debian's Gloo, whose headers are
	// a separate package.
	if lt.Root == "/usr" && lt.C10d && !lt.Gloo {
		if err := aptInstall("libgloo-dev"); err != nil {
			fmt.Printf("installing libgloo-dev failed (%v): distributed training will be unavailable\n", err)
		}
		c10dSupport(lt, []string{"/usr/include"})
	}
	return lt, nil
}

// cudaHomes are the CUDA toolkit folders to look in after the NVIDIA
// wheels beside a pip torch. /usr comes last: Debian's nvidia-cuda-dev,
// which its CUDA build of libtorch (libtorch-cuda-dev) goes with, puts
// the CUDA headers in /usr/include (g++ ignores an -I for that folder, so
// the system search order stays as it is).
func cudaHomes() []string {
	var homes []string
	for _, env := range []string{"CUDA_HOME", "CUDA_PATH"} {
		if v := os.Getenv(env); v != "" {
			homes = append(homes, v)
		}
	}
	return append(homes, "/usr/local/cuda", "/usr")
}

var (
	torchCUDARe = regexp.MustCompile(`(?m)^cuda\s*(?::[^=\n]*)?=\s*['"](\d+)\.`)
	cudaVerRe   = regexp.MustCompile(`(?m)^#define\s+CUDA_VERSION\s+(\d+)`)
)

// cudaIncludes finds the CUDA runtime headers (cuda_runtime_api.h, with
// cuda.h beside it) for a libtorch with CUDA. A pip torch's own NVIDIA
// wheels come first, since they match the CUDA it was built with: they lie
// in site-packages/nvidia/*/include next to the torch folder
// (nvidia/cuda_runtime/include up to CUDA 12, nvidia/cu13/include from
// CUDA 13 on). Then each of homes/include. Of several, one whose CUDA major
// version matches torch's (version.py) is preferred; the other NVIDIA
// include folders follow the chosen one, for headers it lacks.
func cudaIncludes(root string, homes []string) []string {
	var found, others []string
	wheels, _ := filepath.Glob(filepath.Join(filepath.Dir(root), "nvidia", "*", "include"))
	sort.Strings(wheels)
	for _, d := range wheels {
		if exists(filepath.Join(d, "cuda_runtime_api.h")) {
			found = append(found, d)
		} else {
			others = append(others, d)
		}
	}
	for _, h := range homes {
		if d := filepath.Join(h, "include"); exists(filepath.Join(d, "cuda_runtime_api.h")) {
			found = append(found, d)
		}
	}
	if len(found) == 0 {
		return nil
	}
	best := found[0]
	if b, err := os.ReadFile(filepath.Join(root, "version.py")); err == nil {
		if m := torchCUDARe.FindSubmatch(b); m != nil {
			for _, d := range found {
				if cudaMajor(d) == string(m[1]) {
					best = d
					break
				}
			}
		}
	}
	out := []string{best}
	// From CUDA 13 the CCCL headers (nv/target, cuda/std) sit in include/cccl.
	if cccl := filepath.Join(best, "cccl"); exists(cccl) {
		out = append(out, cccl)
	}
	return append(out, others...)
}

// cudaMajor reads the CUDA major version from the cuda.h in dir ("" if unknown).
func cudaMajor(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "cuda.h"))
	if err != nil {
		return ""
	}
	m := cudaVerRe.FindSubmatch(b)
	if m == nil {
		return ""
	}
	v, _ := strconv.Atoi(string(m[1]))
	return strconv.Itoa(v / 1000)
}

// libtorchFolder accepts the official zip layout or a pip torch package
// folder; both have include/ and lib/.
func libtorchFolder(root string) (*Libtorch, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	lt := &Libtorch{
		Root:     root,
		Lib:      filepath.Join(root, "lib"),
		Includes: []string{filepath.Join(root, "include"), filepath.Join(root, "include", "torch", "csrc", "api", "include")},
	}
	versionH := filepath.Join(lt.Includes[1], "torch", "version.h")
	if !exists(versionH) || !exists(filepath.Join(lt.Lib, "libtorch.so")) {
		return nil, fmt.Errorf("LIBTORCH=%s is not a libtorch folder: it needs include/torch/csrc/api/include/torch/version.h and lib/libtorch.so (use the unzipped libtorch, or the torch folder of a pip install, e.g. $(python -c 'import torch,os;print(os.path.dirname(torch.__file__))'))", root)
	}
	lt.Version = folderVersion(root, versionH)
	lt.ABI = cmakeABI(filepath.Join(root, "share", "cmake", "Torch", "TorchConfig.cmake"))
	lt.CUDA = exists(filepath.Join(lt.Lib, "libtorch_cuda.so"))
	return lt, nil
}

func debianLibtorch() (*Libtorch, error) {
	const versionH = "/usr/include/torch/csrc/api/include/torch/version.h"
	if !exists(versionH) {
		if err := aptInstall("libtorch-dev"); err != nil {
			return nil, fmt.Errorf("libtorch is missing and installing Debian's libtorch-dev failed: %w; install it with `apt-get install libtorch-dev` or set LIBTORCH to a libtorch folder", err)
		}
	}
	matches, _ := filepath.Glob("/usr/lib/*/libtorch.so")
	if len(matches) == 0 {
		return nil, fmt.Errorf("libtorch-dev is installed but no /usr/lib/*/libtorch.so was found")
	}
	lib := filepath.Dir(matches[0])
	lt := &Libtorch{
		Root:     "/usr",
		Lib:      lib,
		Includes: []string{"/usr/include", "/usr/include/torch/csrc/api/include"},
		ABI:      cmakeABI(filepath.Join(lib, "cmake", "Torch", "TorchConfig.cmake")),
		CUDA:     exists(filepath.Join(lib, "libtorch_cuda.so")),
	}
	out, err := exec.Command("dpkg-query", "-W", "-f=${Version}", "libtorch-dev").Output()
	if v := strings.TrimSpace(string(out)); err == nil && v != "" {
		lt.Version = strings.SplitN(strings.SplitN(v, "+", 2)[0], "-", 2)[0]
	} else {
		lt.Version = headerVersion(versionH)
	}
	return lt, nil
}

func aptInstall(pkgs ...string) error {
	prefix := []string{}
	if os.Geteuid() != 0 {
		prefix = []string{"sudo", "-n"}
	}
	run := func(args ...string) error {
		args = append(prefix, args...)
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		return cmd.Run()
	}
	fmt.Println("installing", strings.Join(pkgs, " "), "with apt-get")
	install := append([]string{"apt-get", "install", "-y", "-q", "--no-install-recommends"}, pkgs...)
	if err := run(install...); err == nil {
		return nil
	}
	if err := run("apt-get", "update", "-q"); err != nil {
		return err
	}
	return run(install...)
}

var versionRe = regexp.MustCompile(`__version__\s*=\s*['"]([0-9][^'"+]*)`)

func folderVersion(root, versionH string) string {
	if b, err := os.ReadFile(filepath.Join(root, "build-version")); err == nil {
		return strings.SplitN(strings.TrimSpace(string(b)), "+", 2)[0]
	}
	if b, err := os.ReadFile(filepath.Join(root, "version.py")); err == nil {
		if m := versionRe.FindSubmatch(b); m != nil {
			return string(m[1])
		}
	}
	return headerVersion(versionH)
}

func headerVersion(versionH string) string {
	b, err := os.ReadFile(versionH)
	if err != nil {
		return "unknown"
	}
	get := func(name string) string {
		m := regexp.MustCompile(`#define ` + name + ` (\d+)`).FindSubmatch(b)
		if m == nil {
			return "?"
		}
		return string(m[1])
	}
	return get("TORCH_VERSION_MAJOR") + "." + get("TORCH_VERSION_MINOR") + "." + get("TORCH_VERSION_PATCH")
}

var abiRe = regexp.MustCompile(`_GLIBCXX_USE_CXX11_ABI=(\d)`)

// cmakeABI reads the C++ ABI libtorch was built with; new builds use 1.
func cmakeABI(cmake string) int {
	b, err := os.ReadFile(cmake)
	if err != nil {
		return 1
	}
	if m := abiRe.FindSubmatch(b); m != nil && m[1][0] == '0' {
		return 0
	}
	return 1
}
