package data

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
)

// The decoded-image cache: a 68-byte little-endian header, then the NCHW
// uint8 pixels.
//
//	0  magic "MOLLIMG\x00"
//	8  version (uint32)
//	12 N, C, H, W (uint32 each)
//	28 fingerprint of the source and preprocessing (32 bytes)
//	60 CRC-32C of the pixels
//	64 CRC-32C of bytes 0..63
const (
	cacheMagic         = "MOLLIMG\x00"
	cacheHeaderSize    = 68
	celebaCacheVersion = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// readImageCache returns the images of a cache file when it exists, was
// built from the source fp describes, has shape (·, c, h, w) and its
// checksums hold. A missing file gives an os.IsNotExist error; any other
// error says why the cache is unusable.
func readImageCache(path string, fp [32]byte, c, h, w int) (int, []uint8, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	var hdr [cacheHeaderSize]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		return 0, nil, fmt.Errorf("%s: header unreadable (%v): the cache is corrupt", path, err)
	}
	le := binary.LittleEndian
	if string(hdr[:8]) != cacheMagic || crc32.Checksum(hdr[:64], castagnoli) != le.Uint32(hdr[64:]) {
		return 0, nil, fmt.Errorf("%s: bad header: the cache is corrupt", path)
	}
	if v := le.Uint32(hdr[8:]); v != celebaCacheVersion {
		return 0, nil, fmt.Errorf("%s: cache version %d, want %d: the cache is stale", path, v, celebaCacheVersion)
	}
	if !bytes.Equal(hdr[28:60], fp[:]) {
		return 0, nil, fmt.Errorf("%s: built from other source files or preprocessing: the cache is stale", path)
	}
	n := int(le.Uint32(hdr[12:]))
	if int(le.Uint32(hdr[16:])) != c || int(le.Uint32(hdr[20:])) != h || int(le.Uint32(hdr[24:])) != w {
		return 0, nil, fmt.Errorf("%s: holds %d×%d×%d images, want %d×%d×%d: the cache is stale", path, le.Uint32(hdr[16:]), le.Uint32(hdr[20:]), le.Uint32(hdr[24:]), c, h, w)
	}
	want := int64(cacheHeaderSize) + int64(n)*int64(c*h*w)
	if st, err := f.Stat(); err != nil || st.Size() != want {
		return 0, nil, fmt.Errorf("%s: %d bytes, want %d: the cache is truncated", path, sizeOf(st), want)
	}
	pix := make([]uint8, n*c*h*w)
	if _, err := io.ReadFull(f, pix); err != nil {
		return 0, nil, fmt.Errorf("%s: %v: the cache is truncated", path, err)
	}
	if crc32.Checksum(pix, castagnoli) != le.Uint32(hdr[60:]) {
		return 0, nil, fmt.Errorf("%s: pixel checksum mismatch: the cache is corrupt", path)
	}
	return n, pix, nil
}

func sizeOf(st os.FileInfo) int64 {
	if st == nil {
		return -1
	}
	return st.Size()
}

// writeImageCache writes the cache atomically (a temporary file renamed
// into place), so an interrupted write leaves no half cache.
func writeImageCache(path string, fp [32]byte, n, c, h, w int, pix []uint8) error {
	var hdr [cacheHeaderSize]byte
	le := binary.LittleEndian
	copy(hdr[:8], cacheMagic)
	le.PutUint32(hdr[8:], celebaCacheVersion)
	le.PutUint32(hdr[12:], uint32(n))
	le.PutUint32(hdr[16:], uint32(c))
	le.PutUint32(hdr[20:], uint32(h))
	le.PutUint32(hdr[24:], uint32(w))
	copy(hdr[28:60], fp[:])
	le.PutUint32(hdr[60:], crc32.Checksum(pix, castagnoli))
	le.PutUint32(hdr[64:], crc32.Checksum(hdr[:64], castagnoli))
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(hdr[:]); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(pix); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
