package data

import (
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // CelebA
	_ "image/png"  // fixtures and PNG folders
	"io"
)

// DecodeRGB decodes a JPEG (or PNG) into interleaved 8-bit RGB, w×h
// pixels. JPEGs go through Go's image/jpeg; its 4:2:0 and 4:2:2 chroma
// are upsampled here with libjpeg's "fancy" triangle filter and converted
// with libjpeg's fixed-point YCbCr→RGB, as Pillow's decoder does. The
// inverse DCT is still Go's, so pixels can differ from Pillow's by a few
// levels (see doc.go).
func DecodeRGB(r io.Reader) (rgb []uint8, w, h int, err error) {
	img, _, err := image.Decode(r)
	if err != nil {
		return nil, 0, 0, err
	}
	b := img.Bounds()
	w, h = b.Dx(), b.Dy()
	if w == 0 || h == 0 {
		return nil, 0, 0, fmt.Errorf("empty image")
	}
	rgb = make([]uint8, w*h*3)
	switch m := img.(type) {
	case *image.YCbCr:
		ycbcrToRGB(m, rgb)
	case *image.Gray:
		for y := 0; y < h; y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+w]
			for x, v := range row {
				rgb[(y*w+x)*3], rgb[(y*w+x)*3+1], rgb[(y*w+x)*3+2] = v, v, v
			}
		}
	default:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				c := color.NRGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
				i := (y*w + x) * 3
				rgb[i], rgb[i+1], rgb[i+2] = c.R, c.G, c.B
			}
		}
	}
	return rgb, w, h, nil
}

// libjpeg's ycc_rgb_convert tables (jdcolor.c): 16-bit fixed point.
var cr2r, cb2b, cr2g, cb2g [256]int32

func init() {
	const scale = 16
	fix := func(x float64) int32 { return int32(x*(1<<scale) + 0.5) }
	half := int32(1) << (scale - 1)
	for i := 0; i < 256; i++ {
		x := int32(i - 128)
		cr2r[i] = (fix(1.40200)*x + half) >> scale
		cb2b[i] = (fix(1.77200)*x + half) >> scale
		cr2g[i] = -fix(0.71414) * x
		cb2g[i] = -fix(0.34414)*x + half
	}
}

func clampU8(v int32) uint8 {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// ycbcrToRGB converts with full-resolution chroma planes made by
// upsampling as libjpeg does by default (do_fancy_upsampling).
func ycbcrToRGB(m *image.YCbCr, rgb []uint8) {
	b := m.Rect
	w, h := b.Dx(), b.Dy()
	cb := upsampleChroma(m, m.Cb, w, h)
	cr := upsampleChroma(m, m.Cr, w, h)
	for y := 0; y < h; y++ {
		yrow := m.Y[y*m.YStride : y*m.YStride+w]
		for x, yy := range yrow {
			i := y*w + x
			Y := int32(yy)
			cbv, crv := cb[i], cr[i]
			rgb[3*i] = clampU8(Y + cr2r[crv])
			rgb[3*i+1] = clampU8(Y + ((cb2g[cbv] + cr2g[crv]) >> 16))
			rgb[3*i+2] = clampU8(Y + cb2b[cbv])
		}
	}
}

// upsampleChroma returns a w×h chroma plane. 4:4:4 is copied; 4:2:2
// (h2v1) and 4:2:0 (h2v2) use libjpeg's triangle filters
// (jdsample.c h2v1_fancy_upsample / h2v2_fancy_upsample); other ratios
// fall back to nearest neighbour.
func upsampleChroma(m *image.YCbCr, p []uint8, w, h int) []uint8 {
	out := make([]uint8, w*h)
	cw := (w + 1) / 2
	switch m.SubsampleRatio {
	case image.YCbCrSubsampleRatio444:
		for y := 0; y < h; y++ {
			copy(out[y*w:(y+1)*w], p[y*m.CStride:])
		}
	case image.YCbCrSubsampleRatio422:
		for y := 0; y < h; y++ {
			h2v1Row(p[y*m.CStride:y*m.CStride+cw], out[y*w:(y+1)*w])
		}
	case image.YCbCrSubsampleRatio420:
		ch := (h + 1) / 2
		tmp := make([]int32, cw)
		row := make([]uint8, 2*cw)
		for y := 0; y < h; y++ {
			cy := y / 2
			// The nearer chroma row weighs 3, the farther 1; beyond the
			// image edge libjpeg replicates the edge row.
			ny := cy - 1
			if y%2 == 1 {
				ny = cy + 1
			}
			ny = min(max(ny, 0), ch-1)
			near := p[cy*m.CStride : cy*m.CStride+cw]
			far := p[ny*m.CStride : ny*m.CStride+cw]
			for i := range tmp {
				tmp[i] = 3*int32(near[i]) + int32(far[i])
			}
			h2v2Row(tmp, row)
			copy(out[y*w:(y+1)*w], row)
		}
	default:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				out[y*w+x] = p[m.COffset(x, y)-m.COffset(0, 0)]
			}
		}
	}
	return out
}

// h2v1Row doubles a row with weights 3/4, 1/4 (jdsample.c
// h2v1_fancy_upsample); dst has room for 2·len(src) or one less.
func h2v1Row(src, dst []uint8) {
	n := len(src)
	put := func(i int, v int32) {
		if i < len(dst) {
			dst[i] = uint8(v)
		}
	}
	if n == 1 {
		put(0, int32(src[0]))
		put(1, int32(src[0]))
		return
	}
	put(0, int32(src[0]))
	put(1, (int32(src[0])*3+int32(src[1])+2)>>2)
	for i := 1; i < n-1; i++ {
		v := int32(src[i]) * 3
		put(2*i, (v+int32(src[i-1])+1)>>2)
		put(2*i+1, (v+int32(src[i+1])+2)>>2)
	}
	put(2*(n-1), (int32(src[n-1])*3+int32(src[n-2])+1)>>2)
	put(2*n-1, int32(src[n-1]))
}

// h2v2Row finishes jdsample.c h2v2_fancy_upsample on a row of column sums
// 3·near + far.
func h2v2Row(sum []int32, dst []uint8) {
	n := len(sum)
	if n == 1 {
		v := uint8((sum[0]*4 + 8) >> 4)
		dst[0], dst[1] = v, v
		return
	}
	dst[0] = uint8((sum[0]*4 + 8) >> 4)
	dst[1] = uint8((sum[0]*3 + sum[1] + 7) >> 4)
	for i := 1; i < n-1; i++ {
		v := sum[i] * 3
		dst[2*i] = uint8((v + sum[i-1] + 8) >> 4)
		dst[2*i+1] = uint8((v + sum[i+1] + 7) >> 4)
	}
	dst[2*(n-1)] = uint8((sum[n-1]*3 + sum[n-2] + 8) >> 4)
	dst[2*n-1] = uint8((sum[n-1]*4 + 7) >> 4)
}
