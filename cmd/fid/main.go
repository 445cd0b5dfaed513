// Command fid computes the Fréchet Inception Distance as pytorch-fid does,
// without Python:
//
//	go run ./cmd/fid [flags] PATH1 PATH2              FID of two image folders or .npz statistics
//	go run ./cmd/fid --save-stats [flags] PATH OUT.npz  statistics of a folder, for reuse
//	go run ./cmd/fid --fcd [flags] PATH1 PATH2        Fréchet classifier distance (MNIST), not FID
//	go run ./cmd/fid train-classifier [-root datasets] [-epochs 2]
//
// A PATH is a folder of images (*.png, *.jpg, *.jpeg; not recursive, as
// pytorch-fid globs it) or an .npz with mu and sigma (pytorch-fid's
// --save-stats files load as they are). The Inception weights are
// pytorch-fid's pt_inception-2015-12-05-6726825d.pth (its GitHub release
// "fid_weights"), given by -weights or $MOLLIFY_INCEPTION, or a TorchScript
// export of them (-inception model.pt, from cmd/fid/export_inception.py).
// Two .npz files need no weights, and are compared at their own
// dimension, as pytorch-fid does: --dims is the dimension a folder is
// featurised at, which an .npz compared with it must match. A folder of
// 2 to dims images is computed with a warning on stderr that its
// covariance is singular (rank ≤ n−1) and the FID unreliable, as
// pytorch-fid computes it; --strict makes that an error. Fewer than 2
// images are always an error.
//
// Flags may come before or after the paths, and take one dash or two.
// --fcd uses the small MNIST classifier that train-classifier caches under
// the data root instead of Inception-v3, for machines without the weights;
// its numbers are labelled FCD and are not comparable with FID.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/sugarme/gotch"

	"github.com/mollify/mollify/data"
	"github.com/mollify/mollify/fid"
	"github.com/mollify/mollify/fid/classifier"
	"github.com/mollify/mollify/fid/inception"
	"github.com/mollify/mollify/nn"
)

func main() {
	runtime.LockOSThread() // torch's grad mode and error slot are per thread
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage:
  fid [flags] PATH1 PATH2                 FID between two folders of images or .npz statistics files
  fid --save-stats [flags] PATH OUT.npz   save a folder's statistics (pytorch-fid's .npz format)
  fid --fcd [flags] PATH1 PATH2           Fréchet classifier distance with the MNIST classifier
  fid train-classifier [-root DIR] [-epochs N] [-device D]
                                          train and cache that classifier (once)

Two .npz files are compared at their own dimension (they must agree);
--dims sets the features a folder is computed at, and an .npz compared
with a folder must have that dimension. A folder of 2 to dims images has a
singular covariance: it is computed with a warning, as pytorch-fid does
(--strict: an error); fewer than 2 images are an error.

flags:
`

type options struct {
	batch     int
	device    string
	dims      int
	saveStats bool
	weights   string
	inception string
	threads   int
	workers   int
	fcd       bool
	root      string
	method    string
	quiet     bool
	strict    bool
	dimsSet   bool
}

func newFlags(o *options, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("fid", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.IntVar(&o.batch, "batch-size", 50, "images per batch")
	fs.StringVar(&o.device, "device", "auto", "auto, cpu, cuda or cuda:N")
	fs.IntVar(&o.dims, "dims", 2048, "Inception features: 64, 192, 768 or 2048")
	fs.BoolVar(&o.saveStats, "save-stats", false, "write the statistics of PATH to OUT.npz instead of comparing")
	fs.StringVar(&o.weights, "weights", "", "pt_inception-2015-12-05-6726825d.pth (default $"+inception.WeightsEnv+")")
	fs.StringVar(&o.inception, "inception", "", "TorchScript export of the network (cmd/fid/export_inception.py) instead of -weights")
	fs.IntVar(&o.threads, "threads", 0, "libtorch CPU threads (0: libtorch's default)")
	fs.IntVar(&o.workers, "num-workers", 0, "accepted for pytorch-fid command lines; decoding uses all cores")
	fs.BoolVar(&o.fcd, "fcd", false, "Fréchet classifier distance with the MNIST classifier of train-classifier")
	fs.StringVar(&o.root, "root", data.DefaultRoot, "data root holding the cached classifier (fcd/)")
	fs.StringVar(&o.method, "method", "symmetric", "symmetric (stable) or scipy (pytorch-fid's sqrtm, can fail with \"Imaginary component\")")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress lines")
	fs.BoolVar(&o.strict, "strict", false, "refuse a folder of no more images than feature dimensions (singular covariance) instead of warning")
	return fs
}

// parseInterspersed parses flags before, between and after positional
// arguments, as argparse does.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// netOpener opens the feature network; tests replace it.
var netOpener = openNet

// run is main without the exit; it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "train-classifier" {
		return trainClassifier(args[1:], stdout, stderr)
	}
	var o options
	fs := newFlags(&o, stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	paths, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	fs.Visit(func(f *flag.Flag) { o.dimsSet = o.dimsSet || f.Name == "dims" })
	if len(paths) != 2 {
		fmt.Fprintf(stderr, "fid: want two paths, got %d\n", len(paths))
		fs.Usage()
		return 2
	}
	if err := compare(o, paths, stdout, stderr); err != nil {
		return fail(stderr, err)
	}
	return 0
}

// fail prints err as one "fid: ..." line and returns exit status 1.
func fail(stderr io.Writer, err error) int {
	msg := err.Error()
	if !strings.HasPrefix(msg, "fid: ") {
		msg = "fid: " + msg
	}
	fmt.Fprintln(stderr, msg)
	return 1
}

// label names the metric in the output.
func (o options) label() string {
	if o.fcd {
		return "FCD"
	}
	return "FID"
}

func compare(o options, paths []string, stdout, stderr io.Writer) error {
	if o.batch <= 0 {
		return fmt.Errorf("--batch-size must be positive, got %d", o.batch)
	}
	if o.fcd && o.dimsSet {
		return fmt.Errorf("--dims does not apply to --fcd: the classifier has %d features", classifier.Dim)
	}
	var method fid.Method
	switch o.method {
	case "symmetric":
		method = fid.Symmetric
	case "scipy":
		method = fid.Scipy
	default:
		return fmt.Errorf("--method must be symmetric or scipy, not %q", o.method)
	}
	if !o.fcd && !validDims(o.dims) {
		return fmt.Errorf("--dims must be one of %v, not %d", inception.Dims, o.dims)
	}
	dims := o.dims
	if o.fcd {
		dims = classifier.Dim
	}
	for i, p := range paths {
		if o.saveStats && i == 1 {
			break
		}
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("invalid path %s: %w", p, err)
		}
		if !st.IsDir() && !strings.HasSuffix(p, ".npz") {
			return fmt.Errorf("%s is neither a folder of images nor an .npz statistics file", p)
		}
	}
	out := ""
	if o.saveStats {
		out = paths[1]
		if !strings.HasSuffix(out, ".npz") {
			out += ".npz" // as np.savez_compressed names it
		}
		if _, err := os.Stat(out); err == nil {
			return fmt.Errorf("existing output file %s: remove it or choose another name", out)
		}
		if strings.HasSuffix(paths[0], ".npz") {
			return fmt.Errorf("--save-stats takes a folder of images, not %s", paths[0])
		}
		paths = paths[:1]
	}
	if o.threads > 0 {
		nn.SetThreads(o.threads)
	}
	// Statistics files first, then the image counts, then the network:
	// cheap mistakes are reported before the weights load.
	stats := make([]*fid.Stats, len(paths))
	for i, p := range paths {
		if !strings.HasSuffix(p, ".npz") {
			continue
		}
		var err error
		if stats[i], err = fid.LoadStats(p); err != nil {
			return err
		}
	}
	if err := checkDims(o, paths, stats, dims); err != nil {
		return err
	}
	for i, p := range paths {
		if stats[i] != nil {
			continue
		}
		files, err := fid.ImageFiles(p)
		if err != nil {
			return err
		}
		err = fid.CheckCount(p, len(files), dims)
		switch {
		case err == nil:
		case errors.Is(err, fid.ErrSingularCovariance) && o.strict:
			return fmt.Errorf("%w; --strict makes this an error (without it the FID is computed with a warning, as pytorch-fid does)", err)
		case errors.Is(err, fid.ErrSingularCovariance):
			fmt.Fprintf(stderr, "fid: warning: %s (--strict makes this an error)\n", strings.TrimPrefix(err.Error(), "fid: "))
		default:
			return err
		}
	}
	var net fid.FeatureNet
	for i, p := range paths {
		if stats[i] != nil {
			continue
		}
		if net == nil {
			n, closeNet, err := netOpener(o)
			if err != nil {
				return err
			}
			defer closeNet()
			net = n
		}
		start := time.Now()
		var err error
		stats[i], err = fid.FolderStats(net, p, o.batch, progress(stderr, p, o.quiet))
		if err != nil {
			return err
		}
		if !o.quiet {
			fmt.Fprintf(stderr, "%s: done in %s\n", p, time.Since(start).Round(time.Millisecond))
		}
	}
	if o.saveStats {
		if err := fid.SaveStats(out, stats[0]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "saved %d-d statistics of %s to %s\n", stats[0].Dim(), paths[0], out)
		return nil
	}
	r, err := fid.FrechetDistance(stats[0], stats[1], &fid.Options{Method: method})
	if err != nil {
		return err
	}
	if r.Offset != 0 && !o.quiet {
		fmt.Fprintf(stderr, "fid: the product of the covariances is singular; added %g to the diagonals (pytorch-fid's fallback)\n", r.Offset)
	}
	fmt.Fprintf(stdout, "%s:  %v\n", o.label(), r.Distance)
	return nil
}

// checkDims checks the dimensions of the statistics files, as pytorch-fid
// does: two files are compared at their own dimension and must agree with
// each other (--dims does not apply to them); a file compared with a folder
// must match the features the folder is computed at (--dims, or the
// classifier's with --fcd).
func checkDims(o options, paths []string, stats []*fid.Stats, dims int) error {
	if len(stats) == 2 && stats[0] != nil && stats[1] != nil {
		if d0, d1 := stats[0].Dim(), stats[1].Dim(); d0 != d1 {
			return fmt.Errorf("%s holds %d-d statistics and %s %d-d: a Fréchet distance compares statistics of the same features; "+
				"recompute one of them at %d or %d dims", paths[0], d0, paths[1], d1, d0, d1)
		}
		return nil
	}
	for i, st := range stats {
		if st == nil || st.Dim() == dims {
			continue
		}
		folder := paths[1-i]
		if o.fcd {
			return fmt.Errorf("%s holds %d-d statistics, but the folder %s is featurised by the MNIST classifier at %d-d for the FCD: "+
				"compare it with classifier statistics", paths[i], st.Dim(), folder, dims)
		}
		return fmt.Errorf("%s holds %d-d statistics, but the folder %s is featurised at %d-d (--dims %d): "+
			"pass --dims %d, or use statistics of %d-d features", paths[i], st.Dim(), folder, dims, dims, st.Dim(), dims)
	}
	return nil
}

func validDims(d int) bool {
	for _, x := range inception.Dims {
		if x == d {
			return true
		}
	}
	return false
}

// openNet loads the network the options ask for.
func openNet(o options) (fid.FeatureNet, func(), error) {
	dev, err := nn.ParseDevice(o.device)
	if err != nil {
		return nil, nil, err
	}
	if o.fcd {
		c, err := classifier.Load(classifier.Path(o.root), dev)
		if err != nil {
			return nil, nil, err
		}
		return c, c.Close, nil
	}
	opt := inception.Options{Device: dev, Dims: o.dims}
	if o.inception != "" {
		m, err := inception.LoadTorchScript(o.inception, opt)
		if err != nil {
			return nil, nil, err
		}
		return m, m.Close, nil
	}
	path, err := inception.WeightsPath(o.weights)
	if err != nil {
		return nil, nil, err
	}
	m, err := inception.Load(path, opt)
	if err != nil {
		return nil, nil, err
	}
	return m, m.Close, nil
}

// progress prints a line per tenth of the images.
func progress(w io.Writer, path string, quiet bool) fid.Progress {
	if quiet {
		return nil
	}
	last := -1
	return func(done, total int) {
		if tenth := done * 10 / total; tenth != last {
			last = tenth
			fmt.Fprintf(w, "%s: %d/%d images\n", path, done, total)
		}
	}
}

// trainClassifier is the train-classifier command.
func trainClassifier(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("train-classifier", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", data.DefaultRoot, "data root: MNIST from <root>/mnist (else the GoMNIST module); the classifier goes to <root>/fcd/")
	epochs := fs.Int("epochs", 2, "passes over the training set")
	device := fs.String("device", "auto", "auto, cpu, cuda or cuda:N")
	threads := fs.Int("threads", 0, "libtorch CPU threads (0: libtorch's default)")
	limit := fs.Int("limit", 0, "train on the first N images only (0: all 60 000), for quick checks")
	seed := fs.Uint64("seed", 0, "seed of the initialisation and the shuffling")
	force := fs.Bool("force", false, "retrain even if a classifier is cached")
	if _, err := parseInterspersed(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if err := doTrainClassifier(*root, *epochs, *device, *threads, *limit, *seed, *force, stdout, stderr); err != nil {
		return fail(stderr, err)
	}
	return 0
}

func doTrainClassifier(root string, epochs int, device string, threads, limit int, seed uint64, force bool, stdout, stderr io.Writer) error {
	path := classifier.Path(root)
	if _, err := os.Stat(path); err == nil && !force {
		fmt.Fprintf(stdout, "classifier already cached at %s (-force retrains)\n", path)
		return nil
	}
	if epochs <= 0 {
		return fmt.Errorf("-epochs must be positive, got %d", epochs)
	}
	dev, err := nn.ParseDevice(device)
	if err != nil {
		return err
	}
	if threads > 0 {
		nn.SetThreads(threads)
	}
	train, err := data.LoadMNIST(root, data.Train, data.MNISTOptions{})
	if err != nil {
		return err
	}
	test, err := data.LoadMNIST(root, data.Test, data.MNISTOptions{})
	if err != nil {
		return err
	}
	var trainSet data.Dataset = train
	if limit > 0 && limit < train.Len() {
		idx := make([]int, limit)
		for i := range idx {
			idx[i] = i
		}
		trainSet = data.Subset{Data: train, Indices: idx}
	}
	start := time.Now()
	c, err := classifier.Train(trainSet, test, classifier.Options{Device: dev, Epochs: epochs, Seed: seed, Log: stderr})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Save(path); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "classifier: test accuracy %.4f after %d epoch(s) on %d images (%s, %s); saved to %s\n",
		c.Accuracy, epochs, trainSet.Len(), deviceName(dev), time.Since(start).Round(time.Second), filepath.Clean(path))
	return nil
}

func deviceName(d gotch.Device) string {
	if d.IsCuda() {
		return fmt.Sprintf("cuda:%d", d.Value)
	}
	return "cpu"
}
