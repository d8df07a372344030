"""The one post-processing path: ReLU, bilinear upsampling, min-max, jet, alpha, metadata-free PNG."""

from __future__ import annotations

import io
import struct
import zlib

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, PngImagePlugin

from cams.render import (
    ALPHA,
    colorize,
    colormap_lut,
    encode_png,
    normalize_maps,
    overlay,
    postprocess,
    render_overlays,
)


def png_chunks(data: bytes) -> list[str]:
    """Chunk types of a PNG file, parsed by hand (independent of Pillow)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, offset = [], 8
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        chunks.append(kind.decode("ascii"))
        offset += 12 + length
    return chunks


def test_postprocess_relu_range_and_size():
    raw = torch.tensor([[[-3.0, 1.0], [2.0, 5.0]], [[-1.0, -2.0], [4.0, 0.5]]])
    heat = postprocess(raw, (16, 12))
    assert heat.shape == (2, 16, 12) and heat.dtype == torch.float32
    for k in range(2):
        assert heat[k].min().item() == 0.0 and heat[k].max().item() == pytest.approx(1.0, abs=1e-6)
    # ReLU happens before normalisation: the -3 and the 0 it becomes map to the same value (0).
    flat = postprocess(torch.tensor([[[-3.0, 0.0], [0.0, 2.0]]]), (2, 2))
    assert flat[0, 0, 0] == flat[0, 0, 1] == 0.0 and flat[0, 1, 1] == 1.0


def test_postprocess_is_upsample_then_minmax_of_relu():
    raw = torch.randn(3, 4, 4, generator=torch.Generator().manual_seed(0))
    up = F.interpolate(raw.clamp_min(0)[:, None], size=(32, 32), mode="bilinear", align_corners=False)[:, 0]
    lo = up.amin((1, 2), keepdim=True)
    hi = up.amax((1, 2), keepdim=True)
    torch.testing.assert_close(postprocess(raw, (32, 32)), (up - lo) / (hi - lo), atol=1e-6, rtol=1e-6)


def test_constant_and_all_negative_maps_become_zero_not_nan():
    raw = torch.stack([torch.full((3, 3), 7.0), torch.full((3, 3), -2.0), -torch.rand(3, 3) - 0.1])
    heat = postprocess(raw, (9, 9))
    assert torch.isfinite(heat).all() and (heat == 0).all()
    assert torch.isfinite(normalize_maps(torch.full((1, 2, 2), 1e-30))).all()


def test_jet_lut_is_matplotlibs_jet():
    values = torch.tensor([[[0.0, 0.25, 0.5], [0.75, 0.9, 1.0]]])
    colours = colorize(values).numpy().reshape(-1, 3)
    expected = matplotlib.colormaps["jet"](np.round(values.numpy().ravel() * 255).astype(int))[:, :3]
    assert np.abs(colours.astype(float) - expected * 255).max() <= 0.5
    assert colormap_lut().shape == (256, 3) and colormap_lut().dtype == torch.uint8


def test_overlay_uses_one_alpha():
    images = torch.randint(0, 256, (2, 8, 8, 3), dtype=torch.uint8)
    heat = torch.rand(2, 8, 8)
    assert torch.equal(overlay(images, heat, alpha=0.0), images)
    assert torch.equal(overlay(images, heat, alpha=1.0), colorize(heat))
    blended = overlay(images, heat).float()
    expected = (1 - ALPHA) * images.float() + ALPHA * colorize(heat).float()
    assert (blended - expected).abs().max() <= 0.5
    with pytest.raises(ValueError, match="differ in size"):
        overlay(images, heat[:, :4])


def test_render_overlays_batch():
    heat, pictures = render_overlays(torch.randn(3, 2, 2), torch.zeros(3, 20, 24, 3, dtype=torch.uint8))
    assert heat.shape == (3, 20, 24) and pictures.shape == (3, 20, 24, 3) and pictures.dtype == torch.uint8


def test_png_has_no_metadata_and_round_trips():
    pixels = np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    # An input that carried metadata (text, dpi, gamma) must not pass any of it on.
    info = PngImagePlugin.PngInfo()
    info.add_text("method", "vib")
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG", pnginfo=info, dpi=(72, 72))
    source = Image.open(io.BytesIO(buffer.getvalue()))
    assert source.info.get("method") == "vib"
    data = encode_png(np.asarray(source))
    assert set(png_chunks(data)) == {"IHDR", "IDAT", "IEND"}
    assert b"vib" not in data
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), pixels)
    assert encode_png(torch.from_numpy(pixels)) == data  # deterministic: same pixels, same bytes
    mask = encode_png(np.full((4, 4), 255, np.uint8))
    assert Image.open(io.BytesIO(mask)).mode == "L"
    with pytest.raises(ValueError, match="uint8"):
        encode_png(pixels.astype(np.float32))
