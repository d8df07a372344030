"""Reading any image file as RGB, and finding the files that cannot be read.

Datasets in the wild hold grayscale (L), palette (P), CMYK, alpha (RGBA, LA) and 16-bit (I;16)
images; the network wants 8-bit RGB. Transparent pixels are composited on white (their RGB values
are often garbage), 16-bit values are scaled to 8 bits, and EXIF rotation is applied.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from tqdm import tqdm

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class BadImageError(ValueError):
    """An image file that cannot be decoded; the message names the file and the way out."""


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB (see the module docstring for the choices)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = values.max(initial=0.0)
        if top > 255.0:  # 16-bit (or wider) data: scale the full 16-bit range onto 8 bits
            values = values * (255.0 / (65535.0 if top <= 65535.0 else top))
        return Image.fromarray(np.clip(values, 0, 255).round().astype(np.uint8), "L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_rgb(path: str | Path) -> Image.Image:
    """The image at `path` as RGB, or BadImageError naming the file."""
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            image.load()
            return to_rgb(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise BadImageError(f"cannot read image {path}: {error}; fix or delete the file, "
                            "or pass --skip-bad-images to leave such files out") from None


def find_bad_images(paths: list[Path], progress: bool = True) -> dict[Path, str]:
    """Decode every file (at reduced JPEG resolution, for speed) and return the unreadable ones."""
    bad: dict[Path, str] = {}
    for path in tqdm(paths, desc="checking images", unit="img", disable=not progress, leave=False):
        try:
            with Image.open(path) as image:
                image.draft("RGB", (64, 64))  # JPEG: decode at 1/8 scale; still reads the whole stream
                image.load()
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
            bad[path] = str(error) or type(error).__name__
    return bad
