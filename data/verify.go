package data

import (
	"archive/zip"
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Check is the outcome of one verification of one file.
type Check struct {
	Path string
	What string // "md5", "format" or "present"
	Note string // what was checked, for the report
	Err  error  // nil when the check passed
}

func (c Check) String() string {
	if c.Err != nil {
		return fmt.Sprintf("FAIL %-7s %s: %v", c.What, c.Path, c.Err)
	}
	return fmt.Sprintf("ok   %-7s %s %s", c.What, c.Path, c.Note)
}

// VerifyOptions adjusts Verify.
type VerifyOptions struct {
	// MD5 gives expected checksums by file name, overriding the reference
	// ones and the MD5SUMS written at extraction.
	MD5 map[string]string
	// Log receives one line per check; nil for none.
	Log io.Writer
}

// Verify checks a dataset's files in root as the loaders would find them:
// MD5s against the reference values (or the MD5SUMS written when an
// archive was extracted), and each file's format. It returns every check
// and an error naming the failures.
func Verify(dataset, root string, opt VerifyOptions) ([]Check, error) {
	var checks []Check
	add := func(c Check) {
		checks = append(checks, c)
		if opt.Log != nil {
			fmt.Fprintln(opt.Log, c)
		}
	}
	var err error
	switch dataset {
	case "cifar10":
		err = verifyCIFAR10(root, opt, add)
	case "mnist":
		err = verifyMNIST(root, opt, add)
	case "celeba":
		err = verifyCelebA(root, opt, add)
	default:
		return nil, fmt.Errorf("data: unknown dataset %q (want cifar10, mnist or celeba)", dataset)
	}
	if err != nil {
		return checks, err
	}
	var failed []string
	for _, c := range checks {
		if c.Err != nil {
			failed = append(failed, c.String())
		}
	}
	if len(failed) > 0 {
		return checks, fmt.Errorf("data: %s: %d of %d checks failed:\n  %s\nfetch the files again (`%s`)",
			dataset, len(failed), len(checks), strings.Join(failed, "\n  "), fetchHint(dataset, root))
	}
	return checks, nil
}

// md5Check compares a file's MD5 with want.
func md5Check(p, want string) Check {
	got, err := fileMD5(p)
	switch {
	case err != nil:
		return Check{Path: p, What: "md5", Err: err}
	case got != want:
		return Check{Path: p, What: "md5", Err: fmt.Errorf("%w: MD5 %s, want %s", ErrCorrupt, got, want)}
	}
	return Check{Path: p, What: "md5", Note: want}
}

// readMD5SUMS reads "md5  name" lines; a missing file gives no sums.
func readMD5SUMS(dir string) map[string]string {
	out := map[string]string{}
	f, err := os.Open(filepath.Join(dir, "MD5SUMS"))
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) == 2 {
			out[fs[1]] = fs[0]
		}
	}
	return out
}

func expectedMD5(name string, opt VerifyOptions, fallback map[string]string) (string, bool) {
	if s, ok := opt.MD5[name]; ok {
		return s, true
	}
	s, ok := fallback[name]
	return s, ok
}

func verifyCIFAR10(root string, opt VerifyOptions, add func(Check)) error {
	tarball := filepath.Join(root, "cifar10", "cifar-10-binary.tar.gz")
	if _, err := os.Stat(tarball); err == nil {
		want, _ := expectedMD5(filepath.Base(tarball), opt, map[string]string{filepath.Base(tarball): Sources["cifar10"].Files[0].MD5})
		add(md5Check(tarball, want))
	}
	dir, err := CIFAR10Dir(root)
	if err != nil {
		return err
	}
	sums := readMD5SUMS(dir)
	scratchPix, scratchLbl := make([]uint8, cifarPerFile*3072), make([]uint8, cifarPerFile)
	for _, split := range []Split{Train, Test} {
		files, _ := cifarFiles(split)
		for _, name := range files {
			p := filepath.Join(dir, name)
			if err := readCIFARFile(p, scratchPix, scratchLbl, root); err != nil {
				add(Check{Path: p, What: "format", Err: err})
				continue
			}
			add(Check{Path: p, What: "format", Note: "10000 records, labels 0..9"})
			if want, ok := expectedMD5(name, opt, sums); ok {
				add(md5Check(p, want))
			}
		}
	}
	return nil
}

func verifyMNIST(root string, opt VerifyOptions, add func(Check)) error {
	dir := filepath.Join(root, "mnist")
	if _, ok := findIDX(dir, "train-images-idx3-ubyte"); !ok {
		mod, err := GoMNISTDir()
		if err != nil {
			return fmt.Errorf("data: MNIST: no idx files in %s and %v; fetch them with `%s`: %w", dir, err, fetchHint("mnist", root), ErrNotFound)
		}
		dir = mod
	}
	ref := map[string]string{}
	for _, f := range Sources["mnist"].Files {
		ref[f.Name] = f.MD5
	}
	for _, split := range []Split{Train, Test} {
		imgBase, lblBase, _ := mnistFiles(split)
		var nImg, nLbl int
		for _, base := range []string{imgBase, lblBase} {
			p, ok := findIDX(dir, base)
			if !ok {
				add(Check{Path: filepath.Join(dir, base+".gz"), What: "present", Err: ErrNotFound})
				continue
			}
			if want, ok := expectedMD5(filepath.Base(p), opt, ref); ok {
				add(md5Check(p, want))
			}
			var err error
			if base == imgBase {
				var rows, cols int
				nImg, rows, cols, _, err = ReadIDXImages(p)
				if err == nil && (rows != 28 || cols != 28) {
					err = fmt.Errorf("%w: %d×%d images, want 28×28", ErrCorrupt, rows, cols)
				}
			} else {
				var l []uint8
				l, err = ReadIDXLabels(p)
				nLbl = len(l)
			}
			if err != nil {
				add(Check{Path: p, What: "format", Err: err})
			} else {
				add(Check{Path: p, What: "format", Note: "idx header and length"})
			}
		}
		if nImg != nLbl {
			add(Check{Path: filepath.Join(dir, lblBase), What: "format", Err: fmt.Errorf("%w: %d labels for %d images", ErrCorrupt, nLbl, nImg)})
		}
	}
	return nil
}

func verifyCelebA(root string, opt VerifyOptions, add func(Check)) error {
	src, err := FindCelebA(root)
	if err != nil {
		return err
	}
	if src.Zipped {
		want, _ := expectedMD5(CelebAZip, opt, map[string]string{CelebAZip: CelebAZipMD5})
		add(md5Check(src.Images, want))
	}
	want, _ := expectedMD5(CelebAPartition, opt, map[string]string{CelebAPartition: CelebAPartitionMD5})
	add(md5Check(src.Partition, want))
	parts, err := ReadCelebAPartition(src.Partition)
	if err != nil {
		add(Check{Path: src.Partition, What: "format", Err: err})
		return nil
	}
	add(Check{Path: src.Partition, What: "format", Note: fmt.Sprintf("train %d, valid %d, test %d", len(parts[Train]), len(parts[Valid]), len(parts[Test]))})
	have, err := celebaNames(src)
	if err != nil {
		add(Check{Path: src.Images, What: "present", Err: err})
		return nil
	}
	var missing []string
	total := 0
	for _, names := range parts {
		for _, n := range names {
			total++
			if !have[n] {
				missing = append(missing, n)
			}
		}
	}
	if len(missing) > 0 {
		ex := missing[:min(len(missing), 5)]
		add(Check{Path: src.Images, What: "present", Err: fmt.Errorf("%w: %d of the %d images listed in %s are missing (e.g. %s)", ErrCorrupt, len(missing), total, CelebAPartition, strings.Join(ex, ", "))})
	} else {
		add(Check{Path: src.Images, What: "present", Note: fmt.Sprintf("all %d listed images", total)})
	}
	return nil
}

// celebaNames lists the image names of the source.
func celebaNames(src *CelebASource) (map[string]bool, error) {
	out := map[string]bool{}
	if src.Zipped {
		zr, err := zip.OpenReader(src.Images)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		defer zr.Close()
		for _, f := range zr.File {
			if !strings.HasSuffix(f.Name, "/") {
				out[pathBase(f.Name)] = true
			}
		}
		return out, nil
	}
	entries, err := os.ReadDir(src.Images)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if e.Type().IsRegular() || e.Type()&os.ModeSymlink != 0 {
			out[e.Name()] = true
		}
	}
	return out, nil
}

// InstallCelebA puts a local copy of CelebA where the loader looks,
// <root>/celeba: from is img_align_celeba.zip, the img_align_celeba
// folder, or a folder holding either; partition is list_eval_partition.txt
// (default: beside the images, or in Eval/). The zip and the partition
// file are checked against the reference MD5s first. Files are linked
// (symlinks), or copied with copyFiles.
func InstallCelebA(from, partition, root string, copyFiles bool, log io.Writer) error {
	from = filepath.Clean(from)
	st, err := os.Stat(from)
	if err != nil {
		return fmt.Errorf("data: CelebA: %w", err)
	}
	var images string
	switch {
	case !st.IsDir():
		images = from
	case filepath.Base(from) == CelebAFolder:
		images = from
	default:
		src, err := FindCelebA(from)
		if err != nil && partition == "" {
			return err
		}
		if src != nil {
			images = src.Images
			if partition == "" {
				partition = src.Partition
			}
		} else if _, e := os.Stat(filepath.Join(from, CelebAFolder)); e == nil {
			images = filepath.Join(from, CelebAFolder)
		} else {
			images = filepath.Join(from, CelebAZip)
		}
	}
	if partition == "" {
		dir := filepath.Dir(images)
		for _, p := range []string{filepath.Join(dir, CelebAPartition), filepath.Join(dir, "Eval", CelebAPartition)} {
			if _, err := os.Stat(p); err == nil {
				partition = p
				break
			}
		}
		if partition == "" {
			return fmt.Errorf("data: CelebA: no %s beside %s: pass it with -partition: %w", CelebAPartition, images, ErrNotFound)
		}
	}
	zipped := !strings.HasSuffix(images, CelebAFolder)
	if zipped {
		if c := md5Check(images, CelebAZipMD5); c.Err != nil {
			return fmt.Errorf("data: CelebA: %s: %w", images, c.Err)
		}
	}
	if c := md5Check(partition, CelebAPartitionMD5); c.Err != nil {
		return fmt.Errorf("data: CelebA: %s: %w", partition, c.Err)
	}
	dest := filepath.Join(root, "celeba")
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return fmt.Errorf("data: %w", err)
	}
	for _, pair := range [][2]string{{images, filepath.Join(dest, filepath.Base(images))}, {partition, filepath.Join(dest, CelebAPartition)}} {
		if err := placeFile(pair[0], pair[1], copyFiles); err != nil {
			return fmt.Errorf("data: CelebA: %w", err)
		}
		if log != nil {
			fmt.Fprintf(log, "%s -> %s\n", pair[1], pair[0])
		}
	}
	return nil
}

// placeFile links or copies src (a file or, for links only, a folder)
// to dst, replacing an older link.
func placeFile(src, dst string, copyFiles bool) error {
	abs, err := filepath.Abs(src)
	if err != nil {
		return err
	}
	if same, _ := sameFile(abs, dst); same {
		return nil
	}
	if fi, err := os.Lstat(dst); err == nil {
		if fi.Mode()&os.ModeSymlink == 0 {
			return fmt.Errorf("%s already exists: remove it first", dst)
		}
		os.Remove(dst)
	}
	if !copyFiles {
		return os.Symlink(abs, dst)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return err
	}
	if st.IsDir() {
		return errors.New("copying a folder is not supported: link it, or pass the zip")
	}
	in, err := os.Open(abs)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func sameFile(a, b string) (bool, error) {
	sa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	sb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(sa, sb), nil
}
