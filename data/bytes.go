package data

import "unsafe"

// float32Bytes views a float32 slice as its native-endian bytes, without
// copying; the slice must outlive the use of the result.
func float32Bytes(x []float32) []byte {
	if len(x) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), 4*len(x))
}
