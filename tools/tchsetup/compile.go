package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

func cxxflags(lt *Libtorch) string {
	f := fmt.Sprintf("-std=c++17 -O2 -fPIC -w -D_GLIBCXX_USE_CXX11_ABI=%d", lt.ABI)
	if extra := os.Getenv("TCH_CXXFLAGS"); extra != "" {
		f += " " + extra
	}
	return f
}

// segment is a top-level piece of a C++ file: a function definition or
// anything else, kept verbatim.
type segment struct {
	name    string // function name; empty for non-functions
	sig     string // text up to and including the opening brace
	text    string // the whole segment
	void    bool
	stubbed bool
}

var funcNameRe = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)\s*\(`)

// splitSegments splits C++ source into top-level segments. A function starts
// at a column-0 line holding '(' and not ending in ';', and ends at a
// column-0 '}' (or on its own line for one-line functions).
func splitSegments(src string) []*segment {
	lines := strings.SplitAfter(src, "\n")
	var segs []*segment
	var other strings.Builder
	flush := func() {
		if other.Len() > 0 {
			segs = append(segs, &segment{text: other.String()})
			other.Reset()
		}
	}
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		t := strings.TrimRight(l, " \t\r\n")
		isStart := len(t) > 0 && t[0] != ' ' && t[0] != '\t' && t[0] != '#' && t[0] != '/' && t[0] != '}' &&
			strings.Contains(t, "(") && !strings.HasSuffix(t, ";") && !strings.HasPrefix(t, "extern") &&
			!strings.HasPrefix(t, "typedef") && !strings.HasPrefix(t, "using")
		if !isStart {
			other.WriteString(l)
			continue
		}
		// Collect the signature up to the line ending with '{'.
		j := i
		for j < len(lines) && !strings.Contains(lines[j], "{") {
			j++
		}
		if j == len(lines) {
			other.WriteString(l)
			continue
		}
		sigLines := strings.Join(lines[i:j+1], "")
		brace := strings.Index(sigLines, "{")
		sig := sigLines[:brace+1]
		// One-line function: the braces close on the signature's last line.
		end := j
		last := strings.TrimRight(lines[j], " \t\r\n")
		if !(strings.HasSuffix(last, "}") && strings.Count(sigLines, "{") == strings.Count(sigLines, "}")) {
			for end = j + 1; end < len(lines); end++ {
				if strings.TrimRight(lines[end], " \t\r\n") == "}" {
					break
				}
			}
			if end == len(lines) {
				other.WriteString(l)
				continue
			}
		}
		flush()
		head := strings.TrimSpace(sig)
		if strings.HasPrefix(head, "template") {
			head = head[strings.Index(head, ">")+1:]
			head = strings.TrimSpace(head)
		}
		name := ""
		if m := funcNameRe.FindStringSubmatch(head); m != nil {
			name = m[1]
		}
		segs = append(segs, &segment{
			name: name,
			sig:  sig,
			text: strings.Join(lines[i:end+1], ""),
			void: strings.HasPrefix(head, "void "),
		})
		i = end
	}
	flush()
	return segs
}

func (s *segment) stub(version string) {
	msg := fmt.Sprintf("%s is not available in libtorch %s", s.name, version)
	body := fmt.Sprintf("\n  torch_last_err = strdup(%q);\n", msg)
	if !s.void {
		body += "  return {};\n"
	}
	s.text = s.sig + body + "}\n"
	s.stubbed = true
}

// unit is one translation unit compiled into one object file.
type unit struct {
	name     string
	preamble string
	segs     []*segment
	flags    []string // extra compiler flags (include folders, defines)
}

func (u *unit) render() (string, []int) {
	var b strings.Builder
	b.WriteString(u.preamble)
	line := strings.Count(u.preamble, "\n") + 1
	starts := make([]int, len(u.segs))
	for i, s := range u.segs {
		starts[i] = line
		b.WriteString(s.text)
		line += strings.Count(s.text, "\n")
	}
	return b.String(), starts
}

var diagRe = regexp.MustCompile(`^([^:\s]+\.cpp):(\d+):\d+:\s+(error|fatal error|required from here)`)

// compile compiles a unit, stubbing the functions that fail, until it builds.
func (u *unit) compile(lt *Libtorch, dir, objDir string) (string, error) {
	flags := append(strings.Fields(cxxflags(lt)), "-I"+dir)
	for _, inc := range lt.Includes {
		flags = append(flags, "-I"+inc)
	}
	flags = append(flags, u.flags...)
	// Units are written beside csrc, never over its sources, so a later
	// build for another libtorch starts from the unstubbed code.
	unitDir := filepath.Join(filepath.Dir(dir), "units")
	if err := os.MkdirAll(unitDir, 0o755); err != nil {
		return "", err
	}
	src := filepath.Join(unitDir, u.name+".cpp")
	// Stubs found by an earlier build of the same source are reused, so an
	// unchanged unit is not recompiled just to rediscover them.
	orig, _ := u.render()
	okey := sha256.Sum256([]byte(strings.Join(flags, " ") + "\x00" + orig))
	stubFile := filepath.Join(objDir, u.name+"-"+hex.EncodeToString(okey[:8])+".stubs")
	if b, err := os.ReadFile(stubFile); err == nil {
		known := map[string]bool{}
		for _, n := range strings.Fields(string(b)) {
			known[n] = true
		}
		for _, s := range u.segs {
			if known[s.name] && !s.stubbed {
				s.stub(lt.Version)
			}
		}
	}
	for attempt := 0; attempt < 25; attempt++ {
		text, starts := u.render()
		sum := sha256.Sum256([]byte(strings.Join(flags, " ") + "\x00" + text))
		obj := filepath.Join(objDir, u.name+"-"+hex.EncodeToString(sum[:8])+".o")
		if exists(obj) {
			return obj, u.saveStubs(stubFile)
		}
		if err := os.WriteFile(src, []byte(text), 0o644); err != nil {
			return "", err
		}
		cmd := exec.Command("g++", append(flags, "-c", src, "-o", obj+".tmp")...)
		out, err := cmd.CombinedOutput()
		if err == nil {
			if err := os.Rename(obj+".tmp", obj); err != nil {
				return "", err
			}
			return obj, u.saveStubs(stubFile)
		}
		bad := map[int]bool{}
		sc := bufio.NewScanner(strings.NewReader(string(out)))
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			m := diagRe.FindStringSubmatch(sc.Text())
			if m == nil || filepath.Base(m[1]) != filepath.Base(src) {
				continue
			}
			ln, _ := strconv.Atoi(m[2])
			idx := -1
			for i, s := range starts {
				if s <= ln {
					idx = i
				}
			}
			if idx < 0 || u.segs[idx].name == "" || u.segs[idx].stubbed {
				return "", fmt.Errorf("%s:%d does not compile and is not inside a function that can be stubbed:\n%s", u.name, ln, excerpt(out))
			}
			bad[idx] = true
		}
		if len(bad) == 0 {
			return "", fmt.Errorf("compiling %s failed:\n%s", u.name, excerpt(out))
		}
		for idx := range bad {
			u.segs[idx].stub(lt.Version)
		}
	}
	return "", fmt.Errorf("%s still fails after 25 stubbing rounds", u.name)
}

func (u *unit) saveStubs(path string) error {
	var names []string
	for _, s := range u.segs {
		if s.stubbed {
			names = append(names, s.name)
		}
	}
	return os.WriteFile(path, []byte(strings.Join(names, "\n")), 0o644)
}

func excerpt(out []byte) string {
	s := string(out)
	if len(s) > 4000 {
		s = s[:4000] + "\n..."
	}
	return s
}

// buildLibtch compiles the wrapper in parallel units and links libtch.so.
// It returns the names of the stubbed functions.
func buildLibtch(lt *Libtorch, csrc, out string, jobs, nunits int) ([]string, error) {
	objDir := filepath.Join(filepath.Dir(csrc), "obj")
	if err := os.MkdirAll(objDir, 0o755); err != nil {
		return nil, err
	}
	read := func(n string) (string, error) {
		b, err := os.ReadFile(filepath.Join(csrc, n))
		return string(b), err
	}
	api, err := read("torch_api.cpp")
	if err != nil {
		return nil, err
	}
	gen, err := read("torch_api_generated.cpp.h")
	if err != nil {
		return nil, err
	}
	mlf, err := read("mollify_api.cpp")
	if err != nil {
		return nil, err
	}
	cudaSrc, err := read("mollify_cuda.cpp")
	if err != nil {
		return nil, fmt.Errorf("%w (build/csrc predates the CUDA graph patch: run `make setup` again)", err)
	}
	stubSrc, err := read("mollify_cuda_stub.cpp")
	if err != nil {
		return nil, err
	}
	units := []*unit{
		{name: "torch_api", segs: splitSegments(api)},
		{name: "mollify_api", segs: splitSegments(mlf)},
	}
	// The CUDA graph code needs libtorch's CUDA headers and the CUDA
	// runtime's; without them its stand-in says why each call fails.
	// What became of it is printed again last, where the GPU check's tail
	// of this output shows it.
	var extra []string
	var cudaNote string
	switch {
	case !lt.CUDA:
		cudaNote = "CUDA graphs: libtorch has no CUDA; mollify_cuda_stub.cpp stands in"
		units = append(units, cudaStubUnit(lt, stubSrc, stubCPUOnly))
	case len(lt.CUDAIncludes) == 0:
		cudaNote = fmt.Sprintf("CUDA graphs: no cuda_runtime_api.h in %s/../nvidia/*/include or %s; mollify_cuda_stub.cpp stands in",
			lt.Root, strings.Join(cudaHomes(), ", "))
		units = append(units, cudaStubUnit(lt, stubSrc, stubNoHeaders))
		extra = append(extra, "mlf_cuda_* (no CUDA runtime headers found)")
	default:
		cudaNote = "CUDA graphs: mollify_cuda.cpp with the CUDA headers in " + strings.Join(lt.CUDAIncludes, " ")
		cu := &unit{name: cudaUnitName, segs: splitSegments(cudaSrc)}
		for _, inc := range lt.CUDAIncludes {
			cu.flags = append(cu.flags, "-I"+inc)
		}
		units = append(units, cu)
	}
	fmt.Println(cudaNote)
	c10dStub, ncclStub, c10dNote := c10dPlan(lt)
	fmt.Println(c10dNote)
	cu, err := c10dUnits(lt, read, c10dStub, ncclStub)
	if err != nil {
		return nil, err
	}
	units = append(units, cu...)
	var funcs []*segment
	for _, s := range splitSegments(gen) {
		if s.name != "" {
			funcs = append(funcs, s)
		}
	}
	per := (len(funcs) + nunits - 1) / nunits
	for i := 0; i < len(funcs); i += per {
		units = append(units, &unit{
			name:     fmt.Sprintf("generated_%02d", i/per),
			preamble: "#include \"torch_api.h\"\n",
			segs:     funcs[i:min(i+per, len(funcs))],
		})
	}
	fmt.Printf("compiling %d units (%d generated functions) with %d jobs\n", len(units), len(funcs), jobs)

	objs := make([]string, len(units))
	errs := make([]error, len(units))
	sem := make(chan struct{}, jobs)
	var wg sync.WaitGroup
	for i, u := range units {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			objs[i], errs[i] = u.compile(lt, csrc, objDir)
			if errs[i] == nil {
				fmt.Printf("  %s ok\n", u.name)
			}
		}()
	}
	wg.Wait()
	// mollify_cuda.cpp is first compiled on the GPU machine, against a
	// libtorch this one cannot test: if it fails as a whole, the rest of
	// libtch still builds, with the stand-in saying so.
	for i, u := range units {
		if u.name != cudaUnitName || errs[i] == nil {
			continue
		}
		fmt.Printf("CUDA graphs: mollify_cuda.cpp did not compile against libtorch %s:\n%v\n", lt.Version, errs[i])
		cudaNote = fmt.Sprintf("CUDA graphs: mollify_cuda.cpp did not compile against libtorch %s; mollify_cuda_stub.cpp stands in. First errors:\n%s",
			lt.Version, firstErrors(errs[i].Error(), 8))
		units[i] = cudaStubUnit(lt, stubSrc, stubNoCompile)
		objs[i], errs[i] = units[i].compile(lt, csrc, objDir)
		extra = append(extra, "mlf_cuda_* (mollify_cuda.cpp did not compile)")
	}
	// The same for the c10d units: libtch builds without them.
	c10dFailed := false
	for i, u := range units {
		if (u.name != c10dUnitName && u.name != ncclUnitName) || errs[i] == nil {
			continue
		}
		fmt.Printf("c10d: %s.cpp did not compile against libtorch %s:\n%v\n", u.name, lt.Version, errs[i])
		c10dNote += fmt.Sprintf("; %s.cpp did not compile, its stand-in is used. First errors:\n%s", u.name, firstErrors(errs[i].Error(), 8))
		if u.name == c10dUnitName {
			c10dFailed = true
			units[i], errs[i] = c10dStubUnit(lt, read, c10dStubNoCompile)
		} else {
			units[i], errs[i] = ncclStubUnit(lt, read, ncclStubNoCompile)
		}
		if errs[i] == nil {
			objs[i], errs[i] = units[i].compile(lt, csrc, objDir)
		}
		extra = append(extra, u.name+" (did not compile)")
	}
	// NCCL's group is built on the c10d unit's handles.
	for i, u := range units {
		if c10dFailed && u.name == ncclUnitName {
			if units[i], errs[i] = ncclStubUnit(lt, read, ncclStubMissing); errs[i] == nil {
				objs[i], errs[i] = units[i].compile(lt, csrc, objDir)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, u := range units {
		if u.name != cudaUnitName {
			continue
		}
		var bad []string
		for _, sg := range u.segs {
			if sg.stubbed {
				bad = append(bad, sg.name)
			}
		}
		if len(bad) > 0 {
			cudaNote += "; stubbed, as they did not compile: " + strings.Join(bad, " ")
		}
	}
	stubs := extra
	for _, u := range units {
		for _, s := range u.segs {
			if s.stubbed {
				stubs = append(stubs, s.name)
			}
		}
	}
	args := append([]string{"-shared", "-o", out + ".tmp"}, objs...)
	args = append(args, "-L"+lt.Lib, "-Wl,-rpath,"+lt.Lib, "-Wl,--no-as-needed", "-ltorch", "-ltorch_cpu", "-lc10")
	if lt.CUDA {
		args = append(args, "-ltorch_cuda")
		if exists(filepath.Join(lt.Lib, "libc10_cuda.so")) {
			args = append(args, "-lc10_cuda")
		}
	}
	args = append(args, "-Wl,--as-needed", "-ldl")
	if o, err := exec.Command("g++", args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("linking libtch.so: %v\n%s", err, excerpt(o))
	}
	fmt.Println(cudaNote)
	fmt.Println(c10dNote)
	return stubs, os.Rename(out+".tmp", out)
}

const cudaUnitName = "mollify_cuda"

// Why mollify_cuda_stub.cpp stands in for mollify_cuda.cpp (its
// MLF_CUDA_STUB): the libtorch has no CUDA, no CUDA runtime headers were
// found for it, or mollify_cuda.cpp did not compile against it.
const (
	stubCPUOnly = iota + 1
	stubNoHeaders
	stubNoCompile
)

func cudaStubUnit(lt *Libtorch, src string, why int) *unit {
	return &unit{name: "mollify_cuda_stub", segs: splitSegments(src), flags: []string{
		fmt.Sprintf("-DMLF_CUDA_STUB=%d", why),
		fmt.Sprintf("-DMLF_LIBTORCH_VERSION=%q", lt.Version),
	}}
}

// firstErrors returns up to n compiler error lines of out, shortened.
func firstErrors(out string, n int) string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if !strings.Contains(l, "error") {
			continue
		}
		if len(l) > 300 {
			l = l[:300] + "..."
		}
		if lines = append(lines, "  "+l); len(lines) == n {
			break
		}
	}
	return strings.Join(lines, "\n")
}
