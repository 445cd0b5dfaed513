package tensorboard_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mollify/mollify/train/tensorboard"
	"github.com/mollify/mollify/train/tensorboard/tbread"
)

type crcVector struct {
	Name   string `json:"name"`
	Hex    string `json:"hex"`
	CRC32C uint32 `json:"crc32c"`
	Masked uint32 `json:"masked"`
}

// The writer's masked CRC and the test reader's bitwise CRC-32C agree
// with RFC 3720's published vectors (testdata/gen_crc32c.py checks its
// CRCs against the RFC before it masks them).
func TestMaskedCRC32CVectors(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "crc32c.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vs []crcVector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	// The RFC's values, written out here so that the golden file cannot
	// drift from them unnoticed.
	published := map[string]uint32{
		"32 bytes of zeros (RFC 3720 B.4)":           0x8a9136aa,
		"32 bytes of 0xff (RFC 3720 B.4)":            0x62a8ab43,
		"32 incrementing bytes 0..31 (RFC 3720 B.4)": 0x46dd794e,
		"32 decrementing bytes 31..0 (RFC 3720 B.4)": 0x113fdb5c,
		"iSCSI read PDU (RFC 3720 B.4)":              0xd9963a56,
	}
	seen := 0
	for _, v := range vs {
		data, err := hex.DecodeString(v.Hex)
		if err != nil {
			t.Fatal(err)
		}
		if p, ok := published[v.Name]; ok {
			seen++
			if v.CRC32C != p {
				t.Errorf("%s: golden CRC %#08x, RFC 3720 %#08x", v.Name, v.CRC32C, p)
			}
		}
		if got := tbread.CRC32C(data); got != v.CRC32C {
			t.Errorf("%s: reader CRC32C %#08x, want %#08x", v.Name, got, v.CRC32C)
		}
		if got := tensorboard.MaskedCRC32C(data); got != v.Masked {
			t.Errorf("%s: MaskedCRC32C %#08x, want %#08x", v.Name, got, v.Masked)
		}
		if got := tbread.Mask(v.CRC32C); got != v.Masked {
			t.Errorf("%s: reader mask %#08x, want %#08x", v.Name, got, v.Masked)
		}
	}
	if seen != len(published) {
		t.Errorf("golden file has %d of the %d RFC vectors", seen, len(published))
	}
}

func testPNG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readOnly(t *testing.T, dir string) (string, []tbread.Event) {
	t.Helper()
	files, err := tbread.Files(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 {
		t.Fatalf("event files %v, want one", files)
	}
	evs, err := tbread.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	return files[0], evs
}

// What the writer writes, the reader written from the formats' specs
// reads back: file version first, then tags, steps, values, wall times,
// image sizes and bytes, and the session start.
func TestEventsReadBack(t *testing.T) {
	dir := t.TempDir()
	w, err := tensorboard.NewWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	wall := time.Unix(1_700_000_000, 500_000_000) // exactly 1700000000.5 s
	scalars := []struct {
		tag  string
		step int64
		v    float64
	}{
		{"train/loss", 0, 2.5},
		{"train/loss", 100, -1.25},
		{"train/sigma2", 100, 1e-9},
		{"eval/bpd", 1 << 40, 3.0625},
		{"fid/fid", 7, math.Inf(1)},
		{"train/nan", 8, math.NaN()},
	}
	for _, s := range scalars {
		if err := w.Scalar(s.tag, s.step, s.v, wall); err != nil {
			t.Fatal(err)
		}
	}
	grey := image.NewGray(image.Rect(0, 0, 5, 3))
	grey.Pix[4] = 200
	pngGrey := testPNG(t, grey)
	rgba := image.NewNRGBA(image.Rect(0, 0, 2, 7))
	rgba.Set(1, 1, color.NRGBA{10, 20, 30, 40})
	pngRGBA := testPNG(t, rgba)
	if err := w.PNG("samples", 300, pngGrey, wall.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := w.Image("samples", 400, pngRGBA, 7, 2, 4, wall); err != nil {
		t.Fatal(err)
	}
	if err := w.SessionStart(11, wall); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	path, evs := readOnly(t, dir)
	if filepath.Base(path) != filepath.Base(w.Path()) || !strings.HasPrefix(filepath.Base(path), "events.out.tfevents.") {
		t.Errorf("file %s, writer says %s", path, w.Path())
	}
	if want := 1 + len(scalars) + 3; len(evs) != want {
		t.Fatalf("%d events, want %d", len(evs), want)
	}
	first := evs[0]
	if first.FileVersion != "brain.Event:2" || first.HasSummary || math.Abs(first.WallTime-float64(time.Now().Unix())) > 60 {
		t.Errorf("first event %+v, want file_version brain.Event:2 written now", first)
	}
	for i, s := range scalars {
		ev := evs[1+i]
		if ev.Step != s.step || ev.WallTime != 1_700_000_000.5 || len(ev.Values) != 1 {
			t.Errorf("scalar %d: event %+v", i, ev)
			continue
		}
		v := ev.Values[0]
		want := float32(s.v)
		same := v.Simple == want || math.IsNaN(float64(want)) && math.IsNaN(float64(v.Simple))
		if v.Tag != s.tag || !v.HasSimple || !same || v.Image != nil {
			t.Errorf("scalar %d: value %+v, want %s = %g", i, v, s.tag, want)
		}
	}
	for i, c := range []struct {
		step           int64
		wall           float64
		png            []byte
		h, w, channels int
	}{{300, 1_700_000_001.5, pngGrey, 3, 5, 1}, {400, 1_700_000_000.5, pngRGBA, 7, 2, 4}} {
		ev := evs[1+len(scalars)+i]
		if ev.Step != c.step || ev.WallTime != c.wall || len(ev.Values) != 1 || ev.Values[0].Image == nil {
			t.Errorf("image %d: event %+v", i, ev)
			continue
		}
		v, im := ev.Values[0], ev.Values[0].Image
		if v.Tag != "samples" || v.HasSimple || im.Height != c.h || im.Width != c.w || im.Colorspace != c.channels || !bytes.Equal(im.Encoded, c.png) {
			t.Errorf("image %d: tag %q, %d×%d colorspace %d, %d bytes; want %d×%d colorspace %d, %d bytes",
				i, v.Tag, im.Height, im.Width, im.Colorspace, len(im.Encoded), c.h, c.w, c.channels, len(c.png))
		}
	}
	last := evs[len(evs)-1]
	if !last.HasSessionLog || last.SessionStatus != 1 || last.Step != 11 || last.HasSummary {
		t.Errorf("session start event %+v, want SessionLog START at step 11", last)
	}
	if err := w.Scalar("x", 1, 1, wall); err == nil {
		t.Error("Scalar after Close succeeded")
	}
}

// A changed byte anywhere in a record is caught by one of its two CRCs,
// and a truncated file is reported, not read short.
func TestCorruptedBytesAreDetected(t *testing.T) {
	dir := t.TempDir()
	w, err := tensorboard.NewWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Scalar("train/loss", 3, 1.5, time.Unix(10, 0)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(w.Path())
	if err != nil {
		t.Fatal(err)
	}
	recs, err := tbread.Records(good)
	if err != nil || len(recs) != 2 {
		t.Fatalf("%d records, %v", len(recs), err)
	}
	second := 12 + len(recs[0]) + 4 // the scalar's record starts here
	for _, c := range []struct {
		name string
		at   int
		want string
	}{
		{"length of the first record", 0, "length: CRC mismatch"},
		{"length CRC of the first record", 9, "length: CRC mismatch"},
		{"data of the first record", 14, "data: CRC mismatch"},
		{"data CRC of the first record", second - 1, "data: CRC mismatch"},
		{"data of the second record", second + 20, "data: CRC mismatch"},
		{"last byte of the file", len(good) - 1, "data: CRC mismatch"},
	} {
		bad := bytes.Clone(good)
		bad[c.at] ^= 0x10
		_, err := tbread.Decode(bad)
		if !errors.Is(err, tbread.ErrCRC) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s changed: error %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := tbread.Decode(good[:len(good)-2]); err == nil || !strings.Contains(err.Error(), "past the end") {
		t.Errorf("truncated file: error %v", err)
	}
}

// A second writer in the same folder (a resumed run) gets its own file,
// named after the first, and both read back whole.
func TestWritersNeverShareAFile(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for i := 0; i < 3; i++ {
		w, err := tensorboard.NewWriter(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Scalar("train/loss", int64(i), float64(i), time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, w.Path())
	}
	files, err := tbread.Files(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 3 {
		t.Fatalf("files %v, want 3", files)
	}
	host, _ := os.Hostname()
	for i, f := range files {
		// Name order is creation order, which is how TensorBoard reads them.
		if f != paths[i] || !strings.Contains(filepath.Base(f), "."+host) {
			t.Errorf("file %d is %s, writer %d wrote %s (host %s)", i, f, i, paths[i], host)
		}
		evs, err := tbread.ReadFile(f)
		if err != nil || len(evs) != 2 || evs[1].Step != int64(i) {
			t.Errorf("%s: %d events, %v", f, len(evs), err)
		}
	}
}

func TestBadInput(t *testing.T) {
	if _, err := tensorboard.NewWriter(""); err == nil || !strings.Contains(err.Error(), "no folder") {
		t.Errorf("NewWriter(\"\"): %v", err)
	}
	file := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := tensorboard.NewWriter(file); err == nil {
		t.Error("NewWriter on a file, not a folder: no error")
	}
	w, err := tensorboard.NewWriter(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	now := time.Now()
	p := testPNG(t, image.NewGray(image.Rect(0, 0, 2, 2)))
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"scalar without a tag", w.Scalar("", 1, 1, now), "needs a tag"},
		{"image without a tag", w.Image("", 1, p, 2, 2, 1, now), "needs a tag"},
		{"empty image", w.Image("s", 1, nil, 2, 2, 1, now), "no bytes"},
		{"zero height", w.Image("s", 1, p, 0, 2, 1, now), "must be positive"},
		{"5 channels", w.Image("s", 1, p, 2, 2, 5, now), "want 1 (grey), 2 (grey+alpha), 3 (RGB) or 4 (RGBA)"},
		{"not a PNG", w.PNG("s", 1, []byte("GIF89a........................................"), now), "not a PNG"},
	} {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, c.err, c.want)
		}
	}
	// Refused input writes nothing: the file still holds only its header.
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	evs, err := tbread.ReadFile(w.Path())
	if err != nil || len(evs) != 1 {
		t.Errorf("after refused input: %d events, %v", len(evs), err)
	}
}

func TestPNGHeader(t *testing.T) {
	pal := image.NewPaletted(image.Rect(0, 0, 4, 6), color.Palette{color.Black, color.White})
	opaque := image.NewRGBA(image.Rect(0, 0, 9, 2))
	for i := range opaque.Pix {
		opaque.Pix[i] = 255
	}
	for _, c := range []struct {
		name           string
		img            image.Image
		h, w, channels int
	}{
		{"grey", image.NewGray(image.Rect(0, 0, 3, 5)), 5, 3, 1},
		{"opaque RGBA is written as RGB", opaque, 2, 9, 3},
		{"translucent NRGBA", image.NewNRGBA(image.Rect(0, 0, 1, 1)), 1, 1, 4},
		{"paletted", pal, 6, 4, 3},
	} {
		h, w, ch, err := tensorboard.PNGHeader(testPNG(t, c.img))
		if err != nil || h != c.h || w != c.w || ch != c.channels {
			t.Errorf("%s: %d×%d, %d channels, %v; want %d×%d, %d", c.name, h, w, ch, err, c.h, c.w, c.channels)
		}
	}
}

var update = flag.Bool("update", false, "rewrite testdata/sample from the writer")

// sampleNames are the committed sample's file names: a killed run's file
// and its resume's, in the order TensorBoard reads them.
var sampleNames = []string{"events.out.tfevents.0000001000.sample", "events.out.tfevents.0000002000.sample"}

// writeSample writes the sample run folder: train/loss at steps 1-3 and
// a 4×3 image at step 2, then a resumed file that restarts at step 3
// (SessionLog START), logs train/loss 3 and 4 and eval/bpd 4. TensorBoard
// should show train/loss 3, 2, 1.25, 1 at steps 1-4 (docs/tensorboard.md
// has the check with TensorBoard's own reader).
func writeSample(t *testing.T, dir string) []string {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 4, 3))
	for i := range img.Pix {
		img.Pix[i] = uint8(40 * i)
	}
	var paths []string
	for i, fill := range []func(w *tensorboard.Writer) error{
		func(w *tensorboard.Writer) error {
			at := time.Unix(1000, 250_000_000)
			return errors.Join(w.Scalar("train/loss", 1, 3, at), w.Scalar("train/loss", 2, 2, at),
				w.PNG("samples", 2, testPNG(t, img), at), w.Scalar("train/loss", 3, 1.5, at))
		},
		func(w *tensorboard.Writer) error {
			at := time.Unix(2000, 500_000_000)
			return errors.Join(w.SessionStart(3, at), w.Scalar("train/loss", 3, 1.25, at), w.Scalar("train/loss", 4, 1, at),
				w.Scalar("eval/bpd", 4, 2.5, at))
		},
	} {
		w, err := tensorboard.NewWriter(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := errors.Join(fill(w), w.Close()); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, sampleNames[i])
		if err := os.Rename(w.Path(), p); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

// The writer still writes the committed sample byte for byte, apart from
// the wall time of each file's first event (when the file was made); the
// sample is what docs/tensorboard.md has TensorBoard's own reader check.
// `go test ./train/tensorboard -run TestSample -update` rewrites it.
func TestSampleFolder(t *testing.T) {
	sample := filepath.Join("testdata", "sample")
	if *update {
		os.RemoveAll(sample)
		writeSample(t, sample)
	}
	fresh := writeSample(t, t.TempDir())
	for i, name := range sampleNames {
		want, err := os.ReadFile(filepath.Join(sample, name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(fresh[i])
		if err != nil {
			t.Fatal(err)
		}
		wr, err1 := tbread.Records(want)
		gr, err2 := tbread.Records(got)
		if err := errors.Join(err1, err2); err != nil || len(wr) != len(gr) || len(wr) < 2 {
			t.Fatalf("%s: %d records committed, %d written (%v)", name, len(wr), len(gr), err)
		}
		for j := 1; j < len(wr); j++ {
			if !bytes.Equal(wr[j], gr[j]) {
				t.Errorf("%s: record %d differs from the committed sample", name, j)
			}
		}
	}
	merged, err := tbread.Merged([]string{filepath.Join(sample, sampleNames[0]), filepath.Join(sample, sampleNames[1])})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(tbread.Scalars(merged)); got != "map[eval/bpd:map[4:2.5] train/loss:map[1:3 2:2 3:1.25 4:1]]" {
		t.Errorf("merged sample scalars %s", got)
	}
}
