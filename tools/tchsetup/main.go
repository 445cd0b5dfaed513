// Command tchsetup prepares gotch v0.9.1 for mollify: it finds libtorch,
// copies gotch from the Go module cache into build/gotch, applies the
// project's patch series and source rewrites, and builds the C++ wrapper
// into build/lib/libtch.so, stubbing any function the local libtorch lacks.
//
// It is idempotent: a stamp keyed on the libtorch version and location, the
// patches, this tool's source and the compiler flags makes a second run with
// nothing changed return in seconds.
//
// Run it through `make setup` from the repository root.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

const (
	gotchModule  = "github.com/sugarme/gotch"
	gotchVersion = "v0.9.1"
)

// gotchDirs are the parts of the gotch module that mollify builds.
var gotchDirs = []string{"libtch", "ts", "nn", "half", "pickle", "vision", "dutil"}

func main() {
	root := flag.String("root", ".", "repository root")
	jobs := flag.Int("jobs", runtime.NumCPU(), "parallel compile jobs")
	units := flag.Int("units", 0, "translation units for the generated code (0: 2×jobs, at least 4)")
	force := flag.Bool("force", false, "rebuild even if the stamp matches")
	onlyLib := flag.Bool("only-lib", false, "only rebuild build/lib/libtch.so from an existing build/csrc, for the local libtorch (no Go needed: used on machines that run a Go binary built elsewhere)")
	flag.Parse()
	if *onlyLib {
		if err := rebuildLib(*root, *jobs, *units); err != nil {
			fmt.Fprintln(os.Stderr, "tchsetup:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*root, *jobs, *units, *force); err != nil {
		fmt.Fprintln(os.Stderr, "tchsetup:", err)
		os.Exit(1)
	}
}

func run(root string, jobs, units int, force bool) error {
	root, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	if units <= 0 {
		units = max(4, 2*jobs)
	}
	build := filepath.Join(root, "build")
	lt, err := findLibtorch()
	if err != nil {
		return err
	}
	fmt.Printf("libtorch %s (%s ABI=%d cuda=%v)\n", lt.Version, lt.Root, lt.ABI, lt.CUDA)

	key, err := stampKey(root, lt)
	if err != nil {
		return err
	}
	stamp := filepath.Join(build, "stamp")
	if !force {
		if b, err := os.ReadFile(stamp); err == nil && string(b) == key && exists(filepath.Join(build, "lib", "libtch.so")) && exists(filepath.Join(build, "gotch", "go.mod")) {
			fmt.Println("build/ is up to date")
			return nil
		}
	}
	os.Remove(stamp)

	start := time.Now()
	src, err := gotchSource()
	if err != nil {
		return err
	}
	gotchDir := filepath.Join(build, "gotch")
	if err := os.RemoveAll(gotchDir); err != nil {
		return err
	}
	if err := copyModule(src, gotchDir); err != nil {
		return fmt.Errorf("copying gotch from the module cache: %w", err)
	}
	if err := applyPatches(filepath.Join(root, "patches"), gotchDir); err != nil {
		return err
	}
	if err := rewriteGo(gotchDir); err != nil {
		return fmt.Errorf("rewriting gotch Go sources: %w", err)
	}
	csrc := filepath.Join(build, "csrc")
	if err := moveCSources(filepath.Join(gotchDir, "libtch"), csrc); err != nil {
		return err
	}
	lib := filepath.Join(build, "lib")
	if err := os.MkdirAll(lib, 0o755); err != nil {
		return err
	}
	stubs, err := buildLibtch(lt, csrc, filepath.Join(lib, "libtch.so"), jobs, units)
	if err != nil {
		return err
	}
	sort.Strings(stubs)
	if err := os.WriteFile(filepath.Join(build, "stubs.txt"), []byte(strings.Join(stubs, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	env := fmt.Sprintf("LIBTORCH_VERSION=%s\nLIBTORCH_LIB=%s\nLIBTORCH_CUDA=%v\nTCH_LIB=%s\n", lt.Version, lt.Lib, lt.CUDA, lib)
	if err := os.WriteFile(filepath.Join(build, "env"), []byte(env), 0o644); err != nil {
		return err
	}
	fmt.Printf("built build/lib/libtch.so in %s, %d functions stubbed for libtorch %s (list: build/stubs.txt)\n",
		time.Since(start).Round(time.Second), len(stubs), lt.Version)
	return os.WriteFile(stamp, []byte(key), 0o644)
}

// rebuildLib builds libtch.so for the local libtorch from build/csrc, which
// a full setup prepared elsewhere.
func rebuildLib(root string, jobs, units int) error {
	if units <= 0 {
		units = max(4, 2*jobs)
	}
	build := filepath.Join(root, "build")
	csrc := filepath.Join(build, "csrc")
	if !exists(filepath.Join(csrc, "torch_api_generated.cpp.h")) {
		return fmt.Errorf("%s has no prepared C++ sources; run `make setup` first (or carry build/csrc)", csrc)
	}
	lt, err := findLibtorch()
	if err != nil {
		return err
	}
	fmt.Printf("libtorch %s (%s ABI=%d cuda=%v)\n", lt.Version, lt.Root, lt.ABI, lt.CUDA)
	lib := filepath.Join(build, "lib")
	if err := os.MkdirAll(lib, 0o755); err != nil {
		return err
	}
	start := time.Now()
	stubs, err := buildLibtch(lt, csrc, filepath.Join(lib, "libtch.so"), jobs, units)
	if err != nil {
		return err
	}
	sort.Strings(stubs)
	fmt.Printf("built build/lib/libtch.so in %s, %d functions stubbed for libtorch %s\n", time.Since(start).Round(time.Second), len(stubs), lt.Version)
	return os.WriteFile(filepath.Join(build, "stubs.txt"), []byte(strings.Join(stubs, "\n")+"\n"), 0o644)
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// stampKey hashes everything the build output depends on.
func stampKey(root string, lt *Libtorch) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s|%s|%s|%s|%d|%v|%s|%s|%s|c10d=%v,%v,%v\n", gotchVersion, lt.Version, lt.Root, lt.Lib, lt.ABI, lt.CUDA, strings.Join(lt.Includes, ":"), strings.Join(lt.CUDAIncludes, ":"), cxxflags(lt), lt.C10d, lt.Gloo, lt.NCCL)
	for _, dir := range []string{filepath.Join(root, "patches"), filepath.Join(root, "tools", "tchsetup")} {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "%s %d\n", filepath.Base(p), len(b))
			h.Write(b)
			return nil
		})
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// gotchSource returns the module cache folder of gotch, downloading it first
// if needed.
func gotchSource() (string, error) {
	tmp, err := os.MkdirTemp("", "tchsetup")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command("go", "mod", "download", "-json", gotchModule+"@"+gotchVersion)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GO111MODULE=on")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go mod download %s@%s: %w (is the Go module proxy reachable?)", gotchModule, gotchVersion, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, `"Dir":`) {
			dir := strings.Trim(strings.TrimSpace(strings.TrimPrefix(line, `"Dir":`)), `",`)
			return dir, nil
		}
	}
	return "", fmt.Errorf("go mod download printed no Dir for %s@%s", gotchModule, gotchVersion)
}

func copyModule(src, dst string) error {
	for _, f := range []string{"go.mod", "go.sum", "LICENSE"} {
		if err := copyFile(filepath.Join(src, f), filepath.Join(dst, f)); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".go") {
			if err := copyFile(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
				return err
			}
		}
	}
	for _, d := range gotchDirs {
		err := filepath.WalkDir(filepath.Join(src, d), func(p string, de fs.DirEntry, err error) error {
			if err != nil || de.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(src, p)
			return copyFile(p, filepath.Join(dst, rel))
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// applyPatches applies patches/NNNN-*.patch in name order with git apply.
func applyPatches(dir, target string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.patch"))
	if err != nil {
		return err
	}
	sort.Strings(files)
	if len(files) == 0 {
		return errors.New("no patches found in " + dir)
	}
	for _, f := range files {
		cmd := exec.Command("git", "apply", "--whitespace=nowarn", f)
		cmd.Dir = target
		// Stop git from treating the enclosing repository as the patch root.
		cmd.Env = append(os.Environ(), "GIT_CEILING_DIRECTORIES="+filepath.Dir(target), "GIT_DIR=/nonexistent")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("applying %s: %v\n%s", filepath.Base(f), err, out)
		}
		fmt.Println("applied", filepath.Base(f))
	}
	return nil
}

// moveCSources moves the C++ sources out of the Go package folder, so that
// cgo compiles only the Go side and links libtch.so.
func moveCSources(libtch, csrc string) error {
	if err := os.RemoveAll(csrc); err != nil {
		return err
	}
	if err := os.MkdirAll(csrc, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(libtch)
	if err != nil {
		return err
	}
	for _, e := range entries {
		n := e.Name()
		switch {
		case strings.HasSuffix(n, ".cpp"), strings.HasSuffix(n, ".cpp.h"), strings.HasPrefix(n, "stb_"):
			if err := os.Rename(filepath.Join(libtch, n), filepath.Join(csrc, n)); err != nil {
				return err
			}
		case strings.HasSuffix(n, ".h"):
			if err := copyFile(filepath.Join(libtch, n), filepath.Join(csrc, n)); err != nil {
				return err
			}
		}
	}
	return nil
}
