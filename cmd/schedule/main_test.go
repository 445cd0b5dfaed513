package main

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mollify/mollify/mollification"
)

func TestCSV(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run([]string{"-n", "5"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 6 || lines[0] != "t,sigma2,log_snr" {
		t.Fatalf("CSV:\n%s", out.String())
	}
	s := mollification.DefaultSigmoid()
	for i, line := range lines[1:] {
		f := strings.Split(line, ",")
		tt, _ := strconv.ParseFloat(f[0], 64)
		s2, _ := strconv.ParseFloat(f[1], 64)
		if tt != float64(i)/4 || s2 != s.Sigma2(tt) {
			t.Errorf("row %d = %q, want t=%g σ²=%g", i, line, float64(i)/4, s.Sigma2(float64(i)/4))
		}
	}
	if lines[1] != "0,1,-Inf" || !strings.HasPrefix(lines[3], "0.5,0.1879509243") {
		t.Errorf("rows: %q, %q", lines[1], lines[3])
	}
}

func TestConfigAndFlags(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"-config", "realnvp_mog", "-set", "mollification.schedule=linear", "-n", "3"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "t,sigma2,log_snr\n0,1,-Inf\n0.5,0.5,0\n1,0,+Inf\n" {
		t.Errorf("linear from config:\n%s", got)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-schedule", "sigmod"}, `unknown schedule "sigmod"`},
		{[]string{"-n", "1"}, "-n must be at least 2"},
		{[]string{"-set", "a=b"}, "-set needs -config"},
		{[]string{"-config", "nope"}, `config "nope" not found`},
		{[]string{"-png", filepath.Join(t.TempDir(), "x.png"), "-taus", "0.2,-1"}, "not a temperature"},
	} {
		if err := run(tc.args, &out, &out); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestPNG(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "fig3.png")
	var out bytes.Buffer
	if err := run([]string{"-csv", "", "-png", p, "-n", "51"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 500 || b.Dy() < 200 {
		t.Errorf("image is %v", b)
	}
	if strings.Contains(out.String(), "t,sigma2") {
		t.Error("-csv \"\" still printed CSV")
	}
}
