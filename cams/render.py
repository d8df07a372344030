"""The one post-processing path from raw maps to what people and metrics see (docs/cams.md).

Every method's raw maps (B x h x w) go through exactly these steps, in this order:

1. ReLU: keep only positive evidence for the explained class. Negative CAM values are evidence for
   *other* classes; without ReLU, min-max would stretch them to the bottom of the scale and the
   hottest colour would still mean "most positive", but the zero point would move with how strongly
   an image argues against the class, so two maps of the same picture would not share a meaning.
   Grad-CAM applies ReLU by definition, so CAM gets it too and both are compared the same way.
2. Bilinear upsampling (align_corners=False, no antialias) to the image size.
3. Per-image min-max normalisation to [0, 1]. Bilinear weights sum to one, so normalising after
   upsampling equals normalising before, except that the upsampled map then spans exactly [0, 1].
   A constant map (all zero after ReLU: no positive evidence anywhere) becomes all zeros, not NaN.
4. Colouring with matplotlib's "jet" (a 256-entry lookup table, built once) and one alpha
   (`ALPHA`) for the overlay: overlay = (1 - ALPHA) * image + ALPHA * jet(map).

PNG files are written from pixel arrays only, so they carry no metadata (no text chunks, no
gamma, no timestamps): the bytes depend on the pixels alone, and content-hash names are stable.
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

ALPHA = 0.5
COLORMAP = "jet"
LUT_SIZE = 256


@lru_cache(maxsize=1)
def colormap_lut() -> Tensor:
    """matplotlib's jet as a 256 x 3 uint8 tensor (matplotlib is only needed to build it)."""
    import matplotlib

    rgba = matplotlib.colormaps[COLORMAP](np.linspace(0.0, 1.0, LUT_SIZE))
    return torch.from_numpy(np.round(rgba[:, :3] * 255.0).astype(np.uint8))


def _normalize_(maps: Tensor) -> Tensor:
    """In-place per-image min-max of a float tensor we own (B x H x W); constant maps become zeros."""
    flat = maps.view(maps.shape[0], -1)
    low = flat.amin(1, keepdim=True)
    high = flat.amax(1, keepdim=True)
    span = high - low
    # "Constant" up to fp32 rounding noise, relative to the map's own magnitude.
    varies = span > 1e-6 * torch.maximum(high.abs(), low.abs())
    scale = torch.where(
        varies, 1.0 / torch.where(varies, span, torch.ones_like(span)), torch.zeros_like(span)
    )
    flat.sub_(low).mul_(scale).clamp_(0.0, 1.0)
    return maps


def normalize_maps(maps: Tensor) -> Tensor:
    """Per-image min-max to [0, 1] (B x H x W, fp32); constant maps become zeros. `maps` is not changed."""
    return _normalize_(maps.float().clone().contiguous())


def postprocess(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Raw maps (B x h x w) -> heatmaps (B x H x W, fp32 in [0, 1]): ReLU, upsample, normalise."""
    if maps.ndim != 3:
        raise ValueError(f"maps must be B x h x w, got shape {tuple(maps.shape)}")
    positive = F.relu(maps.float())  # a new tensor: normalising it in place touches nothing of the caller's
    if tuple(positive.shape[-2:]) != tuple(size):
        positive = F.interpolate(positive[:, None], size=tuple(size), mode="bilinear", align_corners=False)[
            :, 0
        ]
    return _normalize_(positive.contiguous())


def lut_index(heatmaps: Tensor) -> Tensor:
    """Lookup-table entry of every pixel: round(255 v) for v in [0, 1] (int32, flattened)."""
    return heatmaps.clamp(0.0, 1.0).mul_(LUT_SIZE - 1).round_().to(torch.int32).flatten()


def colorize(heatmaps: Tensor) -> Tensor:
    """Heatmaps in [0, 1] (B x H x W) -> jet colours (B x H x W x 3, uint8)."""
    lut = colormap_lut().to(heatmaps.device)
    return lut.index_select(0, lut_index(heatmaps)).view(*heatmaps.shape, 3)


def overlay(images: Tensor, heatmaps: Tensor, alpha: float = ALPHA) -> Tensor:
    """Blend jet-coloured heatmaps over RGB images (both B x H x W[ x 3], images uint8) -> uint8:
    round((1 - alpha) * image + alpha * jet(map)), with the alpha-weighted table looked up directly."""
    if images.shape[:3] != heatmaps.shape:
        raise ValueError(f"images {tuple(images.shape)} and heatmaps {tuple(heatmaps.shape)} differ in size")
    weighted = colormap_lut().to(heatmaps.device, torch.float32).mul_(alpha)
    colours = weighted.index_select(0, lut_index(heatmaps)).view(*heatmaps.shape, 3)
    blended = colours.add_(images.to(torch.float32), alpha=1.0 - alpha)
    return blended.round_().clamp_(0, 255).to(torch.uint8)


def render_overlays(raw_maps: Tensor, images: Tensor, alpha: float = ALPHA) -> tuple[Tensor, Tensor]:
    """The whole path for a batch: raw maps + uint8 images (B x H x W x 3) -> (heatmaps, overlays)."""
    heatmaps = postprocess(raw_maps, tuple(images.shape[1:3]))
    return heatmaps, overlay(images.to(heatmaps.device), heatmaps, alpha)


def encode_png(pixels: np.ndarray | Tensor, compress_level: int = 6) -> bytes:
    """PNG bytes of an H x W (L) or H x W x 3 (RGB) uint8 array, with no metadata chunks."""
    if isinstance(pixels, Tensor):
        pixels = pixels.cpu().numpy()
    pixels = np.ascontiguousarray(pixels)
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3):
        raise ValueError(
            f"encode_png needs an H x W or H x W x 3 uint8 array, got {pixels.dtype} {pixels.shape}"
        )
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def pil_to_uint8(images: list[Image.Image]) -> Tensor:
    """PIL images of one size -> B x H x W x 3 uint8 tensor (RGB), for overlays."""
    return torch.from_numpy(np.stack([np.asarray(im.convert("RGB"), dtype=np.uint8) for im in images]))
