package data

import (
	"fmt"
	"math"
)

// This file reproduces Pillow's ImagingResample (libImaging/Resample.c,
// Pillow 9.x) for 8-bit images and the BILINEAR filter, which is what
// torchvision's Resize does to PIL images: a separable triangle filter
// whose support grows with the reduction factor (antialiasing), weights
// normalised per output pixel and rounded to 22-bit fixed point, a
// horizontal pass then a vertical pass, each rounding and clipping to
// uint8. Products are wrapped in float64() so that no platform fuses them
// into FMAs, which would change rounding.

const pilPrecisionBits = 32 - 8 - 2

func pilBilinear(x float64) float64 {
	if x < 0 {
		x = -x
	}
	if x < 1 {
		return 1 - x
	}
	return 0
}

// pilCoeffs is Pillow's precompute_coeffs + normalize_coeffs_8bpc for the
// source span [in0, in1) of an axis of inSize pixels mapped to outSize:
// for output pixel i the taps are kk[i*ksize : i*ksize+bounds[2i+1]] over
// source pixels from bounds[2i].
func pilCoeffs(inSize int, in0, in1 float32, outSize int) (ksize int, bounds []int, kk []int32) {
	scale := float64(in1-in0) / float64(outSize)
	filterscale := scale
	if filterscale < 1 {
		filterscale = 1
	}
	support := 1.0 * filterscale // BILINEAR's support is 1
	ksize = int(math.Ceil(support))*2 + 1
	pre := make([]float64, outSize*ksize)
	bounds = make([]int, 2*outSize)
	for xx := 0; xx < outSize; xx++ {
		center := float64(in0) + float64((float64(xx)+0.5)*scale)
		ww := 0.0
		ss := 1.0 / filterscale
		xmin := int(center - support + 0.5)
		if xmin < 0 {
			xmin = 0
		}
		xmax := int(center + support + 0.5)
		if xmax > inSize {
			xmax = inSize
		}
		xmax -= xmin
		k := pre[xx*ksize : (xx+1)*ksize]
		for x := 0; x < xmax; x++ {
			w := pilBilinear(float64((float64(x+xmin) - center + 0.5) * ss))
			k[x] = w
			ww += w
		}
		for x := 0; x < xmax; x++ {
			if ww != 0 {
				k[x] /= ww
			}
		}
		bounds[2*xx], bounds[2*xx+1] = xmin, xmax
	}
	kk = make([]int32, len(pre))
	for i, v := range pre {
		if v < 0 {
			kk[i] = int32(-0.5 + float64(v*(1<<pilPrecisionBits)))
		} else {
			kk[i] = int32(0.5 + float64(v*(1<<pilPrecisionBits)))
		}
	}
	return ksize, bounds, kk
}

func pilClip8(in int32) uint8 {
	if in >= 1<<pilPrecisionBits<<8 {
		return 255
	}
	if in <= 0 {
		return 0
	}
	return uint8(in >> pilPrecisionBits)
}

// PILResize resizes an interleaved 8-bit image (w×h pixels of ch
// channels, row-major) to outW×outH exactly as Pillow's
// Image.resize((outW, outH), Image.BILINEAR) does.
func PILResize(src []uint8, w, h, ch, outW, outH int) ([]uint8, error) {
	if w <= 0 || h <= 0 || ch <= 0 || outW <= 0 || outH <= 0 || len(src) != w*h*ch {
		return nil, fmt.Errorf("data: PILResize: %d bytes for a %d×%d×%d image to %d×%d", len(src), w, h, ch, outW, outH)
	}
	if outW == w && outH == h {
		return append([]uint8(nil), src...), nil
	}
	kh, boundsH, kkH := pilCoeffs(w, 0, float32(w), outW)
	kv, boundsV, kkV := pilCoeffs(h, 0, float32(h), outH)
	img, iw, ih := src, w, h
	if outW != w {
		// Only the rows the vertical pass reads.
		first := boundsV[0]
		last := boundsV[2*outH-2] + boundsV[2*outH-1]
		if outH == h {
			first, last = 0, h
		}
		tmp := make([]uint8, outW*(last-first)*ch)
		for yy := 0; yy < last-first; yy++ {
			row := src[(yy+first)*w*ch : (yy+first+1)*w*ch]
			out := tmp[yy*outW*ch : (yy+1)*outW*ch]
			for xx := 0; xx < outW; xx++ {
				xmin, xmax := boundsH[2*xx], boundsH[2*xx+1]
				k := kkH[xx*kh : xx*kh+xmax]
				for c := 0; c < ch; c++ {
					ss := int32(1 << (pilPrecisionBits - 1))
					for x, kx := range k {
						ss += int32(row[(x+xmin)*ch+c]) * kx
					}
					out[xx*ch+c] = pilClip8(ss)
				}
			}
		}
		if outH != h {
			for i := 0; i < outH; i++ {
				boundsV[2*i] -= first
			}
		}
		img, iw, ih = tmp, outW, last-first
	}
	if outH == h {
		return img, nil
	}
	_ = ih
	out := make([]uint8, iw*outH*ch)
	for yy := 0; yy < outH; yy++ {
		ymin, ymax := boundsV[2*yy], boundsV[2*yy+1]
		k := kkV[yy*kv : yy*kv+ymax]
		o := out[yy*iw*ch : (yy+1)*iw*ch]
		for i := range o {
			ss := int32(1 << (pilPrecisionBits - 1))
			for y, ky := range k {
				ss += int32(img[(y+ymin)*iw*ch+i]) * ky
			}
			o[i] = pilClip8(ss)
		}
	}
	return out, nil
}

// CenterCropBox is torchvision's CenterCrop offset: the top-left corner
// of a size×size crop, rounding half to even as Python's round does.
func CenterCropBox(w, h, size int) (left, top int, err error) {
	if w < size || h < size {
		return 0, 0, fmt.Errorf("data: a %d×%d image is smaller than the %d×%d centre crop", w, h, size, size)
	}
	left = int(math.RoundToEven(float64(w-size) / 2))
	top = int(math.RoundToEven(float64(h-size) / 2))
	return left, top, nil
}

// cropInterleaved copies the size×size square at (left, top) of an
// interleaved w-wide image.
func cropInterleaved(src []uint8, w, ch, left, top, size int) []uint8 {
	out := make([]uint8, size*size*ch)
	for y := 0; y < size; y++ {
		copy(out[y*size*ch:(y+1)*size*ch], src[((top+y)*w+left)*ch:])
	}
	return out
}
