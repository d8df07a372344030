"""Synthetic scenes: a class-defining object in a cluttered "room", with its ground-truth mask.

Each of the K classes has its own object: a shape, a saturated colour and a texture
("red plain circle", "green striped square", ...). Every scene also holds what all classes share,
the analogue of SUN397's room corners and curtains: a wall with a corner, a floor line, sometimes a
striped curtain, muted furniture-like shapes and thin coloured rods. A classifier must find the
object; a CAM that lights up the clutter is wrong, and the mask says where right is.

Images are rendered on the fly with numpy + Pillow (well under a millisecond each at 64 px) and
depend only on (seed, split, index), so any worker, any run and any machine sees the same pixels.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from models.data.base import Sample, SceneDataset
from models.data.transforms import PilTransform

SHAPES = ("circle", "square", "triangle", "diamond", "star", "cross", "hexagon", "ring")
COLOURS = {
    "red": (215, 35, 35), "green": (35, 165, 55), "blue": (35, 75, 215), "yellow": (235, 205, 30),
    "magenta": (205, 45, 195), "cyan": (35, 195, 205), "orange": (245, 135, 25), "purple": (115, 45, 175),
}
TEXTURES = ("plain", "striped", "dotted", "checked")
MUTED = ((128, 128, 128), (140, 110, 80), (196, 186, 160), (110, 118, 72), (72, 82, 100), (165, 148, 148))
MAX_CLASSES = len(SHAPES) * len(COLOURS)
OBJECT_SCALE = (0.32, 0.5)     # object's bounding box side as a fraction of the image side
DISTRACTOR_SCALE = (0.12, 0.3)


def class_attributes(index: int) -> tuple[str, str, str]:
    """(colour, texture, shape) of class `index`; unique for every index below MAX_CLASSES.

    With i = 8a + b the class gets shape b and colour (a + b) mod 8, so the first 8 classes differ
    in both shape and colour, and all 64 (shape, colour) pairs are distinct."""
    block, position = divmod(index, len(SHAPES))
    colour = list(COLOURS)[(block + position) % len(COLOURS)]
    return colour, TEXTURES[(index + block) % len(TEXTURES)], SHAPES[position]


def class_names(num_classes: int) -> list[str]:
    if not 1 <= num_classes <= MAX_CLASSES:
        raise ValueError(f"synthetic scenes support 1 to {MAX_CLASSES} classes, got --num-classes {num_classes}")
    return ["_".join(class_attributes(i)) for i in range(num_classes)]


def unit_polygon(shape: str, aspect: float = 1.0) -> list[tuple[float, float]] | None:
    """Vertices in [-1, 1]^2 (None for the round shapes, drawn as ellipses)."""
    if shape in ("circle", "ring"):
        return None
    if shape == "square":
        return [(-0.82, -0.82), (0.82, -0.82), (0.82, 0.82), (-0.82, 0.82)]
    if shape == "rect":
        return [(-1, -aspect), (1, -aspect), (1, aspect), (-1, aspect)]
    if shape == "triangle":
        return [(0.0, -1.0), (0.95, 0.8), (-0.95, 0.8)]
    if shape == "diamond":
        return [(0.0, -1.0), (0.72, 0.0), (0.0, 1.0), (-0.72, 0.0)]
    if shape == "hexagon":
        return [(math.cos(a), math.sin(a)) for a in np.linspace(0, 2 * math.pi, 6, endpoint=False)]
    if shape == "star":
        return [((1.0 if k % 2 == 0 else 0.42) * math.sin(k * math.pi / 5),
                 -(1.0 if k % 2 == 0 else 0.42) * math.cos(k * math.pi / 5)) for k in range(10)]
    if shape == "cross":
        w = 0.34
        return [(-w, -1), (w, -1), (w, -w), (1, -w), (1, w), (w, w), (w, 1), (-w, 1), (-w, w), (-1, w),
                (-1, -w), (-w, -w)]
    raise ValueError(f"unknown shape {shape!r}")


def shape_mask(size: int, shape: str, cx: float, cy: float, radius: float, angle: float,
               aspect: float = 1.0) -> np.ndarray:
    """Boolean size x size mask of `shape` centred at (cx, cy), `radius` pixels, rotated `angle` rad."""
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    polygon = unit_polygon(shape, aspect)
    if polygon is None:
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=255)
        if shape == "ring":
            inner = radius * 0.55
            draw.ellipse([cx - inner, cy - inner, cx + inner, cy + inner], fill=0)
    else:
        cos, sin = math.cos(angle), math.sin(angle)
        draw.polygon([(cx + radius * (x * cos - y * sin), cy + radius * (x * sin + y * cos)) for x, y in polygon],
                     fill=255)
    return np.asarray(canvas) > 127


def texture(size: int, colour: tuple[int, int, int], kind: str, period: int, rng: np.random.Generator) -> np.ndarray:
    """size x size x 3 float image of `colour` with the texture `kind` (random phase)."""
    base = np.broadcast_to(np.asarray(colour, np.float32), (size, size, 3)).copy()
    if kind == "plain":
        return base
    ys, xs = np.mgrid[0:size, 0:size] + rng.integers(0, period, size=2)[:, None, None]
    if kind == "striped":
        dark = ((xs + ys) // period) % 2 == 1
    elif kind == "checked":
        dark = ((xs // period) + (ys // period)) % 2 == 1
    elif kind == "dotted":
        centre = (period - 1) / 2
        dark = ((xs % period) - centre) ** 2 + ((ys % period) - centre) ** 2 <= (period / 3.2) ** 2
        base[dark] = 0.35 * base[dark] + 0.65 * 255.0
        return base
    else:
        raise ValueError(f"unknown texture {kind!r}")
    base[dark] *= 0.42
    return base


def paint_room(size: int, rng: np.random.Generator) -> np.ndarray:
    """The shared background: two walls meeting at a corner, a floor, sometimes a curtain."""
    wall = rng.uniform(135, 215) + rng.uniform(-18, 18, 3)
    floor = rng.uniform(70, 150) + rng.uniform(-20, 20, 3)
    image = np.empty((size, size, 3), np.float32)
    horizon = int(size * rng.uniform(0.55, 0.8))
    corner = int(size * rng.uniform(0.2, 0.8))
    image[:horizon] = wall
    image[:horizon, corner:] *= 0.82  # the other wall is in shade
    image[horizon:] = floor
    image[:horizon, max(corner - 1, 0):corner + 1] *= 0.6  # the corner edge
    image[max(horizon - 1, 0):horizon + 1] *= 0.7          # the skirting line
    if rng.random() < 0.6:
        width = int(size * rng.uniform(0.14, 0.3))
        left = 0 if rng.random() < 0.5 else size - width
        curtain = np.asarray(MUTED[rng.integers(len(MUTED))], np.float32) * rng.uniform(0.8, 1.2)
        fold = max(2, size // 24)
        shade = 0.75 + 0.25 * (((np.arange(width) // fold) % 2) == 0)
        image[:horizon, left:left + width] = curtain[None, None, :] * shade[None, :, None]
    return image


def render_scene(size: int, label: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(H x W x 3 uint8 image, H x W bool mask of the class object) for one scene."""
    image = paint_room(size, rng)
    for _ in range(int(rng.integers(2, 6))):  # muted furniture
        shape = str(rng.choice(SHAPES + ("rect", "rect")))
        radius = size * rng.uniform(*DISTRACTOR_SCALE) / 2
        mask = shape_mask(size, shape, rng.uniform(0, size), rng.uniform(0, size), radius,
                          rng.uniform(-0.3, 0.3), aspect=rng.uniform(0.3, 1.0))
        colour = tuple(int(c) for c in np.asarray(MUTED[rng.integers(len(MUTED))]) * rng.uniform(0.7, 1.15))
        kind = "striped" if rng.random() < 0.3 else "plain"
        image[mask] = texture(size, colour, kind, max(2, size // 16), rng)[mask]
    for _ in range(int(rng.integers(0, 3))):  # thin saturated rods: colour alone is not the class
        colour = list(COLOURS.values())[rng.integers(len(COLOURS))]
        x0, y0 = rng.uniform(0, size, 2)
        angle, length = rng.uniform(0, math.pi), size * rng.uniform(0.25, 0.5)
        rod = Image.new("L", (size, size), 0)
        ImageDraw.Draw(rod).line([x0, y0, x0 + length * math.cos(angle), y0 + length * math.sin(angle)],
                                 fill=255, width=max(1, size // 40))
        mask = np.asarray(rod) > 127
        image[mask] = colour
    colour, kind, shape = class_attributes(label)
    radius = size * rng.uniform(*OBJECT_SCALE) / 2
    cx, cy = rng.uniform(radius, size - radius, 2)
    mask = shape_mask(size, shape, cx, cy, radius, rng.uniform(-0.26, 0.26))
    tint = np.clip(np.asarray(COLOURS[colour]) * rng.uniform(0.85, 1.1), 0, 255)
    image[mask] = texture(size, tuple(int(c) for c in tint), kind, max(3, int(radius / 2.5)), rng)[mask]
    image += rng.normal(0.0, 5.0, image.shape).astype(np.float32)  # sensor noise
    return np.clip(image, 0, 255).astype(np.uint8), mask


class SyntheticScenes(SceneDataset):
    """`count` scenes of split `split` ("train"/"val"), balanced over `num_classes` labels."""

    SPLIT_STREAMS = {"train": 0, "val": 1}

    def __init__(self, num_classes: int, image_size: int, count: int, seed: int, split: str,
                 augment: PilTransform | None = None) -> None:
        super().__init__(geometry=lambda image: image, augment=augment)  # rendered at the final size
        if split not in self.SPLIT_STREAMS:
            raise ValueError(f"unknown split {split!r}")
        if image_size < 16:
            raise ValueError(f"synthetic scenes need --image-size >= 16, got {image_size}")
        self.class_names = class_names(num_classes)
        self.num_classes, self.image_size, self.count = num_classes, image_size, count
        self.seed, self.split = seed, split

    def __len__(self) -> int:
        return self.count

    @property
    def labels(self) -> list[int]:
        return [index % self.num_classes for index in range(self.count)]

    def load(self, index: int) -> Sample:
        if not 0 <= index < self.count:
            raise IndexError(f"scene index {index} out of range for {self.count} scenes")
        label = index % self.num_classes
        rng = np.random.default_rng([self.seed, self.SPLIT_STREAMS[self.split], index])
        image, mask = render_scene(self.image_size, label, rng)
        return Sample(f"synthetic-{self.seed}-{self.split}-{index}", Image.fromarray(image, "RGB"), label,
                      Image.fromarray(mask.astype(np.uint8) * 255, "L"))
