// Command data downloads and verifies the image datasets.
//
//	go run ./cmd/data download cifar10|mnist|all [-root datasets] [-mirror URL]...
//	go run ./cmd/data download celeba -from ZIP_OR_FOLDER [-partition FILE] [-copy]
//	go run ./cmd/data verify cifar10|mnist|celeba|all [-root datasets] [-md5 NAME=HEX]...
//
// Flags may come before or after the dataset names. The work is done by
// package data; this is a thin front end.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/mollify/mollify/data"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: go run ./cmd/data <command> [flags] <dataset>...

commands:
  download cifar10|mnist|all    fetch into -root, check the MD5s, extract
  download celeba -from PATH    install a local img_align_celeba.zip or folder
                                (plus list_eval_partition.txt) after checking it
  verify cifar10|mnist|celeba|all
                                check MD5s and file formats

flags:
`

// listFlag collects a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// run is main without the exit, for tests; it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "help" || args[0] == "--help" {
		fmt.Fprint(stderr, usage)
		newFlags(io.Discard).fs.PrintDefaults()
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd := args[0]
	f := newFlags(stderr)
	names, err := f.parse(args[1:])
	if err != nil {
		return 2
	}
	if len(names) == 0 {
		fmt.Fprintf(stderr, "%s: name a dataset (cifar10, mnist, celeba or all)\n", cmd)
		return 2
	}
	md5s := map[string]string{}
	for _, kv := range f.md5 {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			fmt.Fprintf(stderr, "-md5 %q: want NAME=HEX\n", kv)
			return 2
		}
		md5s[k] = strings.ToLower(v)
	}
	var progress io.Writer = stderr
	if f.quiet {
		progress = nil
	}
	if f.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.timeout)
		defer cancel()
	}
	switch cmd {
	case "download":
		err = download(ctx, names, f, md5s, progress)
	case "verify":
		err = verify(names, f, md5s, stdout)
	default:
		fmt.Fprintf(stderr, "unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

type flags struct {
	fs        *flag.FlagSet
	root      string
	mirrors   listFlag
	md5       listFlag
	from      string
	partition string
	copy      bool
	quiet     bool
	timeout   time.Duration
}

func newFlags(out io.Writer) *flags {
	f := &flags{fs: flag.NewFlagSet("data", flag.ContinueOnError)}
	f.fs.SetOutput(out)
	f.fs.StringVar(&f.root, "root", data.DefaultRoot, "folder holding the datasets (the run config's data.root)")
	f.fs.Var(&f.mirrors, "mirror", "base URL to fetch from instead of the defaults (repeatable)")
	f.fs.Var(&f.md5, "md5", "expected MD5 of a file, NAME=HEX, overriding the reference value (repeatable)")
	f.fs.StringVar(&f.from, "from", "", "CelebA: img_align_celeba.zip, the img_align_celeba folder, or a folder holding it")
	f.fs.StringVar(&f.partition, "partition", "", "CelebA: list_eval_partition.txt (default: beside the images)")
	f.fs.BoolVar(&f.copy, "copy", false, "CelebA: copy the zip into -root instead of linking it")
	f.fs.BoolVar(&f.quiet, "quiet", false, "no progress output")
	f.fs.DurationVar(&f.timeout, "timeout", 0, "give up after this long (0: never)")
	return f
}

// parse accepts flags before and after the positional arguments.
func (f *flags) parse(args []string) ([]string, error) {
	var names []string
	for {
		if err := f.fs.Parse(args); err != nil {
			return nil, err
		}
		rest := f.fs.Args()
		if len(rest) == 0 {
			return names, nil
		}
		names = append(names, rest[0])
		args = rest[1:]
	}
}

func expand(names []string, all []string) []string {
	var out []string
	for _, n := range names {
		if n == "all" {
			out = append(out, all...)
		} else {
			out = append(out, n)
		}
	}
	return out
}

func download(ctx context.Context, names []string, f *flags, md5s map[string]string, progress io.Writer) error {
	for _, name := range expand(names, []string{"cifar10", "mnist"}) {
		var err error
		if name == "celeba" {
			if f.from == "" {
				return errors.New("download celeba: CelebA is not downloadable automatically (Google Drive); get img_align_celeba.zip and list_eval_partition.txt from the CelebA site and pass -from PATH")
			}
			err = data.InstallCelebA(f.from, f.partition, f.root, f.copy, progress)
		} else {
			err = data.Download(ctx, name, f.root, data.DownloadOptions{Mirrors: f.mirrors, MD5: md5s, Progress: progress})
		}
		if err != nil {
			return err
		}
		if _, err := data.Verify(name, f.root, data.VerifyOptions{MD5: md5s}); err != nil {
			return err
		}
		if progress != nil {
			fmt.Fprintf(progress, "%s: ready in %s\n", name, f.root)
		}
	}
	return nil
}

func verify(names []string, f *flags, md5s map[string]string, out io.Writer) error {
	all := len(names) == 1 && names[0] == "all"
	var failed []string
	for _, name := range expand(names, []string{"cifar10", "mnist", "celeba"}) {
		_, err := data.Verify(name, f.root, data.VerifyOptions{MD5: md5s, Log: out})
		switch {
		case err == nil:
			fmt.Fprintf(out, "%s: ok\n", name)
		case all && errors.Is(err, data.ErrNotFound):
			fmt.Fprintf(out, "%s: not installed (%v)\n", name, err)
		default:
			failed = append(failed, err.Error())
		}
	}
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "\n"))
	}
	return nil
}
