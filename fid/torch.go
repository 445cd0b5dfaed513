package fid

import (
	"unsafe"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// float64Tensor copies x into a new CPU tensor of the given shape.
func float64Tensor(x []float64, shape ...int64) (*ts.Tensor, error) {
	b := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(x))), 8*len(x))
	return ts.FromBytes(b, shape, gotch.Double)
}

// allFinite says whether t has no NaN or ±Inf.
func allFinite(t *ts.Tensor) bool {
	return t.MustIsfinite(false).MustAll(true).Int64Values()[0] != 0
}
