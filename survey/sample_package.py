"""A small, valid study package made with Pillow alone, for tests, benchmarks and trying the app.

Real packages come from ``python -m cams.generate``; this one needs no model and no torch. Each
"map" is the image with a coloured disc drawn where that method "looks", so the two overlays of a
pair differ visibly. File names come from :func:`survey.package.content_name`, exactly like real
packages, so nothing here hints at which method made which map.
"""
from __future__ import annotations

import io
import random
from datetime import datetime, timezone
from pathlib import Path

from survey.package import SCHEMA, content_name, write_manifest

DEFAULT_LABELS = ["waiting room", "kitchen", "beach", "forest path", "library", "bridge",
                  "apartment building (outdoor)", "bakery", "harbor", "ski slope"]


def _png_bytes(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _save(root: Path, folder: str, data: bytes) -> str:
    """Writes ``data`` under ``root/folder`` with a content name and returns the relative path."""
    relative = f"{folder}/{content_name(data, '.png')}"
    target = root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return relative


def _scene(rng: random.Random, size: int):
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), tuple(rng.randrange(60, 200) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(3):
        x0, y0 = rng.randrange(size // 2), rng.randrange(size // 2)
        x1, y1 = x0 + rng.randrange(4, size // 2), y0 + rng.randrange(4, size // 2)
        draw.rectangle((x0, y0, x1, y1), fill=tuple(rng.randrange(256) for _ in range(3)))
    return image


def _overlay(image, rng: random.Random, colour: tuple[int, int, int]):
    from PIL import Image, ImageDraw

    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    size = image.size[0]
    cx, cy, r = rng.randrange(size), rng.randrange(size), rng.randrange(size // 6, size // 2)
    ImageDraw.Draw(layer).ellipse((cx - r, cy - r, cx + r, cy + r), fill=(*colour, 140))
    return Image.alpha_composite(image.convert("RGBA"), layer).convert("RGB")


def make_sample_package(root: Path, *, name: str = "demo", n_items: int = 6, n_checks: int = 1,
                        methods: tuple[str, ...] = ("baseline", "vib"), proposed: str = "vib",
                        baseline: str = "baseline", image_size: int = 48, allow_no_preference: bool = False,
                        repeats: int | None = None, with_example: bool = True, with_masks: bool = False,
                        seed: int = 0) -> Path:
    """Writes a valid package with ``n_items`` regular items and ``n_checks`` attention checks."""
    from PIL import Image

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    colours = [(255, 0, 0), (0, 90, 255), (0, 200, 0), (255, 160, 0)]

    def pair() -> tuple[str, dict[str, str], object]:
        image = _scene(rng, image_size)
        image_path = _save(root, "images", _png_bytes(image))
        # Colours are shuffled per item: a fixed colour per method would let raters learn which is which.
        shuffled = rng.sample(colours, k=len(colours))
        maps = {m: _save(root, "maps", _png_bytes(_overlay(image, rng, shuffled[k % len(shuffled)])))
                for k, m in enumerate(methods)}
        return image_path, maps, image

    items = []
    for k in range(n_items + n_checks):
        label = DEFAULT_LABELS[k % len(DEFAULT_LABELS)]
        image_path, maps, image = pair()
        item: dict = {"id": f"i-{rng.getrandbits(32):08x}", "label": label, "image": image_path, "maps": maps}
        if with_masks:
            mask = Image.new("L", image.size, 0)
            mask.paste(255, (0, 0, image.size[0] // 2, image.size[1] // 2))
            item["mask"] = _save(root, "masks", _png_bytes(mask))
        is_check = k >= n_items
        item["attention_check"] = is_check
        if is_check:
            item["expected"] = proposed
        items.append(item)
    rng.shuffle(items)

    manifest: dict = {
        "schema": SCHEMA,
        "name": name,
        "created_at": datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "proposed": proposed,
        "baseline": baseline,
        "methods": list(methods),
        "question": "Which map better shows what makes this image a {label}?",
        "instructions": "Pick the heat map that highlights the parts of the photo that make it what it is.",
        "allow_no_preference": allow_no_preference,
        "items": items,
        "provenance": {"command": "survey.sample_package.make_sample_package", "seed": seed},
    }
    if with_example:
        image_path, maps, _ = pair()
        manifest["example"] = {"label": "lighthouse", "image": image_path, "maps": maps}
    if repeats is not None:
        manifest["repeats"] = repeats
    write_manifest(root, manifest)
    return root
