"""Training crops straight from image files, decoding JPEGs at reduced size when the crop allows.

A random resized crop of a 1600 x 1200 photo usually spans several hundred pixels that end up as
224: decoding every pixel first wastes most of the work. libjpeg can decode at 1/2, 1/4 or 1/8 scale
almost for free (it skips most of the inverse DCT), which Pillow exposes as `Image.draft`.

The crop is chosen exactly as before, from the image's full size (read from the header, before
decoding; same RNG calls as `T.RandomResizedCrop`), so the distribution of crop boxes, aspect ratios
and flips is unchanged. The decoder is then asked for the largest reduction that still leaves the
crop at least `size` pixels wide and high, so the crop is only ever downsampled, never upsampled
more than the full-size path would. The crop box is mapped to the reduced image (rounded to
whole reduced pixels: the crop moves by at most half a reduced pixel, 0-4 original pixels) and
resized with antialiased bilinear interpolation by torch on the uint8 pixels (its vectorised kernel
is several times faster than Pillow's; the filter is the same up to rounding, +-1 grey level). The
other difference from the full-size path: part of the downsampling happens in the JPEG decoder (a
box filter over 2/4/8-pixel DCT blocks) instead of the bilinear filter, which changes pixel values
by about one grey level on average (measured in tests/models/test_models_pipeline.py), not geometry.
Non-JPEG files (PNG, ...) are decoded at full size, as before.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch import Tensor

from models.data.images import BadImageError, to_rgb
from models.data.transforms import TrainCrop

EXIF_ORIENTATION = 0x0112
SWAPS_AXES = {5, 6, 7, 8}  # EXIF orientations that rotate by 90 degrees (width and height trade places)


def draft_request(width: int, height: int, crop_width: int, crop_height: int, size: int) -> tuple[int, int]:
    """The smallest whole-image size at which a crop_width x crop_height crop is still >= size x size.

    Pillow's `draft` picks the largest 1/2^k reduction whose result is at least this size."""
    return math.ceil(width * size / crop_width), math.ceil(height * size / crop_height)


def load_train_crop(path: str | Path, crop: TrainCrop, reduced: bool = True) -> tuple[Tensor, int]:
    """(the augmented crop of the image at `path` as a 3 x size x size uint8 tensor, the JPEG reduction
    used: 1, 2, 4 or 8).

    Same crop box and flip as `crop(load_rgb(path))` for the same torch RNG state; with `reduced`, JPEGs
    are decoded at the smallest 1/2^k scale that still holds the crop at full size."""
    try:
        with Image.open(path) as image:
            orientation = image.getexif().get(EXIF_ORIENTATION, 1)
            raw_width, raw_height = image.size
            width, height = (raw_height, raw_width) if orientation in SWAPS_AXES else (raw_width, raw_height)
            top, left, crop_height, crop_width = crop.box(width, height)
            factor = 1
            if reduced and image.format in ("JPEG", "MPO"):
                want = draft_request(width, height, crop_width, crop_height, crop.size)
                drafted = image.draft(image.mode, (want[1], want[0]) if orientation in SWAPS_AXES else want)
                if drafted is not None:
                    factor = round(raw_width / drafted[1][2])
            if orientation not in (0, 1):
                image = ImageOps.exif_transpose(image)
            image.load()
            image = to_rgb(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise BadImageError(f"cannot read image {path}: {error}; fix or delete the file, "
                            "or pass --skip-bad-images to leave such files out") from None
    box = reduced_box(top, left, crop_height, crop_width, factor, image.size)
    pixels = torch.from_numpy(np.array(image.crop(box), np.uint8)).permute(2, 0, 1).unsqueeze(0)
    out = F.interpolate(pixels, size=(crop.size, crop.size), mode="bilinear", antialias=True, align_corners=False)[0]
    return (out.flip(-1) if crop.flip() else out).contiguous(), factor


def reduced_box(top: int, left: int, height: int, width: int, factor: int,
                image_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The crop box (left, top, right, bottom) in the 1/factor image, rounded to whole pixels (so the
    crop moves by at most half a reduced pixel) and kept inside the image."""
    image_width, image_height = image_size
    x0, y0 = min(round(left / factor), image_width - 1), min(round(top / factor), image_height - 1)
    x1 = min(max(x0 + 1, round((left + width) / factor)), image_width)
    y1 = min(max(y0 + 1, round((top + height) / factor)), image_height)
    return x0, y0, x1, y1
