package npz

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// DType is a stored element type.
type DType int

const (
	Float64 DType = iota // '<f8'
	Float32              // '<f4'
)

func (t DType) descr() string {
	if t == Float32 {
		return "<f4"
	}
	return "<f8"
}

func (t DType) size() int {
	if t == Float32 {
		return 4
	}
	return 8
}

func (t DType) String() string { return t.descr() }

// Array is an n-dimensional array in C (row-major) order.
type Array struct {
	Shape []int
	Data  []float64
	DType DType // how it is stored; Data is float64 either way
}

// Len is the number of elements the shape holds (1 for a 0-d array).
func (a *Array) Len() int {
	n := 1
	for _, s := range a.Shape {
		n *= s
	}
	return n
}

const magic = "\x93NUMPY"

// ErrFormat is wrapped by every error about malformed .npy data.
var ErrFormat = errors.New("npz: malformed .npy data")

// ReadNPY reads one .npy array.
func ReadNPY(r io.Reader) (*Array, error) {
	var pre [8]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return nil, fmt.Errorf("%w: reading magic: %v", ErrFormat, err)
	}
	if string(pre[:6]) != magic {
		return nil, fmt.Errorf("%w: bad magic %q, not a .npy file", ErrFormat, pre[:6])
	}
	major, minor := pre[6], pre[7]
	var hlen int
	switch major {
	case 1:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, fmt.Errorf("%w: reading header length: %v", ErrFormat, err)
		}
		hlen = int(binary.LittleEndian.Uint16(b[:]))
	case 2, 3:
		var b [4]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, fmt.Errorf("%w: reading header length: %v", ErrFormat, err)
		}
		n := binary.LittleEndian.Uint32(b[:])
		if n > 1<<24 {
			return nil, fmt.Errorf("%w: header length %d is implausible", ErrFormat, n)
		}
		hlen = int(n)
	default:
		return nil, fmt.Errorf("%w: unsupported format version %d.%d (want 1.0, 2.0 or 3.0)", ErrFormat, major, minor)
	}
	hdr := make([]byte, hlen)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, fmt.Errorf("%w: reading %d-byte header: %v", ErrFormat, hlen, err)
	}
	descr, fortran, shape, err := parseHeader(string(hdr))
	if err != nil {
		return nil, err
	}
	a := &Array{Shape: shape}
	switch descr {
	case "<f8":
		a.DType = Float64
	case "<f4":
		a.DType = Float32
	default:
		return nil, fmt.Errorf("npz: unsupported dtype %q: only little-endian float64 ('<f8') and float32 ('<f4') are read; convert with arr.astype('<f8')", descr)
	}
	if fortran {
		return nil, errors.New("npz: array is in Fortran order; save np.ascontiguousarray(arr) instead")
	}
	n := 1
	for _, s := range shape {
		if s < 0 || (s > 0 && n > math.MaxInt/8/s) {
			return nil, fmt.Errorf("%w: shape %v is too large", ErrFormat, shape)
		}
		n *= s
	}
	want := int64(n) * int64(a.DType.size())
	// Read what is there before trusting the header's size with an allocation.
	raw, err := io.ReadAll(io.LimitReader(r, want))
	if err != nil {
		return nil, fmt.Errorf("npz: reading array data: %w", err)
	}
	if int64(len(raw)) != want {
		return nil, fmt.Errorf("%w: shape %v %s needs %d data bytes, found %d (truncated file?)", ErrFormat, shape, descr, want, len(raw))
	}
	a.Data = make([]float64, n)
	if a.DType == Float32 {
		for i := range a.Data {
			a.Data[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])))
		}
	} else {
		for i := range a.Data {
			a.Data[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
		}
	}
	return a, nil
}

// parseHeader reads the Python dict literal numpy writes, e.g.
// {'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }.
func parseHeader(h string) (descr string, fortran bool, shape []int, err error) {
	bad := func(why string) error {
		return fmt.Errorf("%w: header %q: %s", ErrFormat, strings.TrimSpace(h), why)
	}
	s := strings.TrimSpace(h)
	if !strings.HasPrefix(s, "{") || !strings.HasSuffix(s, "}") {
		return "", false, nil, bad("not a dict")
	}
	s = strings.TrimSpace(s[1 : len(s)-1])
	seen := map[string]bool{}
	for s != "" {
		key, rest, ok := pyString(s)
		if !ok {
			return "", false, nil, bad("expected a quoted key")
		}
		rest = strings.TrimSpace(rest)
		if !strings.HasPrefix(rest, ":") {
			return "", false, nil, bad("expected ':' after " + key)
		}
		rest = strings.TrimSpace(rest[1:])
		switch key {
		case "descr":
			v, r2, ok := pyString(rest)
			if !ok {
				return "", false, nil, bad("descr is not a string (structured dtypes are not supported)")
			}
			descr, rest = v, r2
		case "fortran_order":
			switch {
			case strings.HasPrefix(rest, "True"):
				fortran, rest = true, rest[4:]
			case strings.HasPrefix(rest, "False"):
				fortran, rest = false, rest[5:]
			default:
				return "", false, nil, bad("fortran_order is not True or False")
			}
		case "shape":
			if !strings.HasPrefix(rest, "(") {
				return "", false, nil, bad("shape is not a tuple")
			}
			end := strings.IndexByte(rest, ')')
			if end < 0 {
				return "", false, nil, bad("unterminated shape")
			}
			shape = []int{}
			for _, f := range strings.Split(rest[1:end], ",") {
				f = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(f), "L"))
				if f == "" {
					continue
				}
				v, err := strconv.Atoi(f)
				if err != nil || v < 0 {
					return "", false, nil, bad("bad dimension " + f)
				}
				shape = append(shape, v)
			}
			rest = rest[end+1:]
		default:
			return "", false, nil, bad("unexpected key " + key)
		}
		seen[key] = true
		rest = strings.TrimSpace(rest)
		rest = strings.TrimPrefix(rest, ",")
		s = strings.TrimSpace(rest)
	}
	if !seen["descr"] || !seen["fortran_order"] || !seen["shape"] {
		return "", false, nil, bad("missing descr, fortran_order or shape")
	}
	return descr, fortran, shape, nil
}

// pyString parses a leading '...' or "..." literal without escapes.
func pyString(s string) (v, rest string, ok bool) {
	if s == "" || (s[0] != '\'' && s[0] != '"') {
		return "", s, false
	}
	end := strings.IndexByte(s[1:], s[0])
	if end < 0 {
		return "", s, false
	}
	return s[1 : 1+end], s[2+end:], true
}

// growthDigits is numpy's GROWTH_AXIS_MAX_DIGITS: spare header room.
const growthDigits = 21

// header returns the full .npy header numpy 1.24 writes for a.
func header(a *Array) []byte {
	var sb strings.Builder
	sb.WriteString("{'descr': '" + a.DType.descr() + "', 'fortran_order': False, 'shape': (")
	for i, s := range a.Shape {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(strconv.Itoa(s))
	}
	if len(a.Shape) == 1 {
		sb.WriteString(",")
	}
	sb.WriteString("), }")
	if len(a.Shape) > 0 {
		sb.WriteString(strings.Repeat(" ", growthDigits-len(strconv.Itoa(a.Shape[0]))))
	}
	h := sb.String()
	var buf bytes.Buffer
	buf.WriteString(magic)
	hlen := len(h) + 1
	if pad := 64 - (8+2+hlen)%64; hlen+pad <= 65535 {
		buf.Write([]byte{1, 0})
		binary.Write(&buf, binary.LittleEndian, uint16(hlen+pad))
		buf.WriteString(h + strings.Repeat(" ", pad) + "\n")
		return buf.Bytes()
	}
	pad := 64 - (8+4+hlen)%64
	buf.Write([]byte{2, 0})
	binary.Write(&buf, binary.LittleEndian, uint32(hlen+pad))
	buf.WriteString(h + strings.Repeat(" ", pad) + "\n")
	return buf.Bytes()
}

// encodeNPY returns the .npy bytes numpy writes for a.
func encodeNPY(a *Array) ([]byte, error) {
	if a == nil {
		return nil, errors.New("npz: nil array")
	}
	if a.DType != Float64 && a.DType != Float32 {
		return nil, fmt.Errorf("npz: cannot write dtype %d", a.DType)
	}
	for _, s := range a.Shape {
		if s < 0 {
			return nil, fmt.Errorf("npz: negative dimension in shape %v", a.Shape)
		}
	}
	if a.Len() != len(a.Data) {
		return nil, fmt.Errorf("npz: shape %v holds %d elements but Data has %d", a.Shape, a.Len(), len(a.Data))
	}
	h := header(a)
	out := make([]byte, len(h), len(h)+len(a.Data)*a.DType.size())
	copy(out, h)
	if a.DType == Float32 {
		for _, v := range a.Data {
			out = binary.LittleEndian.AppendUint32(out, math.Float32bits(float32(v)))
		}
	} else {
		for _, v := range a.Data {
			out = binary.LittleEndian.AppendUint64(out, math.Float64bits(v))
		}
	}
	return out, nil
}

// WriteNPY writes a as a .npy file, byte for byte as numpy.save does.
func WriteNPY(w io.Writer, a *Array) error {
	b, err := encodeNPY(a)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}
