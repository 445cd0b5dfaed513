package data

import (
	"errors"
	"fmt"
)

// Dataset is a finite set of uint8 images held in memory, in the layout
// the loader batches: each example is C×H×W bytes, channel planes first.
type Dataset interface {
	// Len is the number of examples.
	Len() int
	// Shape is the shape of one example.
	Shape() (c, h, w int)
	// Example returns example i as C·H·W bytes (a view: do not modify)
	// and its class label, or -1 for an unlabelled set.
	Example(i int) (pixels []byte, label int)
}

// Split names a part of a dataset.
type Split string

// Splits. MNIST and CIFAR-10 have no validation split.
const (
	Train Split = "train"
	Valid Split = "valid"
	Test  Split = "test"
)

// ErrNotFound is wrapped by the errors of loaders whose files are missing;
// the message names the command that fetches them.
var ErrNotFound = errors.New("dataset not found")

// ErrCorrupt is wrapped by the errors for files that are truncated or do
// not have the expected format or checksum.
var ErrCorrupt = errors.New("dataset file corrupt")

// Images is an in-memory image set: N examples of C×H×W uint8 in NCHW
// order, with optional labels.
type Images struct {
	Name    string
	N       int
	C, H, W int
	Pixels  []uint8 // N·C·H·W bytes, NCHW
	Labels  []uint8 // N class labels, or nil
}

// NewImages checks that pixels and labels match the shape.
func NewImages(name string, n, c, h, w int, pixels, labels []uint8) (*Images, error) {
	if n < 0 || c <= 0 || h <= 0 || w <= 0 {
		return nil, fmt.Errorf("data: %s: bad shape %d×%d×%d×%d", name, n, c, h, w)
	}
	if len(pixels) != n*c*h*w {
		return nil, fmt.Errorf("data: %s: %d pixel bytes for %d×%d×%d×%d images, want %d", name, len(pixels), n, c, h, w, n*c*h*w)
	}
	if labels != nil && len(labels) != n {
		return nil, fmt.Errorf("data: %s: %d labels for %d images", name, len(labels), n)
	}
	return &Images{Name: name, N: n, C: c, H: h, W: w, Pixels: pixels, Labels: labels}, nil
}

// Len is the number of images.
func (m *Images) Len() int { return m.N }

// Shape is C, H, W.
func (m *Images) Shape() (int, int, int) { return m.C, m.H, m.W }

// Example returns image i (a view into Pixels) and its label (-1 if none).
func (m *Images) Example(i int) ([]byte, int) {
	d := m.C * m.H * m.W
	label := -1
	if m.Labels != nil {
		label = int(m.Labels[i])
	}
	return m.Pixels[i*d : (i+1)*d : (i+1)*d], label
}

// Subset is a view of some examples of a dataset, e.g. a held-out part.
type Subset struct {
	Data    Dataset
	Indices []int
}

// Len is the number of indices.
func (s Subset) Len() int { return len(s.Indices) }

// Shape is the shape of the underlying examples.
func (s Subset) Shape() (int, int, int) { return s.Data.Shape() }

// Example returns example Indices[i] of the underlying set.
func (s Subset) Example(i int) ([]byte, int) { return s.Data.Example(s.Indices[i]) }

// fetchHint is the command that downloads a dataset into root.
func fetchHint(name, root string) string {
	cmd := "go run ./cmd/data download " + name
	if root != "" && root != DefaultRoot {
		cmd += " -root " + root
	}
	return cmd
}

// DefaultRoot is where cmd/data puts datasets unless told otherwise (the
// default of the run config's data.root).
const DefaultRoot = "datasets"
