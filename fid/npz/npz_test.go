package npz

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// ramp is gen_fixtures.py's ramp: a[i] = (i-3)/8 in C order.
func ramp(n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = float64(i-3) / 8
	}
	return s
}

func checkArray(t *testing.T, name string, a *Array, shape []int, dt DType) {
	t.Helper()
	if a == nil {
		t.Fatalf("%s: missing", name)
	}
	if !slices.Equal(a.Shape, shape) || a.DType != dt {
		t.Fatalf("%s: shape %v dtype %v, want %v %v", name, a.Shape, a.DType, shape, dt)
	}
	if !slices.Equal(a.Data, ramp(a.Len())) {
		t.Fatalf("%s: data %v, want ramp", name, a.Data)
	}
}

func TestReadNumpyArchives(t *testing.T) {
	m, err := ReadFile("testdata/stats_d8.npz")
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 2 {
		t.Fatalf("got %d arrays, want mu and sigma", len(m))
	}
	checkArray(t, "mu", m["mu"], []int{8}, Float64)
	checkArray(t, "sigma", m["sigma"], []int{8, 8}, Float64)

	m, err = ReadFile("testdata/compressed.npz")
	if err != nil {
		t.Fatal(err)
	}
	checkArray(t, "f4", m["f4"], []int{2, 3, 4}, Float32)
	checkArray(t, "scalar", m["scalar"], []int{}, Float64)
	checkArray(t, "empty", m["empty"], []int{0, 5}, Float64)
}

func TestReadNPYVersions(t *testing.T) {
	for _, name := range []string{"v1.npy", "v2.npy"} {
		f, err := os.Open(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		a, err := ReadNPY(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		checkArray(t, name, a, []int{3, 5}, Float64)
	}
}

func TestReadNPYRejects(t *testing.T) {
	cases := []struct{ file, want string }{
		{"fortran.npy", "Fortran order"},
		{"int64.npy", `unsupported dtype "<i8"`},
		{"bigendian.npy", `unsupported dtype ">f8"`},
	}
	for _, c := range cases {
		f, err := os.Open(filepath.Join("testdata", c.file))
		if err != nil {
			t.Fatal(err)
		}
		_, err = ReadNPY(f)
		f.Close()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to mention %q", c.file, err, c.want)
		}
	}
}

// TestWriteMatchesNumpy checks that Write reproduces np.savez's bytes.
func TestWriteMatchesNumpy(t *testing.T) {
	want, err := os.ReadFile("testdata/stats_d8.npz")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	err = Write(&buf,
		Entry{"mu", &Array{Shape: []int{8}, Data: ramp(8)}},
		Entry{"sigma", &Array{Shape: []int{8, 8}, Data: ramp(64)}})
	if err != nil {
		t.Fatal(err)
	}
	got := buf.Bytes()
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("Go wrote %d bytes, numpy %d; first difference at offset %d", len(got), len(want), i)
	}
}

func TestWriteReadRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.npz")
	in := []Entry{
		{"a", &Array{Shape: []int{3, 2, 2}, Data: ramp(12)}},
		{"f", &Array{Shape: []int{5}, Data: ramp(5), DType: Float32}},
		{"s", &Array{Shape: []int{}, Data: ramp(1)}},
		{"big", &Array{Shape: []int{70000}, Data: ramp(70000)}},
	}
	if err := WriteFile(path, in...); err != nil {
		t.Fatal(err)
	}
	m, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range in {
		checkArray(t, e.Name, m[e.Name], e.Array.Shape, e.Array.DType)
	}
}

func TestWriteRejects(t *testing.T) {
	cases := []struct {
		entries []Entry
		want    string
	}{
		{[]Entry{{"a", &Array{Shape: []int{3}, Data: ramp(2)}}}, "holds 3 elements but Data has 2"},
		{[]Entry{{"a", &Array{Shape: []int{1}, Data: ramp(1)}}, {"a", &Array{Shape: []int{1}, Data: ramp(1)}}}, "unique"},
		{[]Entry{{"a", nil}}, "nil array"},
	}
	for _, c := range cases {
		err := Write(&bytes.Buffer{}, c.entries...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want it to mention %q", err, c.want)
		}
	}
}

func TestCorruptArchives(t *testing.T) {
	good, err := os.ReadFile("testdata/stats_d8.npz")
	if err != nil {
		t.Fatal(err)
	}
	flip := func(off int) []byte {
		b := slices.Clone(good)
		b[off] ^= 0x40
		return b
	}
	// Offsets: the mu member's data starts after its 30+6+20-byte local
	// header and 128-byte .npy header.
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "not a readable zip archive"},
		{"not zip", []byte("{'mu': [1, 2, 3]}"), "not a readable zip archive"},
		{"truncated", good[:len(good)/2], "not a readable zip archive"},
		{"data byte flipped", flip(56 + 128 + 5), "checksum"},
		{"npy magic flipped", flip(56 + 1), "bad magic"},
		{"npy header broken", flip(56 + 12), "malformed .npy"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(c.data), int64(len(c.data)))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to mention %q", err, c.want)
			}
		})
	}
	// A truncated .npy member body (shape promises more than is there).
	var buf bytes.Buffer
	WriteNPY(&buf, &Array{Shape: []int{4}, Data: ramp(4)})
	_, err = ReadNPY(bytes.NewReader(buf.Bytes()[:buf.Len()-3]))
	if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("truncated .npy: error %v", err)
	}
}
