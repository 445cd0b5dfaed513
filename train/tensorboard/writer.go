package tensorboard

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// FileVersion is the file_version of the first event of every file.
const FileVersion = "brain.Event:2"

// FilePrefix starts the name of every event file.
const FilePrefix = "events.out.tfevents."

// Field numbers of tensorboard/compat/proto/event.proto and summary.proto.
const (
	eventWallTime    = 1 // double
	eventStep        = 2 // int64
	eventFileVersion = 3 // string
	eventSummary     = 5 // Summary
	eventSessionLog  = 7 // SessionLog

	sessionLogStatus = 1 // enum SessionStatus
	sessionStart     = 1 // SessionStatus START

	summaryValue = 1 // repeated Value

	valueTag         = 1 // string
	valueSimpleValue = 2 // float
	valueImage       = 4 // Image

	imageHeight     = 1 // int32
	imageWidth      = 2 // int32
	imageColorspace = 3 // int32: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA
	imageEncoded    = 4 // bytes
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MaskedCRC32C is the checksum of TFRecord framing: the CRC32C of b,
// rotated right by 15 bits plus a constant, so that a CRC stored inside
// checksummed data does not checksum to a trivial value.
func MaskedCRC32C(b []byte) uint32 {
	c := crc32.Checksum(b, castagnoli)
	return ((c >> 15) | (c << 17)) + 0xa282ead8
}

// Writer appends events to one new event file.
type Writer struct {
	path string
	f    *os.File
	buf  *bufio.Writer
	err  error // the first failure; every later call returns it
}

// NewWriter creates dir if needed and a new event file in it, and writes
// the file_version event.
func NewWriter(dir string) (*Writer, error) {
	if dir == "" {
		return nil, errors.New("tensorboard: no folder given for the event file")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("tensorboard: %w", err)
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	host = strings.ReplaceAll(host, string(filepath.Separator), "_")
	now := time.Now()
	base := filepath.Join(dir, fmt.Sprintf("%s%010d.%s", FilePrefix, now.Unix(), host))
	// Two writers in one folder in the same second (a run killed and
	// resumed at once) get distinct names; the suffix sorts after the
	// bare name, so TensorBoard reads them in the order they were made.
	var f *os.File
	for n := 0; n < 1000; n++ {
		path := base
		if n > 0 {
			path = fmt.Sprintf("%s.%d", base, n)
		}
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("tensorboard: creating the event file in %s: %w", dir, err)
	}
	w := &Writer{path: f.Name(), f: f, buf: bufio.NewWriter(f)}
	ev := eventHeader(nil, now, 0)
	ev = protowire.AppendTag(ev, eventFileVersion, protowire.BytesType)
	ev = protowire.AppendString(ev, FileVersion)
	w.record(ev)
	if err := w.Flush(); err != nil {
		f.Close()
		return nil, err
	}
	return w, nil
}

// Path is the event file's path.
func (w *Writer) Path() string { return w.path }

// Scalar records value (stored as float32, as TensorBoard's simple_value)
// under tag at step.
func (w *Writer) Scalar(tag string, step int64, value float64, wallTime time.Time) error {
	if tag == "" {
		return errors.New("tensorboard: a scalar needs a tag")
	}
	v := appendTag(nil, tag)
	v = protowire.AppendTag(v, valueSimpleValue, protowire.Fixed32Type)
	v = protowire.AppendFixed32(v, math.Float32bits(float32(value)))
	return w.summary(step, wallTime, v)
}

// Image records an encoded image (PNG) of h×w pixels with channels 1
// (grey), 2 (grey+alpha), 3 (RGB) or 4 (RGBA) under tag at step.
func (w *Writer) Image(tag string, step int64, png []byte, h, wd, channels int, wallTime time.Time) error {
	switch {
	case tag == "":
		return errors.New("tensorboard: an image needs a tag")
	case len(png) == 0:
		return fmt.Errorf("tensorboard: image %q has no bytes", tag)
	case h <= 0 || wd <= 0 || h > math.MaxInt32 || wd > math.MaxInt32:
		return fmt.Errorf("tensorboard: image %q is %d×%d; height and width must be positive", tag, h, wd)
	case channels < 1 || channels > 4:
		return fmt.Errorf("tensorboard: image %q has %d channels; want 1 (grey), 2 (grey+alpha), 3 (RGB) or 4 (RGBA)", tag, channels)
	}
	var im []byte
	im = protowire.AppendTag(im, imageHeight, protowire.VarintType)
	im = protowire.AppendVarint(im, uint64(h))
	im = protowire.AppendTag(im, imageWidth, protowire.VarintType)
	im = protowire.AppendVarint(im, uint64(wd))
	im = protowire.AppendTag(im, imageColorspace, protowire.VarintType)
	im = protowire.AppendVarint(im, uint64(channels))
	im = protowire.AppendTag(im, imageEncoded, protowire.BytesType)
	im = protowire.AppendBytes(im, png)
	v := appendTag(nil, tag)
	v = protowire.AppendTag(v, valueImage, protowire.BytesType)
	v = protowire.AppendBytes(v, im)
	return w.summary(step, wallTime, v)
}

// PNG records a PNG image under tag at step, its size and channels read
// from the PNG header.
func (w *Writer) PNG(tag string, step int64, png []byte, wallTime time.Time) error {
	h, wd, c, err := PNGHeader(png)
	if err != nil {
		return fmt.Errorf("tensorboard: image %q: %w", tag, err)
	}
	return w.Image(tag, step, png, h, wd, c, wallTime)
}

// SessionStart records that training (re)starts before step: TensorBoard
// drops the events at step and after that earlier files hold, which a
// killed run wrote past the checkpoint it resumes from.
func (w *Writer) SessionStart(step int64, wallTime time.Time) error {
	var s []byte
	s = protowire.AppendTag(s, sessionLogStatus, protowire.VarintType)
	s = protowire.AppendVarint(s, sessionStart)
	ev := eventHeader(nil, wallTime, step)
	ev = protowire.AppendTag(ev, eventSessionLog, protowire.BytesType)
	ev = protowire.AppendBytes(ev, s)
	return w.record(ev)
}

// Flush hands the buffered events to the operating system, so that a
// TensorBoard watching the folder sees them.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if err := w.buf.Flush(); err != nil {
		w.err = fmt.Errorf("tensorboard: writing %s: %w", w.path, err)
	}
	return w.err
}

// Close flushes and closes the file. Calls after Close return an error.
func (w *Writer) Close() error {
	if w.f == nil {
		return w.err
	}
	err := w.Flush()
	if cerr := w.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("tensorboard: closing %s: %w", w.path, cerr)
	}
	w.f = nil
	if w.err == nil {
		w.err = fmt.Errorf("tensorboard: %s is closed", w.path)
	}
	return err
}

// summary writes one event holding a Summary with one encoded Value.
func (w *Writer) summary(step int64, wallTime time.Time, value []byte) error {
	var s []byte
	s = protowire.AppendTag(s, summaryValue, protowire.BytesType)
	s = protowire.AppendBytes(s, value)
	ev := eventHeader(nil, wallTime, step)
	ev = protowire.AppendTag(ev, eventSummary, protowire.BytesType)
	ev = protowire.AppendBytes(ev, s)
	return w.record(ev)
}

// record frames one serialised event as a TFRecord.
func (w *Writer) record(data []byte) error {
	if w.err != nil {
		return w.err
	}
	var head [12]byte
	binary.LittleEndian.PutUint64(head[:8], uint64(len(data)))
	binary.LittleEndian.PutUint32(head[8:], MaskedCRC32C(head[:8]))
	var tail [4]byte
	binary.LittleEndian.PutUint32(tail[:], MaskedCRC32C(data))
	for _, b := range [][]byte{head[:], data, tail[:]} {
		if _, err := w.buf.Write(b); err != nil {
			w.err = fmt.Errorf("tensorboard: writing %s: %w", w.path, err)
			return w.err
		}
	}
	return nil
}

func eventHeader(b []byte, wallTime time.Time, step int64) []byte {
	b = protowire.AppendTag(b, eventWallTime, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, math.Float64bits(float64(wallTime.UnixNano())/1e9))
	b = protowire.AppendTag(b, eventStep, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(step))
}

func appendTag(b []byte, tag string) []byte {
	b = protowire.AppendTag(b, valueTag, protowire.BytesType)
	return protowire.AppendString(b, tag)
}

var pngSignature = []byte("\x89PNG\r\n\x1a\n")

// PNGHeader reads the size and channel count of a PNG from its IHDR
// chunk (palette images count as RGB, which is how they are shown).
func PNGHeader(png []byte) (h, w, channels int, err error) {
	if len(png) < 33 || !bytes.Equal(png[:8], pngSignature) || string(png[12:16]) != "IHDR" {
		return 0, 0, 0, errors.New("not a PNG (no PNG signature and IHDR chunk)")
	}
	w = int(binary.BigEndian.Uint32(png[16:20]))
	h = int(binary.BigEndian.Uint32(png[20:24]))
	switch png[25] { // colour type
	case 0:
		channels = 1
	case 4:
		channels = 2
	case 2, 3:
		channels = 3
	case 6:
		channels = 4
	default:
		return 0, 0, 0, fmt.Errorf("PNG colour type %d is not one of 0, 2, 3, 4, 6", png[25])
	}
	return h, w, channels, nil
}
