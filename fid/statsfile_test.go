package fid

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"codeberg.org/sbinet/npyio/npz"
	"gonum.org/v1/gonum/mat"
)

// readArrays reads every float64 array of a numpy .npz file, by name.
func readArrays(t testing.TB, path string) map[string][]float64 {
	t.Helper()
	r, err := npz.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	out := map[string][]float64{}
	for _, key := range r.Keys() {
		var v []float64
		if err := r.Read(key, &v); err != nil {
			t.Fatalf("%s: %s: %v", path, key, err)
		}
		out[strings.TrimSuffix(key, ".npy")] = v
	}
	return out
}

// ramp is gen_stats_files.py's ramp: a[i] = (i-3)/8 in C order.
func ramp(n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = float64(i-3) / 8
	}
	return s
}

// TestLoadStatsNumpyFiles: what numpy writes (gen_stats_files.py), stored
// or deflated, float64 or float32, C or Fortran order, loads exactly.
func TestLoadStatsNumpyFiles(t *testing.T) {
	for _, name := range []string{"stats_d8.npz", "stats_d8_f4_fortran.npz"} {
		s, err := LoadStats(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(s.Mu, ramp(8)) || !slices.Equal(s.Sigma.RawMatrix().Data, ramp(64)) {
			t.Errorf("%s: mu %v sigma %v, want ramps", name, s.Mu, s.Sigma.RawMatrix().Data)
		}
	}
}

// npyMembers returns the decompressed members of a zip archive.
func npyMembers(t *testing.T, path string) map[string][]byte {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	out := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %s: %v", path, f.Name, err)
		}
		out[f.Name] = b
	}
	return out
}

// splitNPY splits a version 1.0 or 2.0 .npy member into its header
// dictionary (without the padding) and its data.
func splitNPY(t *testing.T, name string, b []byte) (header string, data []byte) {
	t.Helper()
	var start, n int
	switch {
	case len(b) >= 10 && string(b[:8]) == "\x93NUMPY\x01\x00":
		start = 10
		n = start + int(binary.LittleEndian.Uint16(b[8:]))
	case len(b) >= 12 && string(b[:8]) == "\x93NUMPY\x02\x00":
		start = 12
		n = start + int(binary.LittleEndian.Uint32(b[8:]))
	default:
		t.Fatalf("%s: not a version 1.0 or 2.0 .npy member: % x", name, b[:min(10, len(b))])
	}
	if n > len(b) || b[n-1] != '\n' {
		t.Fatalf("%s: the header does not end with a newline", name)
	}
	return strings.TrimRight(string(b[start:n]), " \n"), b[n:]
}

// TestSaveStatsAsNumpy: numpy reads what SaveStats writes. The members are
// those np.savez writes for the same arrays (stats_d8.npz): the same names,
// and .npy headers whose dictionaries, which np.load evaluates, and data
// are identical to numpy's. Only the .npy version (2.0, which np.load
// reads, against numpy's 1.0), the padding before the header's newline and
// the deflate compression differ.
func TestSaveStatsAsNumpy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stats.npz")
	if err := SaveStats(path, &Stats{Mu: ramp(8), Sigma: mat.NewDense(8, 8, ramp(64))}); err != nil {
		t.Fatal(err)
	}
	ours, numpy := npyMembers(t, path), npyMembers(t, filepath.Join("testdata", "stats_d8.npz"))
	if len(ours) != len(numpy) {
		t.Fatalf("members %v, numpy's %v", keys(ours), keys(numpy))
	}
	for name, want := range numpy {
		got, ok := ours[name]
		if !ok {
			t.Fatalf("no member %s (have %v)", name, keys(ours))
		}
		gh, gd := splitNPY(t, name, got)
		wh, wd := splitNPY(t, name, want)
		if gh != wh || !bytes.Equal(gd, wd) {
			t.Errorf("%s: header %q and %d data bytes; numpy's %q and %d bytes (data equal: %v)", name, gh, len(gd), wh, len(wd), bytes.Equal(gd, wd))
		}
	}
}

func keys(m map[string][]byte) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	slices.Sort(k)
	return k
}

func TestStatsFileRoundTrip(t *testing.T) {
	acc, _ := NewAccumulator(5)
	acc.AddFloat64(featureRows(&goldenSet{Seed: 3, Decay: 2}, 5, 0, 40))
	st, err := acc.Stats()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "stats.npz")
	if err := SaveStats(path, st); err != nil {
		t.Fatal(err)
	}
	back, err := LoadStats(path)
	if err != nil {
		t.Fatal(err)
	}
	if !mat.Equal(back.Sigma, st.Sigma) || fmt.Sprint(back.Mu) != fmt.Sprint(st.Mu) {
		t.Fatal("statistics changed in a save/load round trip")
	}

	bad := filepath.Join(t.TempDir(), "bad.npz")
	for _, c := range []struct {
		arrays map[string]any
		want   string
	}{
		{map[string]any{"mu.npy": []float64{0, 0}}, "no mu and sigma"},
		{map[string]any{"mu.npy": []float64{0, 0}, "sigma.npy": mat.NewDense(3, 3, nil)}, "sigma has shape [3 3], want (2, 2)"},
		{map[string]any{"mu.npy": []int64{0, 0}, "sigma.npy": mat.NewDense(2, 2, nil)}, "mu has dtype"},
	} {
		if err := npz.Write(bad, c.arrays); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadStats(bad); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want it to mention %q", err, c.want)
		}
	}
	if _, err := LoadStats(filepath.Join(t.TempDir(), "missing.npz")); err == nil {
		t.Error("loading a missing file succeeded")
	}
}

// TestLoadStatsCorrupt: damaged files are errors, never wrong statistics.
func TestLoadStatsCorrupt(t *testing.T) {
	good, err := os.ReadFile(filepath.Join("testdata", "stats_d8.npz"))
	if err != nil {
		t.Fatal(err)
	}
	// The mu member's data starts after its 30+6+20-byte local header and
	// 128-byte .npy header.
	flip := func(off int) []byte {
		b := slices.Clone(good)
		b[off] ^= 0x40
		return b
	}
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "zip"},
		{"not zip", []byte("{'mu': [1, 2, 3]}"), "zip"},
		{"truncated", good[:len(good)/2], "zip"},
		{"data byte flipped", flip(56 + 128 + 5), "checksum"},
		{"npy magic flipped", flip(56 + 1), "mu"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, c.name+".npz")
			if err := os.WriteFile(path, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadStats(path)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to mention %q", err, c.want)
			}
		})
	}
}
