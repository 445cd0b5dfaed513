package plots

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
)

// ImageGrid lays out N images (uint8, NCHW with C = 1 or 3) in rows of
// cols, with a pad-pixel border, as one image.
func ImageGrid(pix []uint8, n, c, h, w, cols, pad int) (*image.RGBA, error) {
	if c != 1 && c != 3 {
		return nil, fmt.Errorf("plots: images need 1 or 3 channels, got %d", c)
	}
	if len(pix) != n*c*h*w {
		return nil, fmt.Errorf("plots: %d bytes for %d images of %d×%d×%d", len(pix), n, c, h, w)
	}
	if cols <= 0 {
		cols = 1
	}
	rows := (n + cols - 1) / cols
	img := image.NewRGBA(image.Rect(0, 0, cols*(w+pad)+pad, rows*(h+pad)+pad))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	for k := 0; k < n; k++ {
		ox, oy := pad+(k%cols)*(w+pad), pad+(k/cols)*(h+pad)
		base := k * c * h * w
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				var r, g, b uint8
				if c == 1 {
					r = pix[base+y*w+x]
					g, b = r, r
				} else {
					r, g, b = pix[base+y*w+x], pix[base+h*w+y*w+x], pix[base+2*h*w+y*w+x]
				}
				img.SetRGBA(ox+x, oy+y, color.RGBA{r, g, b, 255})
			}
		}
	}
	return img, nil
}

// SavePNG writes an image, creating its folder.
func SavePNG(path string, img image.Image) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
