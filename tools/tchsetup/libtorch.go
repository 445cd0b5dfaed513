package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
}

func findLibtorch() (*Libtorch, error) {
	if p := os.Getenv("LIBTORCH"); p != "" {
		return libtorchFolder(p)
	}
	return debianLibtorch()
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
