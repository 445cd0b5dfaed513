package nn

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Tensors are saved in the safetensors format (an 8-byte header length, a
// JSON header of names, dtypes, shapes and offsets, then raw little-endian
// data), which Python reads with the `safetensors` package or a few lines
// of numpy.

var dtypeNames = map[gotch.DType]string{
	gotch.Float: "F32", gotch.Double: "F64", gotch.Int64: "I64", gotch.Int: "I32",
	gotch.Uint8: "U8", gotch.Int8: "I8", gotch.Bool: "BOOL", gotch.Half: "F16", gotch.BFloat16: "BF16",
}

func dtypeOf(name string) (gotch.DType, bool) {
	for k, v := range dtypeNames {
		if v == name {
			return k, true
		}
	}
	return 0, false
}

type stEntry struct {
	DType   string   `json:"dtype"`
	Shape   []int64  `json:"shape"`
	Offsets [2]int64 `json:"data_offsets"`
}

// SaveTensors writes tensors and string metadata to path atomically: it
// writes a temporary file in the same folder, syncs it and renames it, so a
// crash never leaves a half-written file under path.
func SaveTensors(path string, tensors map[string]*ts.Tensor, meta map[string]string) (err error) {
	defer Recover(&err)
	names := make([]string, 0, len(tensors))
	for n := range tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	header := map[string]any{}
	if len(meta) > 0 {
		header["__metadata__"] = meta
	}
	blobs := make([][]byte, len(names))
	var off int64
	for i, n := range names {
		t := tensors[n]
		dt, ok := dtypeNames[t.DType()]
		if !ok {
			return fmt.Errorf("nn: cannot save %q: unsupported dtype %v", n, t.DType())
		}
		b, err := t.Bytes()
		if err != nil {
			return fmt.Errorf("nn: reading %q: %w", n, err)
		}
		blobs[i] = b
		header[n] = stEntry{DType: dt, Shape: nonNil(t.MustSize()), Offsets: [2]int64{off, off + int64(len(b))}}
		off += int64(len(b))
	}
	hj, err := json.Marshal(header)
	if err != nil {
		return err
	}
	for len(hj)%8 != 0 { // the format pads the header with spaces
		hj = append(hj, ' ')
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("nn: saving %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	w := bufio.NewWriterSize(tmp, 1<<20)
	var n8 [8]byte
	binary.LittleEndian.PutUint64(n8[:], uint64(len(hj)))
	w.Write(n8[:])
	w.Write(hj)
	for _, b := range blobs {
		w.Write(b)
	}
	if err = w.Flush(); err != nil {
		return fmt.Errorf("nn: saving %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func nonNil(s []int64) []int64 {
	if s == nil {
		return []int64{}
	}
	return s
}

// LoadTensors reads a safetensors file into CPU tensors. The tensors are
// created in the caller's scope, if one is open.
func LoadTensors(path string) (map[string]*ts.Tensor, map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("nn: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	var n8 [8]byte
	if _, err := io.ReadFull(f, n8[:]); err != nil {
		return nil, nil, fmt.Errorf("nn: %s is not a safetensors file: %w", path, err)
	}
	hlen := int64(binary.LittleEndian.Uint64(n8[:]))
	if hlen <= 0 || hlen > st.Size()-8 || hlen > 1<<28 {
		return nil, nil, fmt.Errorf("nn: %s is not a safetensors file (header length %d, file size %d)", path, hlen, st.Size())
	}
	hj := make([]byte, hlen)
	if _, err := io.ReadFull(f, hj); err != nil {
		return nil, nil, fmt.Errorf("nn: %s: truncated header: %w", path, err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hj, &raw); err != nil {
		return nil, nil, fmt.Errorf("nn: %s: bad header: %w", path, err)
	}
	meta := map[string]string{}
	if m, ok := raw["__metadata__"]; ok {
		if err := json.Unmarshal(m, &meta); err != nil {
			return nil, nil, fmt.Errorf("nn: %s: bad metadata: %w", path, err)
		}
		delete(raw, "__metadata__")
	}
	dataSize := st.Size() - 8 - hlen
	data := make([]byte, dataSize)
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, nil, fmt.Errorf("nn: %s: truncated data: %w", path, err)
	}
	out := map[string]*ts.Tensor{}
	fail := func(err error) (map[string]*ts.Tensor, map[string]string, error) {
		for _, t := range out {
			t.MustDrop()
		}
		return nil, nil, err
	}
	for name, r := range raw {
		var e stEntry
		if err := json.Unmarshal(r, &e); err != nil {
			return fail(fmt.Errorf("nn: %s: entry %q: %w", path, name, err))
		}
		dt, ok := dtypeOf(e.DType)
		if !ok {
			return fail(fmt.Errorf("nn: %s: entry %q has unsupported dtype %q", path, name, e.DType))
		}
		if e.Offsets[0] < 0 || e.Offsets[1] < e.Offsets[0] || e.Offsets[1] > dataSize {
			return fail(fmt.Errorf("nn: %s: entry %q has offsets %v outside the %d data bytes (truncated file?)", path, name, e.Offsets, dataSize))
		}
		t, err := ts.FromBytes(data[e.Offsets[0]:e.Offsets[1]], e.Shape, dt)
		if err != nil {
			return fail(fmt.Errorf("nn: %s: entry %q: %w", path, name, err))
		}
		out[name] = t
	}
	return out, meta, nil
}

// ErrNoCheckpoint is returned when a run folder holds no checkpoint.
var ErrNoCheckpoint = errors.New("no checkpoint")
