package classifier

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/mollify/mollify/data"
	"github.com/mollify/mollify/nn"
)

// Dim is the size of the classifier's penultimate layer, the FCD's
// feature dimension.
const Dim = 128

// fileKind tags the cached file.
const fileKind = "mollify MNIST classifier for the Fréchet classifier distance, v1"

// ErrNotTrained is wrapped when the cached classifier is missing.
var ErrNotTrained = errors.New("the FCD classifier has not been trained")

// Path is where train-classifier caches the classifier under a data root.
func Path(root string) string {
	if root == "" {
		root = data.DefaultRoot
	}
	return filepath.Join(root, "fcd", "mnist_classifier.safetensors")
}

// Net is a small MNIST CNN: conv 3×3 (32) → ReLU → max pool 2 → conv 3×3
// (64) → ReLU → max pool 2 → linear 128 → ReLU (the features) → linear 10.
// It is a fid.FeatureNet for grey 28×28 images (32×32 padded MNIST is
// cropped back; colour is averaged to grey).
type Net struct {
	store        *nn.Store
	conv1, conv2 *nn.Conv2d
	fc1, fc2     *nn.Linear
	// Accuracy on the MNIST test set when it was trained (0 if unknown).
	Accuracy float64
}

func newNet(device gotch.Device) (c *Net, err error) {
	s := nn.NewStore(device)
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	p := s.Root()
	c = &Net{store: s}
	if c.conv1, err = nn.NewConv2d(p.Sub("conv1"), 1, 32, 3, nn.ConvOptions{Padding: 1}); err != nil {
		return nil, err
	}
	if c.conv2, err = nn.NewConv2d(p.Sub("conv2"), 32, 64, 3, nn.ConvOptions{Padding: 1}); err != nil {
		return nil, err
	}
	if c.fc1, err = nn.NewLinear(p.Sub("fc1"), 64*7*7, Dim); err != nil {
		return nil, err
	}
	if c.fc2, err = nn.NewLinear(p.Sub("fc2"), Dim, 10); err != nil {
		return nil, err
	}
	return c, nil
}

// forward maps N×1×28×28 images in [0, 1] to features and logits.
func (c *Net) forward(x *ts.Tensor) (feat, logits *ts.Tensor) {
	pool := func(h *ts.Tensor) *ts.Tensor {
		return h.MustMaxPool2d([]int64{2, 2}, []int64{2, 2}, []int64{0, 0}, []int64{1, 1}, false, true)
	}
	h := pool(c.conv1.Forward(x).MustRelu(true))
	h = pool(c.conv2.Forward(h).MustRelu(true))
	feat = c.fc1.Forward(h.MustFlatten(1, 3, true)).MustRelu(true)
	return feat, c.fc2.Forward(feat)
}

// grey28 turns a FeatureNet batch (N×C×H×W in [0, 1], C = 1 or 3, 28×28 or
// 32×32 zero-padded MNIST) into the classifier's input.
func grey28(x *ts.Tensor) (*ts.Tensor, error) {
	s := x.MustSize()
	if len(s) != 4 || (s[1] != 1 && s[1] != 3) || s[0] == 0 {
		return nil, fmt.Errorf("classifier: classifier input must be N×C×H×W with C = 1 or 3, got %v", s)
	}
	if x.DType() != gotch.Float {
		return nil, fmt.Errorf("classifier: classifier input must be float32 in [0, 1], got %v", x.DType())
	}
	if s[1] == 3 {
		x = x.MustMeanDim([]int64{1}, true, gotch.Float, false)
	}
	switch {
	case s[2] == 28 && s[3] == 28:
		return x, nil
	case s[2] == 32 && s[3] == 32:
		return x.MustNarrow(2, 2, 28, false).MustNarrow(3, 2, 28, true), nil
	}
	return nil, fmt.Errorf("classifier: the MNIST classifier takes 28×28 images (or 32×32 padded), not %d×%d", s[2], s[3])
}

// Features returns the penultimate (ReLU) activations, N×128.
func (c *Net) Features(x *ts.Tensor) (out *ts.Tensor, err error) {
	defer nn.Recover(&err)
	ts.NoGrad(func() {
		sc := ts.NewScope()
		defer sc.Close()
		var g *ts.Tensor
		if g, err = grey28(x); err != nil {
			return
		}
		out, _ = c.forward(g)
		sc.Keep(out)
	})
	return out, err
}

// Dim is the package's Dim, 128.
func (c *Net) Dim() int { return Dim }

// Device is where the weights live.
func (c *Net) Device() gotch.Device { return c.store.Device }

// Close frees the weights.
func (c *Net) Close() { c.store.Close() }

// Save writes the weights and the accuracy to path (safetensors).
func (c *Net) Save(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("classifier: %w", err)
	}
	meta := map[string]string{"kind": fileKind, "test_accuracy": strconv.FormatFloat(c.Accuracy, 'f', 6, 64)}
	if err := nn.SaveTensors(path, c.store.Named(), meta); err != nil {
		return fmt.Errorf("classifier: saving the classifier: %w", err)
	}
	return nil
}

// Load reads a classifier saved by Save (train-classifier).
func Load(path string, device gotch.Device) (c *Net, err error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("classifier: %w (%v): train it once with `go run ./cmd/fid train-classifier`", ErrNotTrained, err)
	}
	sc := ts.NewScope()
	defer sc.Close()
	tensors, meta, err := nn.LoadTensors(path)
	if err != nil {
		return nil, fmt.Errorf("classifier: loading the classifier: %w", err)
	}
	if meta["kind"] != fileKind {
		return nil, fmt.Errorf("classifier: %s is not a classifier written by `go run ./cmd/fid train-classifier` (kind %q)", path, meta["kind"])
	}
	if c, err = newNet(device); err != nil {
		return nil, err
	}
	if err := c.store.Load(tensors); err != nil {
		c.Close()
		return nil, fmt.Errorf("classifier: %s: %w", path, err)
	}
	c.Accuracy, _ = strconv.ParseFloat(meta["test_accuracy"], 64)
	return c, nil
}

// Options configure Train; zero values take the defaults in brackets.
type Options struct {
	Device    gotch.Device
	Epochs    int     // [2]
	BatchSize int     // [128]
	LR        float64 // Adam [1e-3]
	Seed      uint64
	Log       io.Writer // per-epoch loss; nil for none
}

// Train trains the classifier on train (1×28×28 MNIST with labels) and
// measures its accuracy on test. It seeds libtorch's generator with
// opt.Seed.
func Train(train, test data.Dataset, opt Options) (c *Net, err error) {
	if opt.Epochs == 0 {
		opt.Epochs = 2
	}
	if opt.BatchSize == 0 {
		opt.BatchSize = 128
	}
	if opt.LR == 0 {
		opt.LR = 1e-3
	}
	for _, ds := range []data.Dataset{train, test} {
		if ch, h, w := ds.Shape(); ch != 1 || h != 28 || w != 28 {
			return nil, fmt.Errorf("classifier: the classifier trains on 1×28×28 MNIST, not %d×%d×%d", ch, h, w)
		}
	}
	if opt.Epochs < 0 || opt.BatchSize < 0 || !(opt.LR > 0) {
		return nil, fmt.Errorf("classifier: classifier epochs, batch size and learning rate must be positive (%d, %d, %g)", opt.Epochs, opt.BatchSize, opt.LR)
	}
	if err := ts.ManualSeed(opt.Seed); err != nil {
		return nil, err
	}
	if c, err = newNet(opt.Device); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			c.Close()
			c = nil
		}
	}()
	defer nn.Recover(&err) // before the deferred Close looks at err
	optim, err := nn.NewOptimizer(c.store, nn.OptimConfig{Name: "adam", LR: opt.LR})
	if err != nil {
		return nil, err
	}
	defer optim.Close()
	loader, err := data.NewLoader(train, data.LoaderConfig{BatchSize: opt.BatchSize, Shuffle: true, Seed: opt.Seed})
	if err != nil {
		return nil, err
	}
	for epoch := 0; epoch < opt.Epochs; epoch++ {
		sum, n := 0.0, 0
		for i := 0; i < loader.BatchesPerEpoch(); i++ {
			b, err := loader.BatchAt(epoch, i)
			if err != nil {
				return nil, err
			}
			loss, err := c.step(optim, b)
			b.Release()
			if err != nil {
				return nil, err
			}
			sum += loss * float64(b.Len())
			n += b.Len()
		}
		if opt.Log != nil {
			fmt.Fprintf(opt.Log, "classifier epoch %d/%d: loss %.4f\n", epoch+1, opt.Epochs, sum/float64(n))
		}
	}
	if c.Accuracy, err = c.TestAccuracy(test); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Net) step(o *nn.Optimizer, b *data.Batch) (float64, error) {
	sc := ts.NewScope()
	defer sc.Close()
	x, y, err := c.batch(b)
	if err != nil {
		return 0, err
	}
	_, logits := c.forward(x)
	loss := logits.MustLogSoftmax(1, gotch.Float, true).MustNLLLoss(y, true)
	if err := o.ZeroGrad(); err != nil {
		return 0, err
	}
	loss.MustBackward()
	if err := o.Step(); err != nil {
		return 0, err
	}
	return loss.Float64()
}

// batch returns images in [0, 1] and labels on the classifier's device.
func (c *Net) batch(b *data.Batch) (x, y *ts.Tensor, err error) {
	shape := []int64{int64(b.Shape[0]), int64(b.Shape[1]), int64(b.Shape[2]), int64(b.Shape[3])}
	u8, err := ts.FromBytes(b.Pixels, shape, gotch.Uint8)
	if err != nil {
		return nil, nil, err
	}
	x = u8.MustTo(c.Device(), true).MustTotype(gotch.Float, true).MustDivScalar(ts.IntScalar(255), true)
	y, err = b.LabelTensor()
	if err != nil {
		return nil, nil, err
	}
	return x, y.MustTo(c.Device(), true), nil
}

// TestAccuracy is the fraction of ds (labelled 1×28×28) classified right.
func (c *Net) TestAccuracy(ds data.Dataset) (acc float64, err error) {
	defer nn.Recover(&err)
	loader, err := data.NewLoader(ds, data.LoaderConfig{BatchSize: 1000})
	if err != nil {
		return 0, err
	}
	right, n := 0.0, 0
	for i := 0; i < loader.BatchesPerEpoch(); i++ {
		b, err := loader.BatchAt(0, i)
		if err != nil {
			return 0, err
		}
		ts.NoGrad(func() {
			sc := ts.NewScope()
			defer sc.Close()
			var x, y *ts.Tensor
			if x, y, err = c.batch(b); err != nil {
				return
			}
			_, logits := c.forward(x)
			var r float64
			r, err = logits.MustArgmax([]int64{1}, false, true).MustEqTensor(y, true).MustSum(gotch.Double, true).Float64()
			right += r
		})
		n += b.Len()
		b.Release()
		if err != nil {
			return 0, err
		}
	}
	return right / float64(n), nil
}
