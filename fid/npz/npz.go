package npz

import (
	"archive/zip"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"strings"
)

// Entry is a named array of an archive; Name has no ".npy" suffix.
type Entry struct {
	Name  string
	Array *Array
}

// ReadFile reads the .npz archive at path into a map from array name
// (without ".npy") to array.
func ReadFile(path string) (map[string]*Array, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("npz: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("npz: %w", err)
	}
	m, err := Read(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Read reads an .npz archive of the given size.
func Read(r io.ReaderAt, size int64) (map[string]*Array, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("npz: not a readable zip archive (%w); is it an .npz written by numpy.savez?", err)
	}
	out := make(map[string]*Array, len(zr.File))
	for _, f := range zr.File {
		name, ok := strings.CutSuffix(f.Name, ".npy")
		if !ok {
			return nil, fmt.Errorf("npz: member %q is not a .npy array", f.Name)
		}
		if f.Method != zip.Store && f.Method != zip.Deflate {
			return nil, fmt.Errorf("npz: member %q uses zip method %d; only stored (np.savez) and deflated (np.savez_compressed) are read", f.Name, f.Method)
		}
		a, err := readMember(f)
		if err != nil {
			return nil, fmt.Errorf("npz: member %q: %w", f.Name, err)
		}
		out[name] = a
	}
	return out, nil
}

func readMember(f *zip.File) (*Array, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	a, err := ReadNPY(rc)
	if err != nil {
		return nil, err
	}
	// Drain to the end so zip verifies the CRC and size.
	if n, err := io.Copy(io.Discard, rc); err != nil {
		return nil, fmt.Errorf("archive is corrupt: %w", err)
	} else if n > 0 {
		return nil, fmt.Errorf("%w: %d bytes after the array data", ErrFormat, n)
	}
	return a, nil
}

// WriteFile writes the arrays to path as np.savez would.
func WriteFile(path string, entries ...Entry) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("npz: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("npz: %w", cerr)
		}
	}()
	return Write(f, entries...)
}

// Zip constants as Python's zipfile writes them for np.savez.
const (
	zipVersion   = 20          // made by / needed to extract: 2.0
	zipUnix      = 3           // made-by host system
	zipDosDate   = 1<<5 | 1    // 1980-01-01
	zipDosTime   = 0           // 00:00:00
	zipExternal  = 0o600 << 16 // -rw-------
	zip64ExtraID = 1
	maxUint32    = 1<<32 - 1
)

// Write writes the arrays as an uncompressed .npz, in the given order,
// reproducing np.savez byte for byte.
func Write(w io.Writer, entries ...Entry) error {
	type dirEntry struct {
		name         string
		crc, size    uint32
		headerOffset uint32
	}
	var dir []dirEntry
	var off int64
	seen := map[string]bool{}
	put := func(b []byte) error {
		n, err := w.Write(b)
		off += int64(n)
		return err
	}
	for _, e := range entries {
		if e.Name == "" || seen[e.Name] {
			return fmt.Errorf("npz: array names must be unique and non-empty, got %q", e.Name)
		}
		seen[e.Name] = true
		data, err := encodeNPY(e.Array)
		if err != nil {
			return fmt.Errorf("npz: array %q: %w", e.Name, err)
		}
		if int64(len(data)) >= maxUint32 || off >= maxUint32 {
			return fmt.Errorf("npz: array %q makes the archive exceed 4 GiB, which this writer does not support", e.Name)
		}
		name := e.Name + ".npy"
		crc := crc32.ChecksumIEEE(data)
		size := uint32(len(data))
		// numpy opens members with force_zip64=True: the local header
		// carries a zip64 extra field with both sizes.
		h := make([]byte, 0, 30+len(name)+20)
		h = binary.LittleEndian.AppendUint32(h, 0x04034b50)
		h = binary.LittleEndian.AppendUint16(h, zipVersion)
		h = binary.LittleEndian.AppendUint16(h, 0) // flags
		h = binary.LittleEndian.AppendUint16(h, 0) // stored
		h = binary.LittleEndian.AppendUint16(h, zipDosTime)
		h = binary.LittleEndian.AppendUint16(h, zipDosDate)
		h = binary.LittleEndian.AppendUint32(h, crc)
		h = binary.LittleEndian.AppendUint32(h, size)
		h = binary.LittleEndian.AppendUint32(h, size)
		h = binary.LittleEndian.AppendUint16(h, uint16(len(name)))
		h = binary.LittleEndian.AppendUint16(h, 20)
		h = append(h, name...)
		h = binary.LittleEndian.AppendUint16(h, zip64ExtraID)
		h = binary.LittleEndian.AppendUint16(h, 16)
		h = binary.LittleEndian.AppendUint64(h, uint64(size))
		h = binary.LittleEndian.AppendUint64(h, uint64(size))
		dir = append(dir, dirEntry{name: name, crc: crc, size: size, headerOffset: uint32(off)})
		if err := put(h); err != nil {
			return err
		}
		if err := put(data); err != nil {
			return err
		}
	}
	cdStart := off
	for _, d := range dir {
		c := make([]byte, 0, 46+len(d.name))
		c = binary.LittleEndian.AppendUint32(c, 0x02014b50)
		c = binary.LittleEndian.AppendUint16(c, zipUnix<<8|zipVersion)
		c = binary.LittleEndian.AppendUint16(c, zipVersion)
		c = binary.LittleEndian.AppendUint16(c, 0)
		c = binary.LittleEndian.AppendUint16(c, 0)
		c = binary.LittleEndian.AppendUint16(c, zipDosTime)
		c = binary.LittleEndian.AppendUint16(c, zipDosDate)
		c = binary.LittleEndian.AppendUint32(c, d.crc)
		c = binary.LittleEndian.AppendUint32(c, d.size)
		c = binary.LittleEndian.AppendUint32(c, d.size)
		c = binary.LittleEndian.AppendUint16(c, uint16(len(d.name)))
		c = binary.LittleEndian.AppendUint16(c, 0) // extra
		c = binary.LittleEndian.AppendUint16(c, 0) // comment
		c = binary.LittleEndian.AppendUint16(c, 0) // disk
		c = binary.LittleEndian.AppendUint16(c, 0) // internal attributes
		c = binary.LittleEndian.AppendUint32(c, zipExternal)
		c = binary.LittleEndian.AppendUint32(c, d.headerOffset)
		c = append(c, d.name...)
		if err := put(c); err != nil {
			return err
		}
	}
	cdSize := off - cdStart
	if off >= maxUint32 {
		return errors.New("npz: archive exceeds 4 GiB, which this writer does not support")
	}
	e := make([]byte, 0, 22)
	e = binary.LittleEndian.AppendUint32(e, 0x06054b50)
	e = binary.LittleEndian.AppendUint16(e, 0)
	e = binary.LittleEndian.AppendUint16(e, 0)
	e = binary.LittleEndian.AppendUint16(e, uint16(len(dir)))
	e = binary.LittleEndian.AppendUint16(e, uint16(len(dir)))
	e = binary.LittleEndian.AppendUint32(e, uint32(cdSize))
	e = binary.LittleEndian.AppendUint32(e, uint32(cdStart))
	e = binary.LittleEndian.AppendUint16(e, 0)
	return put(e)
}
