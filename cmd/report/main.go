// Command report turns a sweep folder into the paper's tables: FID (or
// FCD) per model × training, mean ± std over seeds, the change against
// vanilla as "↓ x%", the published value and the difference beside each
// cell, bits/dim, every run with its state, and figures (the metric over
// training per model, Fig. 7; a sample grid per dataset, Tables 5–6).
//
//	go run ./cmd/report runs/sweeps/table1_cifar10
//	go run ./cmd/report runs/sweeps/mnist -o docs/img/repro_mnist -metric fcd
//
// It writes report.md, report.csv and the PNGs into -o (default
// SWEEP_DIR/report) and prints the Markdown. docs/report.md explains the
// columns and how the paper's values are matched.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/mollify/mollify/experiments"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

const usage = "usage: report SWEEP_DIR [-o OUTDIR] [-metric fid|fcd]"

// run parses flags before and after SWEEP_DIR, as users type them.
func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "folder for report.md, report.csv and the figures (default SWEEP_DIR/report)")
	metric := fs.String("metric", "", "fid or fcd (default: fid if the runs logged it, else fcd)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, usage)
		fs.PrintDefaults()
	}
	var dirs []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return fmt.Errorf("%w (%s)", err, usage)
		}
		if fs.NArg() == 0 {
			break
		}
		dirs = append(dirs, fs.Arg(0))
		args = fs.Args()[1:]
	}
	switch len(dirs) {
	case 0:
		return errors.New("no sweep folder given (" + usage + ")")
	case 1:
	default:
		return fmt.Errorf("one sweep folder at a time, got %d: %v (%s)", len(dirs), dirs, usage)
	}
	dir := dirs[0]
	rep, err := experiments.ReadReport(dir, *metric)
	if err != nil {
		return err
	}
	if *out == "" {
		*out = filepath.Join(dir, "report")
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fmt.Errorf("output folder (flag -o): %w", err)
	}
	figures, err := rep.WriteFigures(*out)
	if err != nil {
		return fmt.Errorf("figures: %w", err)
	}
	var md, csv bytes.Buffer
	if err := rep.Markdown(&md, figures); err != nil {
		return err
	}
	if err := rep.CSV(&csv); err != nil {
		return err
	}
	for name, b := range map[string][]byte{"report.md": md.Bytes(), "report.csv": csv.Bytes()} {
		if err := os.WriteFile(filepath.Join(*out, name), b, 0o644); err != nil {
			return err
		}
	}
	if _, err := stdout.Write(md.Bytes()); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "report: wrote report.md, report.csv and %d figure(s) to %s\n", len(figures), *out)
	return nil
}
