package data

import (
	"archive/zip"
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
)

// CelebA file names, as distributed.
const (
	CelebAFolder    = "img_align_celeba"
	CelebAZip       = "img_align_celeba.zip"
	CelebAPartition = "list_eval_partition.txt"
)

// CelebAOptions sets CelebA's preprocessing and its cache.
type CelebAOptions struct {
	Crop     int       // side of the centre crop; 148 (the paper) by default
	Size     int       // side after resizing; 64 by default
	CacheDir string    // folder of the decoded cache; default the dataset's folder
	NoCache  bool      // neither read nor write the cache
	Workers  int       // parallel decoders; GOMAXPROCS by default
	Log      io.Writer // progress and cache messages; nil for none
}

// celebaDecodes counts decoded images (tests check the cache with it).
var celebaDecodes atomic.Int64

// CelebASource is a located copy of CelebA: the images (a folder or the
// zip, read in place) and the partition file.
type CelebASource struct {
	Dir       string // folder holding the images and the partition file
	Images    string // the img_align_celeba folder or zip
	Zipped    bool
	Partition string
}

// FindCelebA looks for CelebA in root and root/celeba: img_align_celeba/
// or img_align_celeba.zip, and list_eval_partition.txt beside it (or in
// Eval/, as on the CelebA drive).
func FindCelebA(root string) (*CelebASource, error) {
	var looked []string
	for _, dir := range []string{root, filepath.Join(root, "celeba")} {
		looked = append(looked, dir)
		src := &CelebASource{Dir: dir}
		if st, err := os.Stat(filepath.Join(dir, CelebAFolder)); err == nil && st.IsDir() {
			src.Images = filepath.Join(dir, CelebAFolder)
		} else if st, err := os.Stat(filepath.Join(dir, CelebAZip)); err == nil && st.Mode().IsRegular() {
			src.Images, src.Zipped = filepath.Join(dir, CelebAZip), true
		} else {
			continue
		}
		for _, p := range []string{filepath.Join(dir, CelebAPartition), filepath.Join(dir, "Eval", CelebAPartition)} {
			if _, err := os.Stat(p); err == nil {
				src.Partition = p
				return src, nil
			}
		}
		return nil, fmt.Errorf("data: CelebA: found %s but no %s beside it; get it from the CelebA site (Eval/%s) and run `%s -from %s`: %w",
			src.Images, CelebAPartition, CelebAPartition, fetchHint("celeba", root), dir, ErrNotFound)
	}
	return nil, fmt.Errorf("data: CelebA not found: no %s/ or %s in %s. CelebA cannot be fetched automatically: download %s and %s from the CelebA site, then run `%s -from FOLDER_OR_ZIP`: %w",
		CelebAFolder, CelebAZip, strings.Join(looked, " or "), CelebAZip, CelebAPartition, fetchHint("celeba", root), ErrNotFound)
}

// ReadCelebAPartition parses list_eval_partition.txt ("000001.jpg 0"
// per line; 0 train, 1 valid, 2 test) into the file names of each split,
// in file order.
func ReadCelebAPartition(path string) (map[Split][]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[Split][]string{}
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 2 {
			return nil, fmt.Errorf("%w: %s:%d: want \"<image> <0|1|2>\", got %q", ErrCorrupt, path, line, sc.Text())
		}
		var s Split
		switch fields[1] {
		case "0":
			s = Train
		case "1":
			s = Valid
		case "2":
			s = Test
		default:
			return nil, fmt.Errorf("%w: %s:%d: partition %q is not 0, 1 or 2", ErrCorrupt, path, line, fields[1])
		}
		out[s] = append(out[s], fields[0])
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
	}
	if line == 0 {
		return nil, fmt.Errorf("%w: %s is empty", ErrCorrupt, path)
	}
	return out, nil
}

// CropResize is the paper's CelebA preprocessing on an interleaved RGB
// image: torchvision's CenterCrop(crop) then Resize(size) on a PIL image,
// i.e. Pillow's antialiased BILINEAR resize. It returns size×size×3
// interleaved bytes.
func CropResize(rgb []uint8, w, h, crop, size int) ([]uint8, error) {
	if len(rgb) != w*h*3 {
		return nil, fmt.Errorf("data: CropResize: %d bytes for a %d×%d RGB image", len(rgb), w, h)
	}
	left, top, err := CenterCropBox(w, h, crop)
	if err != nil {
		return nil, err
	}
	return PILResize(cropInterleaved(rgb, w, 3, left, top, crop), crop, crop, 3, size, size)
}

// imageOpener reads one image of the source by its base name.
type imageOpener func(name string) ([]byte, error)

func (s *CelebASource) opener() (imageOpener, func() error, error) {
	if !s.Zipped {
		return func(name string) ([]byte, error) {
			return os.ReadFile(filepath.Join(s.Images, name))
		}, func() error { return nil }, nil
	}
	zr, err := zip.OpenReader(s.Images)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, s.Images, err)
	}
	files := make(map[string]*zip.File, len(zr.File))
	for _, f := range zr.File {
		if !strings.HasSuffix(f.Name, "/") {
			files[pathBase(f.Name)] = f
		}
	}
	return func(name string) ([]byte, error) {
		f, ok := files[name]
		if !ok {
			return nil, fmt.Errorf("%s has no entry %s/%s", s.Images, CelebAFolder, name)
		}
		rc, err := f.Open()
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(rc) // reading to EOF checks the entry's CRC-32
	}, zr.Close, nil
}

func pathBase(name string) string {
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		return name[i+1:]
	}
	return name
}

// fingerprint identifies what a cache was built from: the preprocessing,
// the partition file and the image source's size and modification time
// (a zip) or the folder's modification time (changed by adding or
// removing files; delete the cache after editing images in place).
func (s *CelebASource) fingerprint(split Split, crop, size int) ([32]byte, error) {
	h := sha256.New()
	fmt.Fprintf(h, "mollify celeba cache v%d|%s|crop %d|size %d|%s|", celebaCacheVersion, celebaPipeline, crop, size, split)
	part, err := os.ReadFile(s.Partition)
	if err != nil {
		return [32]byte{}, err
	}
	h.Write(part)
	st, err := os.Stat(s.Images)
	if err != nil {
		return [32]byte{}, err
	}
	fmt.Fprintf(h, "|zip %v|size %d|mtime %d", s.Zipped, st.Size(), st.ModTime().UnixNano())
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out, nil
}

// celebaPipeline names the decoder and filter; changing either changes
// the pixels, so it is part of the cache's fingerprint.
const celebaPipeline = "go image/jpeg + libjpeg fancy upsampling; Pillow 9 BILINEAR antialiased resize"

// LoadCelebA reads a split of CelebA as 3×Size×Size images (no labels),
// decoding the JPEGs once: the result is cached in CacheDir and later
// loads read the cache, after checking that it matches the source and
// its checksum.
func LoadCelebA(root string, split Split, opt CelebAOptions) (*Images, error) {
	if opt.Crop == 0 {
		opt.Crop = 148
	}
	if opt.Size == 0 {
		opt.Size = 64
	}
	if opt.Crop <= 0 || opt.Size <= 0 {
		return nil, fmt.Errorf("data: CelebA crop and size must be positive, got %d and %d", opt.Crop, opt.Size)
	}
	if split != Train && split != Valid && split != Test {
		return nil, fmt.Errorf("data: CelebA has splits %q, %q and %q, not %q", Train, Valid, Test, split)
	}
	src, err := FindCelebA(root)
	if err != nil {
		return nil, err
	}
	logf := func(format string, args ...any) {
		if opt.Log != nil {
			fmt.Fprintf(opt.Log, format+"\n", args...)
		}
	}
	name := fmt.Sprintf("celeba%d-%s", opt.Size, split)
	var cachePath string
	var fp [32]byte
	if !opt.NoCache {
		dir := opt.CacheDir
		if dir == "" {
			dir = src.Dir
		}
		cachePath = filepath.Join(dir, fmt.Sprintf("celeba_crop%d_%d_%s.cache", opt.Crop, opt.Size, split))
		if fp, err = src.fingerprint(split, opt.Crop, opt.Size); err != nil {
			return nil, fmt.Errorf("data: CelebA: %w", err)
		}
		n, pix, err := readImageCache(cachePath, fp, 3, opt.Size, opt.Size)
		switch {
		case err == nil:
			return NewImages(name, n, 3, opt.Size, opt.Size, pix, nil)
		case os.IsNotExist(err):
		default:
			logf("data: CelebA: rebuilding the cache: %v", err)
		}
	}
	parts, err := ReadCelebAPartition(src.Partition)
	if err != nil {
		return nil, fmt.Errorf("data: CelebA: %w", err)
	}
	names := parts[split]
	if len(names) == 0 {
		return nil, fmt.Errorf("data: CelebA: %w: %s lists no %s images", ErrCorrupt, src.Partition, split)
	}
	open, closeFn, err := src.opener()
	if err != nil {
		return nil, fmt.Errorf("data: CelebA: %w", err)
	}
	defer closeFn()
	logf("data: CelebA: decoding %d %s images from %s", len(names), split, src.Images)
	pix, err := decodeCelebA(open, names, opt)
	if err != nil {
		return nil, fmt.Errorf("data: CelebA: %w; check the files with `go run ./cmd/data verify celeba`", err)
	}
	if cachePath != "" {
		if err := writeImageCache(cachePath, fp, len(names), 3, opt.Size, opt.Size, pix); err != nil {
			logf("data: CelebA: not cached: %v", err)
		} else {
			logf("data: CelebA: cached in %s", cachePath)
		}
	}
	return NewImages(name, len(names), 3, opt.Size, opt.Size, pix, nil)
}

// decodeCelebA decodes and preprocesses names in parallel into NCHW.
func decodeCelebA(open imageOpener, names []string, opt CelebAOptions) ([]uint8, error) {
	workers := opt.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	plane := opt.Size * opt.Size
	pix := make([]uint8, len(names)*3*plane)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(names) || errs[w] != nil {
					return
				}
				b, err := open(names[i])
				if err != nil {
					errs[w] = fmt.Errorf("%s: %w", names[i], err)
					next.Store(int64(len(names)))
					return
				}
				rgb, iw, ih, err := DecodeRGB(bytes.NewReader(b))
				if err == nil {
					rgb, err = CropResize(rgb, iw, ih, opt.Crop, opt.Size)
				}
				if err != nil {
					errs[w] = fmt.Errorf("%w: %s: %v", ErrCorrupt, names[i], err)
					next.Store(int64(len(names)))
					return
				}
				celebaDecodes.Add(1)
				dst := pix[i*3*plane : (i+1)*3*plane]
				for p := 0; p < plane; p++ {
					dst[p], dst[plane+p], dst[2*plane+p] = rgb[3*p], rgb[3*p+1], rgb[3*p+2]
				}
			}
		}(w)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return pix, nil
}
