"""Study fixtures for the UI tests, the browser benchmark and the screenshot: a package written with
``survey.package.write_manifest`` and Pillow-made PNGs, imported into a database.

Method names are chosen to be easy to search for: if ``SECRET_METHODS`` ever appears in what a
browser receives, blinding broke. File names are content hashes (``survey.package.content_name``)
like real packages. ``photographic=True`` makes noisy, photo-like 224 px images whose display PNGs
weigh what real CAM overlays weigh (a few hundred kB), for honest timings.
"""
from __future__ import annotations

import io
import random
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from survey.db import get_engine
from survey.importer import import_package
from survey.package import SCHEMA, content_name, load_package, package_files, write_manifest

PROPOSED, BASELINE = "quokkaproposed", "wombatbaseline"
SECRET_METHODS = (BASELINE, PROPOSED)
APP = Path(__file__).resolve().parents[2] / "survey" / "app.py"
LABELS = ["waiting room", "kitchen", "beach", "forest path", "library", "bridge", "bakery", "harbor"]


@dataclass(frozen=True)
class StudyFixture:
    url: str
    name: str
    package: Path

    @property
    def n_trials(self) -> int:
        manifest = load_package(self.package)
        return len(manifest["items"]) + manifest.get("repeats", 0)

    def secrets(self) -> list[str]:
        """Strings that must never reach a rater: method names, package folder, file names and stems."""
        files = package_files(self.package, load_package(self.package))
        return [*SECRET_METHODS, str(self.package), *files, *(Path(f).stem for f in files)]


def _save(root: Path, folder: str, image) -> str:  # noqa: ANN001 (PIL image)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    relative = f"{folder}/{content_name(buffer.getvalue(), '.png')}"
    (root / folder).mkdir(parents=True, exist_ok=True)
    (root / relative).write_bytes(buffer.getvalue())
    return relative


def _scene(rng: random.Random, size: int, photographic: bool):  # noqa: ANN202
    from PIL import Image, ImageDraw, ImageFilter

    image = Image.new("RGB", (size, size), tuple(rng.randrange(40, 220) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x, y = rng.randrange(size), rng.randrange(size)
        w, h = rng.randrange(4, size // 2), rng.randrange(4, size // 2)
        draw.rectangle((x, y, x + w, y + h), fill=tuple(rng.randrange(256) for _ in range(3)))
    if photographic:  # sensor-like noise so PNGs weigh what photos weigh
        noise = Image.merge("RGB", [Image.effect_noise((size, size), 40 + 10 * k) for k in range(3)])
        image = Image.blend(image, noise, 0.35).filter(ImageFilter.GaussianBlur(0.6))
    return image


def _overlay(image, rng: random.Random):  # noqa: ANN001, ANN202
    """A CAM-like overlay: a blurred warm blob at a random place, blended over the image."""
    from PIL import Image, ImageDraw, ImageFilter

    size = image.size[0]
    heat = Image.new("L", image.size, 0)
    cx, cy, r = rng.randrange(size), rng.randrange(size), rng.randrange(size // 6, size // 2)
    ImageDraw.Draw(heat).ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    heat = heat.filter(ImageFilter.GaussianBlur(max(1, size // 16)))
    colour = Image.new("RGB", image.size, (255, rng.randrange(0, 120), 0))
    return Image.composite(Image.blend(image, colour, 0.6), image, heat)


def make_package(root: Path, *, name: str, n_items: int = 4, n_checks: int = 1, image_size: int = 64,
                 photographic: bool = False, allow_no_preference: bool = False, seed: int = 3) -> Path:
    """A valid ``vibcam.study/1`` package with ``n_items`` regular items and ``n_checks`` attention checks."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)

    def pair() -> tuple[str, dict[str, str]]:
        image = _scene(rng, image_size, photographic)
        maps = {m: _save(root, "maps", _overlay(image, rng)) for m in SECRET_METHODS}
        return _save(root, "images", image), maps

    items = []
    for k in range(n_items + n_checks):
        image, maps = pair()
        item = {"id": f"i-{rng.getrandbits(32):08x}", "label": LABELS[k % len(LABELS)], "image": image,
                "maps": maps, "attention_check": k >= n_items}
        if k >= n_items:
            item["expected"] = PROPOSED
        items.append(item)
    example_image, example_maps = pair()
    write_manifest(root, {
        "schema": SCHEMA, "name": name,
        "created_at": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "proposed": PROPOSED, "baseline": BASELINE, "methods": list(SECRET_METHODS),
        "question": "Which map better shows what makes this image a {label}?",
        "instructions": "Pick the heat map that highlights the parts of the photo that make it what it is.",
        "allow_no_preference": allow_no_preference,
        "example": {"label": "lighthouse", "image": example_image, "maps": example_maps},
        "items": items,
    })
    return root


def make_study(tmp_path: Path, url: str, *, name: str = "uistudy", n_items: int = 4, n_checks: int = 1,
               invite_only: bool = False, allow_no_preference: bool = False, is_open: bool = True,
               completion_redirect: str | None = None, image_size: int = 64, photographic: bool = False,
               seed: int = 3) -> StudyFixture:
    """Writes a package under ``tmp_path/package-NAME`` and imports it into ``url``."""
    package = make_package(tmp_path / f"package-{name}", name=name, n_items=n_items, n_checks=n_checks,
                           image_size=image_size, photographic=photographic,
                           allow_no_preference=allow_no_preference, seed=seed)
    import_package(get_engine(url), package, invite_only=invite_only, is_open=is_open,
                   completion_redirect=completion_redirect)
    return StudyFixture(url, name, package)
