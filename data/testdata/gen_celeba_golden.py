#!/usr/bin/python3
"""Golden files for data/celeba_test.go: Pillow's resize and JPEG decoding.

Run from the repository root with Debian's Python (Pillow 9.4):
    /usr/bin/python3 data/testdata/gen_celeba_golden.py
It writes data/testdata/celeba_*.png and celeba_fixture.jpg.

The CelebA preprocessing of the paper is torchvision's
    Compose([CenterCrop(148), Resize(64)])
on PIL images. torchvision is not installed here, so its two steps are
written out: F.center_crop takes
    top = int(round((h - 148) / 2.0)), left = int(round((w - 148) / 2.0))
(Python's round: half to even) and crops; F.resize on a PIL image calls
    img.resize((64, 64), Image.BILINEAR)
(torchvision's default interpolation for PIL images).
"""
import os

import numpy as np
from PIL import Image

OUT = os.path.dirname(os.path.abspath(__file__))


def fixture(w, h, seed):
    """A deterministic RGB image with gradients, hard edges, discs and noise,
    the kinds of content that show filter differences."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 127.5 + 127.5 * np.sin(x / 9.0) * np.cos(y / 13.0)
    g = 255.0 * x / (w - 1)
    b = 255.0 * ((x // 11 + y // 7) % 2)
    for _ in range(6):
        cx, cy, rad = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(8, 40)
        m = (x - cx) ** 2 + (y - cy) ** 2 < rad ** 2
        col = rng.randint(0, 256, size=3)
        r[m], g[m], b[m] = col
    img = np.stack([r, g, b], axis=-1) + rng.normal(0, 12, size=(h, w, 3))
    return Image.fromarray(np.clip(np.round(img), 0, 255).astype(np.uint8), "RGB")


def center_crop(img, size):
    w, h = img.size
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def celeba64(img):
    return center_crop(img, 148).resize((64, 64), Image.BILINEAR)


def main():
    # CelebA's aligned images are 178 wide and 218 high.
    src = fixture(178, 218, 0)
    src.save(os.path.join(OUT, "celeba_fixture.png"))
    celeba64(src).save(os.path.join(OUT, "celeba_crop64.png"))
    # Other resizes exercise both passes, one pass alone, and upsampling.
    for w, h in [(64, 64), (200, 100), (178, 50), (31, 218)]:
        src.resize((w, h), Image.BILINEAR).save(os.path.join(OUT, "celeba_resize_%dx%d.png" % (w, h)))
    # An odd-sized image: (177-148)/2 = 14.5 rounds to 14, (219-148)/2 to 36.
    odd = fixture(177, 219, 1)
    odd.save(os.path.join(OUT, "celeba_odd.png"))
    celeba64(odd).save(os.path.join(OUT, "celeba_odd_crop64.png"))
    # JPEG: what Pillow (libjpeg-turbo) decodes, and the whole pipeline.
    jpg = os.path.join(OUT, "celeba_fixture.jpg")
    src.save(jpg, quality=90)
    dec = Image.open(jpg).convert("RGB")
    dec.save(os.path.join(OUT, "celeba_jpeg_decoded.png"))
    celeba64(dec).save(os.path.join(OUT, "celeba_jpeg_crop64.png"))


if __name__ == "__main__":
    main()
