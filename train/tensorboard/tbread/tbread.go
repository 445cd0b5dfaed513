// Package tbread reads TensorBoard event files, for tests. It is written
// from the formats' documentation, not from the writer in the parent
// package, so that a test reading the writer's files with it checks the
// writer against the formats rather than against itself:
//
//   - TFRecord framing (tensorflow.org/tutorials/load_data/tfrecord): each
//     record is uint64 length, uint32 masked CRC of the length bytes, the
//     data, uint32 masked CRC of the data, all little-endian; the CRC is
//     CRC-32C (Castagnoli, RFC 3720) and masked as
//     ((crc >> 15) | (crc << 17)) + 0xa282ead8.
//   - Protocol buffers wire format (protobuf.dev/programming-guides/encoding):
//     a key varint (field number << 3 | wire type), then a varint (type
//     0), 8 little-endian bytes (1), a length-prefixed run of bytes (2) or
//     4 little-endian bytes (5).
//   - Field numbers of tensorboard/compat/proto/event.proto and
//     summary.proto.
//
// It uses neither hash/crc32 nor the protobuf module: the CRC is computed
// bit by bit and the wire format parsed by hand.
package tbread

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Event is a decoded tensorboard.Event.
type Event struct {
	WallTime      float64
	Step          int64
	FileVersion   string
	Values        []Value // the Summary's values; nil without a summary
	HasSummary    bool
	SessionStatus int // SessionLog.status (1 START); 0 without a session_log
	HasSessionLog bool
}

// Value is a decoded Summary.Value: a scalar (HasSimple) or an image.
type Value struct {
	Tag       string
	Simple    float32
	HasSimple bool
	Image     *Image
}

// Image is a decoded Summary.Image.
type Image struct {
	Height, Width, Colorspace int
	Encoded                   []byte
}

// CRC32C computes CRC-32C bit by bit: reflected polynomial 0x82F63B78,
// initial value and final XOR 0xFFFFFFFF.
func CRC32C(b []byte) uint32 {
	crc := uint32(0xFFFFFFFF)
	for _, x := range b {
		crc ^= uint32(x)
		for i := 0; i < 8; i++ {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0x82F63B78
			} else {
				crc >>= 1
			}
		}
	}
	return crc ^ 0xFFFFFFFF
}

// Mask is TFRecord's masking of a CRC.
func Mask(crc uint32) uint32 { return (crc>>15 | crc<<17) + 0xa282ead8 }

// ErrCRC is wrapped by the error of a record whose checksum does not match.
var ErrCRC = errors.New("CRC mismatch")

// Records splits a TFRecord file into its records' data, checking both
// checksums of every record.
func Records(b []byte) ([][]byte, error) {
	var out [][]byte
	for off := 0; off < len(b); {
		if len(b)-off < 12 {
			return out, fmt.Errorf("record at byte %d: %d bytes left, a header needs 12", off, len(b)-off)
		}
		head := b[off : off+8]
		n := binary.LittleEndian.Uint64(head)
		if got, want := binary.LittleEndian.Uint32(b[off+8:off+12]), Mask(CRC32C(head)); got != want {
			return out, fmt.Errorf("record at byte %d: length: %w (stored %#08x, computed %#08x)", off, ErrCRC, got, want)
		}
		start := off + 12
		if n > uint64(len(b)-start) || uint64(len(b)-start)-n < 4 {
			return out, fmt.Errorf("record at byte %d: length %d runs past the end of the file", off, n)
		}
		data := b[start : start+int(n)]
		if got, want := binary.LittleEndian.Uint32(b[start+int(n):]), Mask(CRC32C(data)); got != want {
			return out, fmt.Errorf("record at byte %d: data: %w (stored %#08x, computed %#08x)", off, ErrCRC, got, want)
		}
		out = append(out, data)
		off = start + int(n) + 4
	}
	return out, nil
}

// Decode reads every event of an event file's bytes.
func Decode(b []byte) ([]Event, error) {
	recs, err := Records(b)
	if err != nil {
		return nil, err
	}
	out := make([]Event, 0, len(recs))
	for i, r := range recs {
		ev, err := decodeEvent(r)
		if err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
		out = append(out, ev)
	}
	return out, nil
}

// ReadFile reads every event of an event file.
func ReadFile(path string) ([]Event, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	evs, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return evs, nil
}

// Files lists the event files of a folder (names containing "tfevents",
// as TensorBoard looks for them) in name order, the order TensorBoard
// reads them in.
func Files(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() && strings.Contains(e.Name(), "tfevents") {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(out)
	return out, nil
}

// field is one key-value pair of a message.
type field struct {
	num  uint64
	wire uint64
	u    uint64 // varint, fixed64 or fixed32 value
	b    []byte // length-delimited value
}

func varint(b []byte) (uint64, int, error) {
	var v uint64
	for i := 0; i < len(b) && i < 10; i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i] < 0x80 {
			return v, i + 1, nil
		}
	}
	return 0, 0, errors.New("truncated or overlong varint")
}

// fields parses a message into its fields, in order.
func fields(b []byte) ([]field, error) {
	var out []field
	for len(b) > 0 {
		key, n, err := varint(b)
		if err != nil {
			return nil, err
		}
		b = b[n:]
		f := field{num: key >> 3, wire: key & 7}
		if f.num == 0 {
			return nil, errors.New("field number 0")
		}
		switch f.wire {
		case 0:
			if f.u, n, err = varint(b); err != nil {
				return nil, fmt.Errorf("field %d: %w", f.num, err)
			}
		case 1:
			if len(b) < 8 {
				return nil, fmt.Errorf("field %d: truncated fixed64", f.num)
			}
			f.u, n = binary.LittleEndian.Uint64(b), 8
		case 2:
			l, m, err := varint(b)
			if err != nil {
				return nil, fmt.Errorf("field %d: %w", f.num, err)
			}
			if l > uint64(len(b)-m) {
				return nil, fmt.Errorf("field %d: length %d past the end", f.num, l)
			}
			f.b, n = b[m:m+int(l)], m+int(l)
		case 5:
			if len(b) < 4 {
				return nil, fmt.Errorf("field %d: truncated fixed32", f.num)
			}
			f.u, n = uint64(binary.LittleEndian.Uint32(b)), 4
		default:
			return nil, fmt.Errorf("field %d: wire type %d not expected here", f.num, f.wire)
		}
		b = b[n:]
		out = append(out, f)
	}
	return out, nil
}

func (f field) want(wire uint64, name string) error {
	if f.wire != wire {
		return fmt.Errorf("%s (field %d) has wire type %d, want %d", name, f.num, f.wire, wire)
	}
	return nil
}

func decodeEvent(b []byte) (Event, error) {
	var ev Event
	fs, err := fields(b)
	if err != nil {
		return ev, err
	}
	for _, f := range fs {
		switch f.num {
		case 1:
			err = f.want(1, "wall_time")
			ev.WallTime = math.Float64frombits(f.u)
		case 2:
			err = f.want(0, "step")
			ev.Step = int64(f.u)
		case 3:
			err = f.want(2, "file_version")
			ev.FileVersion = string(f.b)
		case 5:
			if err = f.want(2, "summary"); err == nil {
				ev.HasSummary = true
				ev.Values, err = decodeSummary(f.b)
			}
		case 7:
			if err = f.want(2, "session_log"); err == nil {
				ev.HasSessionLog = true
				var sl []field
				if sl, err = fields(f.b); err == nil {
					for _, s := range sl {
						if s.num == 1 {
							err = errors.Join(err, s.want(0, "session_log.status"))
							ev.SessionStatus = int(s.u)
						}
					}
				}
			}
		}
		if err != nil {
			return ev, err
		}
	}
	return ev, nil
}

func decodeSummary(b []byte) ([]Value, error) {
	fs, err := fields(b)
	if err != nil {
		return nil, err
	}
	var out []Value
	for _, f := range fs {
		if f.num != 1 {
			continue
		}
		if err := f.want(2, "summary.value"); err != nil {
			return nil, err
		}
		vs, err := fields(f.b)
		if err != nil {
			return nil, err
		}
		var v Value
		for _, g := range vs {
			switch g.num {
			case 1:
				err = g.want(2, "value.tag")
				v.Tag = string(g.b)
			case 2:
				err = g.want(5, "value.simple_value")
				v.Simple, v.HasSimple = math.Float32frombits(uint32(g.u)), true
			case 4:
				if err = g.want(2, "value.image"); err == nil {
					v.Image, err = decodeImage(g.b)
				}
			}
			if err != nil {
				return nil, err
			}
		}
		out = append(out, v)
	}
	return out, nil
}

func decodeImage(b []byte) (*Image, error) {
	fs, err := fields(b)
	if err != nil {
		return nil, err
	}
	im := &Image{}
	for _, f := range fs {
		switch f.num {
		case 1:
			err = f.want(0, "image.height")
			im.Height = int(int32(f.u))
		case 2:
			err = f.want(0, "image.width")
			im.Width = int(int32(f.u))
		case 3:
			err = f.want(0, "image.colorspace")
			im.Colorspace = int(int32(f.u))
		case 4:
			err = f.want(2, "image.encoded_image_string")
			im.Encoded = f.b
		}
		if err != nil {
			return nil, err
		}
	}
	return im, nil
}

// Scalars collects the scalars of events by tag: step → value, later
// events overwriting earlier ones at the same step.
func Scalars(evs []Event) map[string]map[int64]float32 {
	out := map[string]map[int64]float32{}
	for _, ev := range evs {
		for _, v := range ev.Values {
			if v.HasSimple {
				if out[v.Tag] == nil {
					out[v.Tag] = map[int64]float32{}
				}
				out[v.Tag][ev.Step] = v.Simple
			}
		}
	}
	return out
}

// Merged reads event files in order and keeps what TensorBoard's reader
// keeps from a run folder's files: in a file whose version is
// "brain.Event:2", a SessionLog START at step s drops every event read
// before it with a step of s or more (EventAccumulator's purge of
// orphaned data after a restart).
func Merged(files []string) ([]Event, error) {
	var out []Event
	for _, f := range files {
		evs, err := ReadFile(f)
		if err != nil {
			return nil, err
		}
		version2 := len(evs) > 0 && evs[0].FileVersion == "brain.Event:2"
		for _, ev := range evs {
			if version2 && ev.HasSessionLog && ev.SessionStatus == 1 {
				kept := out[:0]
				for _, o := range out {
					if o.Step < ev.Step {
						kept = append(kept, o)
					}
				}
				out = kept
			}
			out = append(out, ev)
		}
	}
	return out, nil
}
