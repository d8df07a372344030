"""Training crops straight from image files, decoding JPEGs at reduced size when the crop allows.

A random resized crop of a 1600 x 1200 photo usually spans several hundred pixels that end up as
224: decoding every pixel first wastes most of the work. libjpeg can decode at 1/2, 1/4 or 1/8 scale
almost for free (it skips most of the inverse DCT), which Pillow exposes as `Image.draft`.

The crop is chosen exactly as before, from the image's full size (read from the header, before
decoding; same RNG calls as `T.RandomResizedCrop`), so the distribution of crop boxes, aspect ratios
and flips is unchanged. The decoder is then asked for the largest reduction that still leaves the
crop at least `size` pixels wide and high, so the crop is only ever downsampled, never upsampled
more than the full-size path would. The crop box is mapped to the reduced image in continuous
coordinates and resampled with the same filter (bilinear with antialiasing). The only difference
from the full-size path: part of the downsampling happens in the JPEG decoder (a box filter over
2/4/8-pixel DCT blocks) instead of Pillow's antialiased bilinear filter, which changes pixel values
by a few levels on average (measured in tests/models/test_models_pipeline.py), not geometry.
Non-JPEG files (PNG, ...) are decoded at full size, as before.
"""
from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageOps

from models.data.images import BadImageError, to_rgb
from models.data.transforms import TrainCrop

EXIF_ORIENTATION = 0x0112
SWAPS_AXES = {5, 6, 7, 8}  # EXIF orientations that rotate by 90 degrees (width and height trade places)


def draft_request(width: int, height: int, crop_width: int, crop_height: int, size: int) -> tuple[int, int]:
    """The smallest whole-image size at which a crop_width x crop_height crop is still >= size x size.

    Pillow's `draft` picks the largest 1/2^k reduction whose result is at least this size."""
    return math.ceil(width * size / crop_width), math.ceil(height * size / crop_height)


def load_train_crop(path: str | Path, crop: TrainCrop, reduced: bool = True) -> tuple[Image.Image, int]:
    """(the augmented size x size RGB crop of the image at `path`, the JPEG reduction used: 1, 2, 4 or 8).

    Equivalent to `crop(load_rgb(path))` (same crop box and flip for the same torch RNG state); with
    `reduced`, JPEGs are decoded at the smallest 1/2^k scale that still holds the crop at full size."""
    try:
        with Image.open(path) as image:
            swapped = image.getexif().get(EXIF_ORIENTATION, 1) in SWAPS_AXES
            raw_width, raw_height = image.size
            width, height = (raw_height, raw_width) if swapped else (raw_width, raw_height)
            top, left, crop_height, crop_width = crop.box(width, height)
            factor = 1.0
            if reduced and image.format in ("JPEG", "MPO"):
                want = draft_request(width, height, crop_width, crop_height, crop.size)
                drafted = image.draft(image.mode, (want[1], want[0]) if swapped else want)
                if drafted is not None:
                    factor = raw_width / drafted[1][2]
            image = ImageOps.exif_transpose(image)
            image.load()
            image = to_rgb(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise BadImageError(f"cannot read image {path}: {error}; fix or delete the file, "
                            "or pass --skip-bad-images to leave such files out") from None
    box = (left / factor, top / factor, min((left + crop_width) / factor, image.width),
           min((top + crop_height) / factor, image.height))
    out = image.resize((crop.size, crop.size), Image.Resampling.BILINEAR, box=box)
    if crop.flip():
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return out, round(factor)
