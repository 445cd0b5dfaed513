package data

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// idx magic numbers (big-endian): 0x00000803 for 3-D uint8 (images) and
// 0x00000801 for 1-D uint8 (labels).
const (
	idxImagesMagic = 2051
	idxLabelsMagic = 2049
)

// openMaybeGzip opens path and, when it starts with the gzip magic,
// decompresses it on the fly.
func openMaybeGzip(path string) (io.Reader, func() error, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	br := bufio.NewReaderSize(f, 1<<16)
	head, err := br.Peek(2)
	if err == nil && head[0] == 0x1f && head[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("%w: %s: bad gzip header: %v", ErrCorrupt, path, err)
		}
		return zr, func() error { zr.Close(); return f.Close() }, nil
	}
	return br, f.Close, nil
}

// ReadIDXImages reads an idx3-ubyte image file (raw or gzipped): magic
// 2051, then count, rows and columns as big-endian uint32, then the pixels.
func ReadIDXImages(path string) (n, rows, cols int, pixels []uint8, err error) {
	r, closeFn, err := openMaybeGzip(path)
	if err != nil {
		return 0, 0, 0, nil, err
	}
	defer closeFn()
	var h [4]uint32
	if err := binary.Read(r, binary.BigEndian, &h[0]); err != nil {
		return 0, 0, 0, nil, fmt.Errorf("%w: %s: idx magic unreadable: %v", ErrCorrupt, path, err)
	}
	if h[0] != idxImagesMagic {
		return 0, 0, 0, nil, fmt.Errorf("%w: %s: idx magic %d, want %d for an image file (is it a label file?)", ErrCorrupt, path, h[0], idxImagesMagic)
	}
	if err := binary.Read(r, binary.BigEndian, h[1:]); err != nil {
		return 0, 0, 0, nil, fmt.Errorf("%w: %s: idx image header (16 bytes) unreadable: %v", ErrCorrupt, path, err)
	}
	n, rows, cols = int(h[1]), int(h[2]), int(h[3])
	if n > 1<<26 || rows > 1<<12 || cols > 1<<12 {
		return 0, 0, 0, nil, fmt.Errorf("%w: %s: implausible idx shape %d×%d×%d", ErrCorrupt, path, n, rows, cols)
	}
	pixels = make([]uint8, n*rows*cols)
	if _, err := io.ReadFull(r, pixels); err != nil {
		return 0, 0, 0, nil, fmt.Errorf("%w: %s: truncated: want %d×%d×%d = %d pixel bytes after the 16-byte header: %v", ErrCorrupt, path, n, rows, cols, len(pixels), err)
	}
	if err := expectEOF(r, path); err != nil {
		return 0, 0, 0, nil, err
	}
	return n, rows, cols, pixels, nil
}

// ReadIDXLabels reads an idx1-ubyte label file (raw or gzipped): magic
// 2049, then the count as a big-endian uint32, then one byte per label.
func ReadIDXLabels(path string) ([]uint8, error) {
	r, closeFn, err := openMaybeGzip(path)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	var h [2]uint32
	if err := binary.Read(r, binary.BigEndian, &h[0]); err != nil {
		return nil, fmt.Errorf("%w: %s: idx magic unreadable: %v", ErrCorrupt, path, err)
	}
	if h[0] != idxLabelsMagic {
		return nil, fmt.Errorf("%w: %s: idx magic %d, want %d for a label file (is it an image file?)", ErrCorrupt, path, h[0], idxLabelsMagic)
	}
	if err := binary.Read(r, binary.BigEndian, &h[1]); err != nil {
		return nil, fmt.Errorf("%w: %s: idx label header (8 bytes) unreadable: %v", ErrCorrupt, path, err)
	}
	if h[1] > 1<<26 {
		return nil, fmt.Errorf("%w: %s: implausible label count %d", ErrCorrupt, path, h[1])
	}
	labels := make([]uint8, h[1])
	if _, err := io.ReadFull(r, labels); err != nil {
		return nil, fmt.Errorf("%w: %s: truncated: want %d label bytes after the 8-byte header: %v", ErrCorrupt, path, len(labels), err)
	}
	if err := expectEOF(r, path); err != nil {
		return nil, err
	}
	return labels, nil
}

// expectEOF reads to the end of r: extra bytes mean the header's count is
// wrong, and for gzip input reading to the end verifies the CRC.
func expectEOF(r io.Reader, path string) error {
	var buf [512]byte
	extra := 0
	for {
		n, err := r.Read(buf[:])
		extra += n
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
		}
	}
	if extra > 0 {
		return fmt.Errorf("%w: %s: %d bytes after the data the idx header describes", ErrCorrupt, path, extra)
	}
	return nil
}
