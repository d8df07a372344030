"""Small, valid ``"task": "distinction"`` study packages made with Pillow alone (tests, the screenshot,
trying the page without a model). Real packages come from ``python -m cams.generate --task distinction``.

Every item is a photo with a few coloured boxes; box 0 is "the object" of the item's class. Each
method gets one candidate list: ``n_candidates`` class labels of a pretend top-k, each with a
CAM-like overlay (a blurred warm blob). The rank-1 candidate's blob sits on the object, the others
elsewhere, so a rater (or a simulated one) *can* tell, as with a good CAM. Attention checks make it
unmistakable: the answer's blob covers exactly the object and the other maps are flat (no blob).

Method names are easy to search for (``SECRET_METHODS``): if one ever reaches a browser, blinding
broke. File names are content hashes (``survey.package.content_name``) like real packages.
"""
from __future__ import annotations

import io
import random
from datetime import UTC, datetime
from pathlib import Path

from survey.package import SCHEMA, content_name, write_manifest
from testing.packages import StudyFixture

PROPOSED, BASELINE = "quokkaproposed", "wombatbaseline"
SECRET_METHODS = (BASELINE, PROPOSED)
CLASS_LABELS = ["waiting room", "kitchen", "beach", "forest path", "library", "bridge", "bakery", "harbor",
                "lighthouse", "ski slope", "bookstore", "bus interior"]


def _png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _save(root: Path, folder: str, image) -> str:
    data = _png(image)
    relative = f"{folder}/{content_name(data, '.png')}"
    (root / folder).mkdir(parents=True, exist_ok=True)
    (root / relative).write_bytes(data)
    return relative


def _scene(rng: random.Random, size: int):
    """A photo-like scene and the box of its object (x0, y0, x1, y1)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), tuple(rng.randrange(60, 200) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    boxes = []
    for _ in range(3):
        x0, y0 = rng.randrange(size // 2), rng.randrange(size // 2)
        box = (x0, y0, x0 + rng.randrange(size // 6, size // 2), y0 + rng.randrange(size // 6, size // 2))
        draw.rectangle(box, fill=tuple(rng.randrange(256) for _ in range(3)))
        boxes.append(box)
    return image, boxes[-1]  # drawn last: fully visible


def _overlay(image, centre: tuple[int, int] | None, radius: int):
    """A CAM-like overlay: a blurred warm blob at ``centre`` (None: a flat, uniform tint)."""
    from PIL import Image, ImageDraw, ImageFilter

    size = image.size[0]
    if centre is None:
        return Image.blend(image, Image.new("RGB", image.size, (0, 0, 160)), 0.35)
    heat = Image.new("L", image.size, 0)
    cx, cy = centre
    ImageDraw.Draw(heat).ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=255)
    heat = heat.filter(ImageFilter.GaussianBlur(max(1, size // 16)))
    cold = Image.blend(image, Image.new("RGB", image.size, (0, 0, 160)), 0.35)
    return Image.composite(Image.blend(image, Image.new("RGB", image.size, (255, 60, 0)), 0.6), cold, heat)


def _candidates(root: Path, rng: random.Random, image, box, labels: list[str], *, check: bool) -> tuple[list, int]:
    """One method's candidate list (in a random order) and the index of its rank-1 candidate."""
    size = image.size[0]
    x0, y0, x1, y1 = box
    on_object = ((x0 + x1) // 2, (y0 + y1) // 2)
    ranks = list(range(1, len(labels) + 1))
    rng.shuffle(ranks)
    listed = []
    for label, rank in zip(labels, ranks):
        if rank == 1:
            centre, radius = on_object, max(2, max(x1 - x0, y1 - y0) // 2)
        elif check:
            centre, radius = None, 0
        else:
            centre, radius = (rng.randrange(size), rng.randrange(size)), rng.randrange(size // 6, size // 3)
        listed.append({"label": label, "map": _save(root, "maps", _overlay(image, centre, radius)),
                       "rank": rank})
    return listed, ranks.index(1)


def distinction_manifest(root: Path, *, name: str = "distinction", n_items: int = 6, n_checks: int = 1,
                         methods: tuple[str, ...] = SECRET_METHODS, proposed: str = PROPOSED,
                         baseline: str = BASELINE, n_candidates: int = 4, image_size: int = 48,
                         with_example: bool = True, repeats: int | None = None, question: str | None = None,
                         seed: int = 0) -> dict:
    """Writes the images of a distinction package under ``root`` and returns its manifest (unwritten),
    so tests can break it on purpose before validating."""
    from PIL import Image

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    items = []
    for k in range(n_items + n_checks):
        check = k >= n_items
        image, box = _scene(rng, image_size)
        true_label = CLASS_LABELS[k % len(CLASS_LABELS)]
        candidates, answer = {}, {}
        for method in methods:  # each model has its own top-k; the true class is usually among them
            others = rng.sample([c for c in CLASS_LABELS if c != true_label], n_candidates - 1)
            labels = [true_label, *others] if rng.random() < 0.8 else [*others, rng.choice(
                [c for c in CLASS_LABELS if c not in others and c != true_label])]
            rng.shuffle(labels)
            candidates[method], answer[method] = _candidates(root, rng, image, box, labels, check=check)
        mask = Image.new("L", image.size, 0)
        mask.paste(255, box)
        items.append({"id": f"d-{rng.getrandbits(32):08x}", "label": true_label,
                      "image": _save(root, "images", image), "mask": _save(root, "masks", mask),
                      "candidates": candidates, "answer": answer, "attention_check": check})
    rng.shuffle(items)
    manifest: dict = {
        "schema": SCHEMA, "task": "distinction", "name": name,
        "created_at": datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "proposed": proposed, "baseline": baseline, "methods": list(methods),
        "instructions": ("Each screen shows a photo and four heat maps, one for each of the four classes the "
                         "model found most likely. Pick the map of the class the model chose, and say how "
                         "sure you are."),
        "items": items,
        "provenance": {"command": "testing.distinction_package.make_distinction_package", "seed": seed},
    }
    if question is not None:
        manifest["question"] = question
    if repeats is not None:
        manifest["repeats"] = repeats
    if with_example:
        image, box = _scene(rng, image_size)
        listed, _ = _candidates(root, rng, image, box, rng.sample(CLASS_LABELS, n_candidates), check=False)
        manifest["example"] = {"image": _save(root, "images", image), "candidates": listed}
    return manifest


def make_distinction_package(root: Path, **options) -> Path:
    """Writes a valid distinction package at ``root`` (see :func:`distinction_manifest` for options)."""
    write_manifest(Path(root), distinction_manifest(root, **options))
    return Path(root)


def make_distinction_study(tmp_path: Path, url: str, *, name: str = "dstudy", repeats: int | None = None,
                           completion_redirect: str | None = None, is_open: bool = True,
                           **options) -> StudyFixture:
    """Writes a package under ``tmp_path/package-NAME`` and imports it into ``url``."""
    from survey.db import get_engine
    from survey.importer import import_package

    package = make_distinction_package(tmp_path / f"package-{name}", name=name, **options)
    import_package(get_engine(url), package, repeats=repeats, completion_redirect=completion_redirect,
                   is_open=is_open)
    return StudyFixture(url, name, package)
