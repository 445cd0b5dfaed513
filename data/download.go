package data

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Remote is one downloadable file of a dataset.
type Remote struct {
	Name string   // file name on disk
	URLs []string // tried in order
	MD5  string   // hex MD5 of the file
}

// Source is how a dataset is fetched: its files go to <root>/<Dir>.
type Source struct {
	Dataset string
	Dir     string
	Files   []Remote
	Extract bool // unpack .tar.gz files into Dir after verifying them
}

const mnistMirror = "https://ossci-datasets.s3.amazonaws.com/mnist/"

func mnistRemote(name, sum string) Remote {
	return Remote{Name: name, MD5: sum, URLs: []string{"http://yann.lecun.com/exdb/mnist/" + name, mnistMirror + name}}
}

// Sources lists the datasets `download` can fetch. CelebA is not here:
// it is distributed through Google Drive, so it is installed from a local
// copy (InstallCelebA).
var Sources = map[string]Source{
	"cifar10": {Dataset: "cifar10", Dir: "cifar10", Extract: true, Files: []Remote{{
		Name: "cifar-10-binary.tar.gz",
		URLs: []string{"https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"},
		MD5:  "c32a1d4ab5d03f1284b67883e8d87530",
	}}},
	"mnist": {Dataset: "mnist", Dir: "mnist", Files: []Remote{
		mnistRemote("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
		mnistRemote("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
		mnistRemote("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
		mnistRemote("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
	}},
}

// CelebA reference checksums.
const (
	CelebAZipMD5       = "00d2c5bc6d35e252742224ab0c1e8fcb"
	CelebAPartitionMD5 = "d32c9cbf5e040fd4025c592c306e6668"
)

// DownloadOptions adjusts Download.
type DownloadOptions struct {
	// Mirrors, when set, replace each file's URLs: the file name is
	// appended to each base URL, tried in order.
	Mirrors []string
	// MD5 overrides expected checksums by file name (fixtures in tests).
	MD5 map[string]string
	// Client is the HTTP client; http.DefaultClient when nil.
	Client *http.Client
	// Progress receives progress bars and messages; nil for silence.
	Progress io.Writer
}

// Download fetches a dataset's files into <root>/<dir>, checks their MD5,
// and extracts archives. Files already present with the right MD5 are
// kept. A partial or corrupt download is deleted.
func Download(ctx context.Context, dataset, root string, opt DownloadOptions) error {
	src, ok := Sources[dataset]
	if !ok {
		if dataset == "celeba" {
			return errors.New("data: CelebA cannot be downloaded automatically (it is on Google Drive): get img_align_celeba.zip and list_eval_partition.txt from the CelebA site, then run `go run ./cmd/data download celeba -from FOLDER_OR_ZIP`")
		}
		return fmt.Errorf("data: unknown dataset %q (want one of %s, or celeba from a local copy)", dataset, strings.Join(sourceNames(), ", "))
	}
	dir := filepath.Join(root, src.Dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("data: %w", err)
	}
	for _, f := range src.Files {
		want := f.MD5
		if s, ok := opt.MD5[f.Name]; ok {
			want = s
		}
		urls := f.URLs
		if len(opt.Mirrors) > 0 {
			urls = nil
			for _, m := range opt.Mirrors {
				urls = append(urls, strings.TrimRight(m, "/")+"/"+f.Name)
			}
		}
		dest := filepath.Join(dir, f.Name)
		if got, err := fileMD5(dest); err == nil && got == want {
			opt.logf("%s: present, MD5 ok", dest)
		} else if err := fetchFirst(ctx, urls, dest, want, opt); err != nil {
			return err
		}
		if src.Extract && strings.HasSuffix(f.Name, ".tar.gz") {
			opt.logf("extracting %s", dest)
			if err := ExtractTarGz(dest, dir); err != nil {
				return err
			}
		}
	}
	return nil
}

func sourceNames() []string {
	var out []string
	for k := range Sources {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (o DownloadOptions) logf(format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, format+"\n", args...)
	}
}

// fetchFirst downloads from the first URL that serves a file with the
// expected MD5.
func fetchFirst(ctx context.Context, urls []string, dest, want string, opt DownloadOptions) error {
	var failures []string
	for _, u := range urls {
		err := fetchOne(ctx, u, dest, want, opt)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("data: downloading %s: %w", u, ctx.Err())
		}
		opt.logf("%v", err)
		failures = append(failures, err.Error())
	}
	return fmt.Errorf("data: could not fetch %s:\n  %s\ncheck the network, or pass a mirror with -mirror", filepath.Base(dest), strings.Join(failures, "\n  "))
}

// fetchOne streams url to dest.part while hashing it, and renames it to
// dest when the MD5 matches.
func fetchOne(ctx context.Context, url, dest, want string, opt DownloadOptions) error {
	client := opt.Client
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("%s: %v", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %s", url, resp.Status)
	}
	part := dest + ".part"
	f, err := os.Create(part)
	if err != nil {
		return err
	}
	defer os.Remove(part) // no-op after the rename
	h := md5.New()
	var w io.Writer = io.MultiWriter(f, h)
	if opt.Progress != nil {
		bar := progressbar.NewOptions64(resp.ContentLength,
			progressbar.OptionSetWriter(opt.Progress),
			progressbar.OptionSetDescription(path.Base(dest)),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowTotalBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(opt.Progress) }),
		)
		defer bar.Close()
		w = io.MultiWriter(w, bar)
	}
	n, err := io.Copy(w, resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: after %d bytes: %v", url, n, err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return fmt.Errorf("%s: got %d bytes, the server announced %d", url, n, resp.ContentLength)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("%s: MD5 %s, want %s: the download is corrupt or the file changed", url, got, want)
	}
	return os.Rename(part, dest)
}

// fileMD5 is the hex MD5 of a file.
func fileMD5(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := md5.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ExtractTarGz unpacks the regular files and folders of a .tar.gz into
// dir, refusing entries that would land outside it. It also writes an
// MD5SUMS file beside each extracted file's folder, so Verify can check
// the unpacked files later against the verified archive.
func ExtractTarGz(archive, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return fmt.Errorf("data: %w", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("data: %w: %s: %v", ErrCorrupt, archive, err)
	}
	tr := tar.NewReader(zr)
	sums := map[string][]string{} // folder → "md5  name" lines
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("data: %w: %s: %v", ErrCorrupt, archive, err)
		}
		name := path.Clean(hdr.Name)
		if path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("data: %w: %s: entry %q points outside the folder", ErrCorrupt, archive, hdr.Name)
		}
		target := filepath.Join(dir, filepath.FromSlash(name))
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return fmt.Errorf("data: %w", err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return fmt.Errorf("data: %w", err)
			}
			out, err := os.Create(target)
			if err != nil {
				return fmt.Errorf("data: %w", err)
			}
			h := md5.New()
			_, err = io.Copy(io.MultiWriter(out, h), tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("data: %w: %s: extracting %s: %v", ErrCorrupt, archive, hdr.Name, err)
			}
			folder := filepath.Dir(target)
			sums[folder] = append(sums[folder], hex.EncodeToString(h.Sum(nil))+"  "+filepath.Base(target))
		}
	}
	for folder, lines := range sums {
		sort.Slice(lines, func(i, j int) bool { return lines[i][34:] < lines[j][34:] })
		if err := os.WriteFile(filepath.Join(folder, "MD5SUMS"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			return fmt.Errorf("data: %w", err)
		}
	}
	return nil
}
