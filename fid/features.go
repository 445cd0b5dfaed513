package fid

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/mollify/mollify/data"
	"github.com/mollify/mollify/nn"
)

// FeatureNet maps images to feature rows: x is N×3×H×W float32 with
// values in [0, 1] on Device(); the result is N×Dim() float32 on the same
// device, in the caller's scope. Implementations run without gradients
// and never free x.
type FeatureNet interface {
	Features(x *ts.Tensor) (*ts.Tensor, error)
	Dim() int
	Device() gotch.Device
}

// CheckImages is the check of FeatureNet.Features on its input: x is a
// float32 N×3×H×W batch, N > 0, on dev.
func CheckImages(x *ts.Tensor, dev gotch.Device) error {
	if x == nil {
		return errors.New("fid: nil image batch")
	}
	s, err := x.Size()
	if err != nil {
		return fmt.Errorf("fid: image batch: %w", err)
	}
	if len(s) != 4 || s[1] != 3 || s[0] == 0 {
		return fmt.Errorf("fid: images must be N×3×H×W with N > 0 (grey images repeated to 3 channels), got %v", s)
	}
	if dt := x.DType(); dt != gotch.Float {
		return fmt.Errorf("fid: images must be float32 in [0, 1], got %v", dt)
	}
	if d := x.MustDevice(); d.IsCuda() != dev.IsCuda() || (d.IsCuda() && d.Value != dev.Value) {
		return fmt.Errorf("fid: images are on %v but the network is on %v", d, dev)
	}
	return nil
}

// ErrTooFewImages is wrapped by CheckCount's error for a set of fewer than
// 2 images: its covariance (ddof=1) is undefined, so there is no FID.
var ErrTooFewImages = errors.New("the covariance needs at least 2 images")

// ErrSingularCovariance is wrapped by CheckCount's error for a set of 2 or
// more images but no more than the feature dimensions. Its covariance has
// rank at most n−1 < d, so it is singular: pytorch-fid computes anyway (its
// scipy.linalg.sqrtm retries with 1e-6 on the diagonals and may stop with
// "Imaginary component"), and the number mostly measures the sample size.
// Callers that follow pytorch-fid warn and go on; strict ones refuse.
var ErrSingularCovariance = errors.New("fewer images than feature dimensions + 1: the covariance is singular and the FID unreliable")

// CheckCount says whether n images give a usable covariance of
// dims-dimensional features: nil when n > dims; an error wrapping
// ErrSingularCovariance when 2 ≤ n ≤ dims (a warning, unless the caller is
// strict); an error wrapping ErrTooFewImages when n < 2. what names the set
// in the message.
func CheckCount(what string, n, dims int) error {
	switch {
	case n > dims:
		return nil
	case n < 2:
		return fmt.Errorf("fid: %s has %d image(s), but %w: add images (more than %d for a full-rank covariance "+
			"of %d-d features; 50 000 is standard)", what, n, ErrTooFewImages, dims, dims)
	}
	return fmt.Errorf("fid: %s has %d images for %d-d features: %w (rank ≤ %d < %d; pytorch-fid's sqrtm can fail on it "+
		"with \"Imaginary component\"); use more than %d images (50 000 is standard) or smaller dims",
		what, n, dims, ErrSingularCovariance, n-1, dims, dims)
}

// checkComputable refuses only what has no covariance at all (n < 2): a
// singular covariance is computed, as pytorch-fid does; callers warn about
// it with CheckCount.
func checkComputable(what string, n, dims int) error {
	if err := CheckCount(what, n, dims); errors.Is(err, ErrTooFewImages) {
		return err
	}
	return nil
}

// UnitImages turns uint8 NCHW pixels into a FeatureNet's input on device
// (see UnitTensor). The bytes cross to the device as uint8.
func UnitImages(pix []uint8, shape []int64, device gotch.Device) (x *ts.Tensor, err error) {
	defer nn.Recover(&err)
	if len(shape) != 4 || (shape[1] != 1 && shape[1] != 3) {
		return nil, fmt.Errorf("fid: images must be N×C×H×W with C = 1 or 3, got %v", shape)
	}
	sc := ts.NewScope()
	defer sc.Close()
	u8, err := ts.FromBytes(pix, shape, gotch.Uint8)
	if err != nil {
		return nil, fmt.Errorf("fid: %w", err)
	}
	if x, err = UnitTensor(u8, device); err != nil {
		return nil, err
	}
	sc.Keep(x)
	return x, nil
}

// UnitTensor turns a uint8 N×C×H×W tensor (C = 1 or 3) into a FeatureNet's
// input on device: float32 k/255, as torchvision's ToTensor gives
// pytorch-fid, with grey images repeated to 3 channels, as PIL's
// convert('RGB') does. u8 is not freed.
func UnitTensor(u8 *ts.Tensor, device gotch.Device) (x *ts.Tensor, err error) {
	defer nn.Recover(&err)
	s := u8.MustSize()
	if len(s) != 4 || (s[1] != 1 && s[1] != 3) || u8.DType() != gotch.Uint8 {
		return nil, fmt.Errorf("fid: images must be uint8 N×C×H×W with C = 1 or 3, got %v %v", u8.DType(), s)
	}
	sc := ts.NewScope()
	defer sc.Close()
	x = u8.MustTo(device, false).MustTotype(gotch.Float, true).MustDivScalar(ts.IntScalar(255), true)
	if s[1] == 1 {
		x = x.MustRepeat([]int64{1, 3, 1, 1}, true)
	}
	sc.Keep(x)
	return x, nil
}

// Accumulate adds the features of the images x (N×3×H×W in [0, 1] on
// net's device) to acc. x is not freed.
func Accumulate(acc *Accumulator, net FeatureNet, x *ts.Tensor) (err error) {
	defer nn.Recover(&err)
	if acc.Dim() != net.Dim() {
		return fmt.Errorf("fid: accumulator has %d dimensions, the network %d", acc.Dim(), net.Dim())
	}
	sc := ts.NewScope()
	defer sc.Close()
	y, err := net.Features(x)
	if err != nil {
		return err
	}
	b, err := y.Bytes()
	if err != nil {
		return fmt.Errorf("fid: copying features to the host: %w", err)
	}
	rows := make([]float32, len(b)/4)
	for i := range rows {
		rows[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return acc.AddFloat32(rows)
}

// Progress is told how many of total images are done.
type Progress func(done, total int)

// DatasetStats returns the statistics of every image of ds (uint8, 1 or 3
// channels), batch images at a time, each batch in its own scope. Fewer
// than 2 images are an error; no more than net.Dim() are computed, as
// pytorch-fid does (see CheckCount for the warning).
func DatasetStats(net FeatureNet, ds data.Dataset, batch int, progress Progress) (*Stats, error) {
	n := ds.Len()
	if err := checkComputable("the dataset", n, net.Dim()); err != nil {
		return nil, err
	}
	if batch <= 0 {
		return nil, fmt.Errorf("fid: batch size must be positive, got %d", batch)
	}
	c, h, w := ds.Shape()
	acc, err := NewAccumulator(net.Dim())
	if err != nil {
		return nil, err
	}
	pix := make([]uint8, 0, batch*c*h*w)
	for lo := 0; lo < n; lo += batch {
		hi := min(lo+batch, n)
		pix = pix[:0]
		for i := lo; i < hi; i++ {
			p, _ := ds.Example(i)
			pix = append(pix, p...)
		}
		if err := accumulatePixels(acc, net, pix, []int64{int64(hi - lo), int64(c), int64(h), int64(w)}); err != nil {
			return nil, err
		}
		if progress != nil {
			progress(hi, n)
		}
	}
	return acc.Stats()
}

func accumulatePixels(acc *Accumulator, net FeatureNet, pix []uint8, shape []int64) error {
	sc := ts.NewScope()
	defer sc.Close()
	x, err := UnitImages(pix, shape, net.Device())
	if err != nil {
		return err
	}
	return Accumulate(acc, net, x)
}

// imageExtensions are pytorch-fid's IMAGE_EXTENSIONS; it globs *.ext, so
// on Linux only lower-case names count, and so here.
var imageExtensions = []string{"bmp", "jpeg", "jpg", "pgm", "png", "ppm", "tif", "tiff", "webp"}

// decoded are the extensions Go decodes here.
var decoded = []string{"jpeg", "jpg", "png"}

// ImageFiles lists the images of dir as pytorch-fid does (sorted, not
// recursive, lower-case extensions). Formats other than PNG and JPEG are
// an error rather than skipped, so the set is never silently smaller than
// pytorch-fid's.
func ImageFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("fid: %w", err)
	}
	var files, other []string
	for _, e := range entries {
		ext := strings.TrimPrefix(filepath.Ext(e.Name()), ".")
		if e.IsDir() || !slices.Contains(imageExtensions, ext) {
			continue
		}
		if !slices.Contains(decoded, ext) {
			other = append(other, e.Name())
			continue
		}
		files = append(files, filepath.Join(dir, e.Name()))
	}
	if len(other) > 0 {
		return nil, fmt.Errorf("fid: %s has images this tool cannot decode (%s%s); only PNG and JPEG are read: convert them to PNG",
			dir, strings.Join(other[:min(3, len(other))], ", "), map[bool]string{true: ", ...", false: ""}[len(other) > 3])
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("fid: %s has no images (*.png, *.jpg or *.jpeg, lower-case as pytorch-fid globs them)", dir)
	}
	slices.Sort(files)
	return files, nil
}

// FolderStats returns the statistics of the images in dir (see
// ImageFiles), decoded to RGB as PIL's convert('RGB') does, batch at a
// time. Images may differ in size: each is resized to 299×299 by the
// network on its own, so batches are split where the size changes. Image
// counts are treated as in DatasetStats.
func FolderStats(net FeatureNet, dir string, batch int, progress Progress) (*Stats, error) {
	files, err := ImageFiles(dir)
	if err != nil {
		return nil, err
	}
	if err := checkComputable(dir, len(files), net.Dim()); err != nil {
		return nil, err
	}
	if batch <= 0 {
		return nil, fmt.Errorf("fid: batch size must be positive, got %d", batch)
	}
	acc, err := NewAccumulator(net.Dim())
	if err != nil {
		return nil, err
	}
	// Decode the next batch while the network runs on this one.
	type decodedBatch struct {
		imgs []rgbImage
		err  error
	}
	next := make(chan decodedBatch, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(next)
		for lo := 0; lo < len(files); lo += batch {
			imgs, err := decodeAll(files[lo:min(lo+batch, len(files))])
			select {
			case next <- decodedBatch{imgs, err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	done := 0
	for b := range next {
		if b.err != nil {
			return nil, b.err
		}
		for lo := 0; lo < len(b.imgs); {
			hi := lo + 1
			for hi < len(b.imgs) && b.imgs[hi].w == b.imgs[lo].w && b.imgs[hi].h == b.imgs[lo].h {
				hi++
			}
			w, h := b.imgs[lo].w, b.imgs[lo].h
			pix := make([]uint8, 0, (hi-lo)*3*w*h)
			for _, im := range b.imgs[lo:hi] {
				pix = append(pix, im.planar...)
			}
			if err := accumulatePixels(acc, net, pix, []int64{int64(hi - lo), 3, int64(h), int64(w)}); err != nil {
				return nil, err
			}
			lo = hi
		}
		done += len(b.imgs)
		if progress != nil {
			progress(done, len(files))
		}
	}
	return acc.Stats()
}

type rgbImage struct {
	planar []uint8 // 3×h×w
	w, h   int
}

// decodeAll decodes files in parallel.
func decodeAll(files []string) ([]rgbImage, error) {
	out := make([]rgbImage, len(files))
	errs := make([]error, len(files))
	var wg sync.WaitGroup
	work := make(chan int)
	for range min(runtime.GOMAXPROCS(0), len(files)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				out[i], errs[i] = decodeFile(files[i])
			}
		}()
	}
	for i := range files {
		work <- i
	}
	close(work)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

func decodeFile(path string) (rgbImage, error) {
	f, err := os.Open(path)
	if err != nil {
		return rgbImage{}, fmt.Errorf("fid: %w", err)
	}
	defer f.Close()
	rgb, w, h, err := data.DecodeRGB(f)
	if err != nil {
		return rgbImage{}, fmt.Errorf("fid: decoding %s: %w", path, err)
	}
	planar := make([]uint8, len(rgb))
	n := w * h
	for i := 0; i < n; i++ {
		planar[i], planar[n+i], planar[2*n+i] = rgb[3*i], rgb[3*i+1], rgb[3*i+2]
	}
	return rgbImage{planar: planar, w: w, h: h}, nil
}
