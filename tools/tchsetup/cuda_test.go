package main

import (
	"bufio"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
)

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, text := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// The CUDA runtime headers of a pip torch come from its own NVIDIA wheels
// (CUDA 12: nvidia/cuda_runtime/include; CUDA 13: nvidia/cu13/include, with
// CCCL in include/cccl), then from the toolkit folders; the CUDA major
// version of torch's version.py picks among several.
func TestCUDAIncludes(t *testing.T) {
	const cuda13 = "#define CUDA_VERSION 13000\n"
	const cuda12 = "#define CUDA_VERSION 12040\n"
	tests := []struct {
		name  string
		files map[string]string
		homes []string // under the test folder
		want  []string // under the test folder
	}{
		{
			name: "cu13 wheels",
			files: map[string]string{
				"site/torch/version.py":                       "__version__ = '2.11.0+cu130'\ncuda: Optional[str] = '13.0'\n",
				"site/torch/lib/libtorch_cuda.so":             "",
				"site/nvidia/cu13/include/cuda_runtime_api.h": "",
				"site/nvidia/cu13/include/cuda.h":             cuda13,
				"site/nvidia/cu13/include/cccl/nv/target":     "",
				"site/nvidia/cu13/lib/libcudart.so.13":        "",
				"site/nvidia/cudnn/include/cudnn.h":           "",
				"site/nvidia/nccl/include/nccl.h":             "",
				"cuda-12/include/cuda_runtime_api.h":          "",
				"cuda-12/include/cuda.h":                      cuda12,
			},
			homes: []string{"cuda-12"},
			want: []string{"site/nvidia/cu13/include", "site/nvidia/cu13/include/cccl",
				"site/nvidia/cudnn/include", "site/nvidia/nccl/include"},
		},
		{
			name: "cu12 wheels",
			files: map[string]string{
				"site/torch/version.py":                               "cuda = '12.4'\n",
				"site/nvidia/cuda_runtime/include/cuda_runtime_api.h": "",
				"site/nvidia/cuda_runtime/include/cuda.h":             cuda12,
				"site/nvidia/cublas/include/cublas.h":                 "",
			},
			want: []string{"site/nvidia/cuda_runtime/include", "site/nvidia/cublas/include"},
		},
		{
			name: "the toolkit whose major version matches torch's",
			files: map[string]string{
				"site/torch/version.py":                       "cuda = '12.8'\n",
				"site/nvidia/cu13/include/cuda_runtime_api.h": "",
				"site/nvidia/cu13/include/cuda.h":             cuda13,
				"cuda-12/include/cuda_runtime_api.h":          "",
				"cuda-12/include/cuda.h":                      cuda12,
			},
			homes: []string{"missing", "cuda-12"},
			want:  []string{"cuda-12/include"},
		},
		{
			name: "a libtorch zip and a toolkit",
			files: map[string]string{
				"site/torch/lib/libtorch_cuda.so":    "",
				"cuda-12/include/cuda_runtime_api.h": "",
			},
			homes: []string{"cuda-12"},
			want:  []string{"cuda-12/include"},
		},
		{
			name: "no headers anywhere",
			files: map[string]string{
				"site/torch/version.py":                "cuda = '13.0'\n",
				"site/nvidia/cu13/lib/libcudart.so.13": "",
				"site/nvidia/cudnn/include/cudnn.h":    "",
			},
			homes: []string{"cuda-12"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tt.files)
			var homes []string
			for _, h := range tt.homes {
				homes = append(homes, filepath.Join(dir, h))
			}
			var want []string
			for _, w := range tt.want {
				want = append(want, filepath.Join(dir, w))
			}
			got := cudaIncludes(filepath.Join(dir, "site", "torch"), homes)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("cudaIncludes =\n  %v\nwant\n  %v", got, want)
			}
		})
	}
}

// newFiles returns the files a patch creates, by path.
func newFiles(t *testing.T, patch string) map[string]string {
	t.Helper()
	f, err := os.Open(patch)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string]string{}
	var cur string
	var b strings.Builder
	flush := func() {
		if cur != "" {
			files[cur] = b.String()
		}
		cur = ""
		b.Reset()
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	prev := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "diff --git "):
			flush()
		case strings.HasPrefix(line, "+++ b/") && prev == "--- /dev/null":
			cur = strings.TrimPrefix(line, "+++ b/")
		case cur != "" && strings.HasPrefix(line, "+"):
			b.WriteString(line[1:] + "\n")
		}
		prev = line
	}
	flush()
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return files
}

// setup compiles mollify_cuda.cpp or its stand-in: both define the same C
// API, every function of which mollify_api.h declares, and both split into
// exactly those functions (plus the real file's helpers), so that a
// function 2.x does not compile is stubbed on its own.
func TestCUDASourcesSplitIntoTheirFunctions(t *testing.T) {
	patches, err := filepath.Glob(filepath.Join("..", "..", "patches", "*cuda-graphs*.patch"))
	if err != nil || len(patches) != 1 {
		t.Fatalf("want one CUDA graph patch in patches/, got %v (%v)", patches, err)
	}
	files := newFiles(t, patches[0])
	names := func(path string) []string {
		src, ok := files[path]
		if !ok {
			t.Fatalf("%s creates no %s", patches[0], path)
		}
		var out []string
		for _, s := range splitSegments(src) {
			if s.name != "" {
				out = append(out, s.name)
			}
		}
		sort.Strings(out)
		return out
	}
	real, stub := names("libtch/mollify_cuda.cpp"), names("libtch/mollify_cuda_stub.cpp")
	api := []string{
		"mlf_cuda_graph_capture_begin", "mlf_cuda_graph_capture_end", "mlf_cuda_graph_free",
		"mlf_cuda_graph_new", "mlf_cuda_graph_replay", "mlf_cuda_graph_reset", "mlf_cuda_graphs_available",
		"mlf_cuda_memory_stats", "mlf_cuda_reset_peak_stats", "mlf_cuda_side_stream_begin",
		"mlf_cuda_side_stream_end", "mlf_cuda_synchronize",
	}
	if want := append(append([]string{}, api...), "mlf_cuda_device", "mlf_stream_wait"); !sameSet(real, want) {
		t.Errorf("mollify_cuda.cpp splits into %v, want %v", real, want)
	}
	if want := append(append([]string{}, api...), "mlf_no_cuda"); !sameSet(stub, want) {
		t.Errorf("mollify_cuda_stub.cpp splits into %v, want %v", stub, want)
	}
	// The header is a modified file: look for the declarations in its diff.
	b, err := os.ReadFile(patches[0])
	if err != nil {
		t.Fatal(err)
	}
	_, header, _ := strings.Cut(string(b), "diff --git a/libtch/mollify_api.h")
	header, _, _ = strings.Cut(header, "\ndiff --git ")
	for _, name := range api {
		if !regexp.MustCompile(`(?m)^\+[a-z_ ]+\*?` + name + `\(.*\);$`).MatchString(header) {
			t.Errorf("mollify_api.h does not declare %s", name)
		}
	}
}

func sameSet(a, b []string) bool {
	a, b = append([]string{}, a...), append([]string{}, b...)
	sort.Strings(a)
	sort.Strings(b)
	return reflect.DeepEqual(a, b)
}

// Debian's CUDA libtorch (libtorch-cuda-dev) goes with nvidia-cuda-dev,
// whose headers are in /usr/include: /usr is the last home looked in, after
// $CUDA_HOME, $CUDA_PATH and /usr/local/cuda.
func TestCUDAHomesEndWithDebiansFolder(t *testing.T) {
	t.Setenv("CUDA_HOME", "/opt/cuda-a")
	t.Setenv("CUDA_PATH", "")
	got := cudaHomes()
	want := []string{"/opt/cuda-a", "/usr/local/cuda", "/usr"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("cudaHomes() = %q, want %q", got, want)
	}
}
