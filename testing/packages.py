"""Small, valid study packages made with Pillow alone, for tests, benchmarks and screenshots.

Real packages come from ``python -m cams.generate``; these need no model and no torch. Each "map"
is the image with a blurred warm blob blended in where that method "looks", so the two overlays of
a pair differ visibly, and the blob's colour is drawn per map, so no colour gives a method away.
File names come from :func:`survey.package.content_name`, exactly like real packages, so nothing
here hints at which method made which map.

* :func:`make_package` writes the package (flat scenes by default; ``photographic=True`` adds
  sensor-like noise so the display PNGs weigh what real CAM overlays weigh, for honest timings);
* :func:`make_study` also imports it into a database and returns a :class:`StudyFixture`. Its method
  names (``SECRET_METHODS``) are easy to search for: if one ever appears in what a browser
  receives, blinding broke.
"""
from __future__ import annotations

import io
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from survey.db import get_engine
from survey.importer import import_package
from survey.package import SCHEMA, content_name, load_package, package_files, write_manifest

LABELS = ("waiting room", "kitchen", "beach", "forest path", "library", "bridge",
          "apartment building (outdoor)", "bakery", "harbor", "ski slope")
PROPOSED, BASELINE = "quokkaproposed", "wombatbaseline"
SECRET_METHODS = (BASELINE, PROPOSED)


def _save(root: Path, folder: str, image) -> str:  # noqa: ANN001 (PIL image)
    """Writes ``image`` as a PNG under ``root/folder`` with a content name; returns the relative path."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = buffer.getvalue()
    relative = f"{folder}/{content_name(data, '.png')}"
    (root / folder).mkdir(parents=True, exist_ok=True)
    (root / relative).write_bytes(data)
    return relative


def _scene(rng: random.Random, size: int, photographic: bool):  # noqa: ANN202 (PIL image)
    """A few coloured rectangles on a plain background; with sensor-like noise if ``photographic``."""
    from PIL import Image, ImageDraw, ImageFilter

    image = Image.new("RGB", (size, size), tuple(rng.randrange(40, 220) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x, y = rng.randrange(size), rng.randrange(size)
        w, h = rng.randrange(4, max(5, size // 2)), rng.randrange(4, max(5, size // 2))
        draw.rectangle((x, y, x + w, y + h), fill=tuple(rng.randrange(256) for _ in range(3)))
    if photographic:  # noise, so PNGs weigh what photos weigh
        noise = Image.merge("RGB", [Image.effect_noise((size, size), 40 + 10 * k) for k in range(3)])
        image = Image.blend(image, noise, 0.35).filter(ImageFilter.GaussianBlur(0.6))
    return image


def _overlay(image, rng: random.Random):  # noqa: ANN001, ANN202 (PIL images)
    """A CAM-like overlay: a blurred warm blob at a random place, blended over the image."""
    from PIL import Image, ImageDraw, ImageFilter

    size = image.size[0]
    heat = Image.new("L", image.size, 0)
    cx, cy, r = rng.randrange(size), rng.randrange(size), rng.randrange(max(1, size // 6), max(2, size // 2))
    ImageDraw.Draw(heat).ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    heat = heat.filter(ImageFilter.GaussianBlur(max(1, size // 16)))
    colour = Image.new("RGB", image.size, (255, rng.randrange(0, 120), 0))
    return Image.composite(Image.blend(image, colour, 0.6), image, heat)


def _mask(image):  # noqa: ANN001, ANN202 (PIL images)
    """An object mask: the top-left quarter."""
    from PIL import Image

    mask = Image.new("L", image.size, 0)
    mask.paste(255, (0, 0, image.size[0] // 2, image.size[1] // 2))
    return mask


def make_package(root: Path, *, name: str = "demo", n_items: int = 6, n_checks: int = 1,
                 proposed: str = "vib", baseline: str = "baseline", methods: Sequence[str] | None = None,
                 labels: Sequence[str] = LABELS, image_size: int = 48, photographic: bool = False,
                 allow_no_preference: bool = False, repeats: int | None = None, with_example: bool = True,
                 with_masks: bool = False, seed: int = 0) -> Path:
    """Writes a valid ``vibcam.study/1`` package under ``root`` with ``n_items`` regular items and
    ``n_checks`` attention checks (expecting ``proposed``); returns ``root``.

    ``methods`` defaults to ``(baseline, proposed)``; item ``k`` gets ``labels[k % len(labels)]``;
    ``repeats`` is written only when given; the same ``seed`` gives the same images and item ids."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    methods = list(methods) if methods is not None else [baseline, proposed]

    def pair() -> tuple[str, dict[str, str], object]:
        image = _scene(rng, image_size, photographic)
        maps = {method: _save(root, "maps", _overlay(image, rng)) for method in methods}
        return _save(root, "images", image), maps, image

    items = []
    for k in range(n_items + n_checks):
        image_path, maps, image = pair()
        item: dict = {"id": f"i-{rng.getrandbits(32):08x}", "label": labels[k % len(labels)],
                      "image": image_path, "maps": maps}
        if with_masks:
            item["mask"] = _save(root, "masks", _mask(image))
        item["attention_check"] = k >= n_items
        if k >= n_items:
            item["expected"] = proposed
        items.append(item)
    rng.shuffle(items)

    manifest: dict = {
        "schema": SCHEMA,
        "name": name,
        "created_at": datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "proposed": proposed,
        "baseline": baseline,
        "methods": methods,
        "question": "Which map better shows what makes this image a {label}?",
        "instructions": "Pick the heat map that highlights the parts of the photo that make it what it is.",
        "allow_no_preference": allow_no_preference,
        "items": items,
        "provenance": {"command": "testing.packages.make_package", "seed": seed},
    }
    if with_example:
        image_path, maps, _ = pair()
        manifest["example"] = {"label": "lighthouse", "image": image_path, "maps": maps}
    if repeats is not None:
        manifest["repeats"] = repeats
    write_manifest(root, manifest)
    return root


@dataclass(frozen=True)
class StudyFixture:
    """A package made by :func:`make_package` and imported under ``name`` into the database ``url``."""

    url: str
    name: str
    package: Path

    @property
    def n_trials(self) -> int:
        manifest = load_package(self.package)
        return len(manifest["items"]) + manifest.get("repeats", 0)

    def secrets(self) -> list[str]:
        """Strings that must never reach a rater: method names, package folder, file names and stems."""
        manifest = load_package(self.package)
        files = package_files(self.package, manifest)
        return [*manifest["methods"], str(self.package), *files, *(Path(f).stem for f in files)]


def make_study(folder: Path, url: str, *, name: str = "uistudy", n_items: int = 4, n_checks: int = 1,
               invite_only: bool = False, allow_no_preference: bool = False, is_open: bool = True,
               completion_redirect: str | None = None, image_size: int = 64, photographic: bool = False,
               seed: int = 3) -> StudyFixture:
    """Writes a package with the ``SECRET_METHODS`` under ``folder/package-NAME`` and imports it into
    ``url`` (the schema is created or upgraded first)."""
    package = make_package(Path(folder) / f"package-{name}", name=name, n_items=n_items, n_checks=n_checks,
                           proposed=PROPOSED, baseline=BASELINE, image_size=image_size,
                           photographic=photographic, allow_no_preference=allow_no_preference, seed=seed)
    import_package(get_engine(url), package, invite_only=invite_only, is_open=is_open,
                   completion_redirect=completion_redirect)
    return StudyFixture(url, name, package)
