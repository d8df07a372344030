"""The paper figure's columns: input | baseline | proposed | others, whatever the manifest's order,
checked on the pixels of the written PNG (each method's map is a solid, distinct colour)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from cams.paper_figure import draw_figure, figure_columns

COLOURS = {"input": (128, 128, 128), "baseline": (255, 0, 0), "vib": (0, 200, 0), "gradcam": (0, 0, 255)}


def test_columns_are_baseline_then_proposed_then_the_rest() -> None:
    manifest = {"methods": ["vib", "gradcam", "baseline", "lime"], "baseline": "baseline", "proposed": "vib"}
    assert figure_columns(manifest) == ["baseline", "vib", "gradcam", "lime"]
    swapped = {"methods": ["a", "b"], "baseline": "b", "proposed": "a"}
    assert figure_columns(swapped) == ["b", "a"]


def test_each_map_is_drawn_in_its_methods_column(tmp_path: Path) -> None:
    for name, colour in COLOURS.items():
        Image.new("RGB", (32, 32), colour).save(tmp_path / f"{name}.png")
    item = {"id": "i1", "label": "abbey", "image": "input.png", "attention_check": False,
            "maps": {m: f"{m}.png" for m in ("vib", "gradcam", "baseline")},
            "predictions": {"vib": [{"label": "abbey", "p": 0.9}], "baseline": [{"label": "barn", "p": 0.6}]}}
    check = dict(item, id="c1", attention_check=True, image="baseline.png")  # never drawn
    manifest = {"methods": ["vib", "gradcam", "baseline"], "baseline": "baseline", "proposed": "vib",
                "items": [check, item]}
    out = draw_figure(tmp_path, manifest, items=1, out=tmp_path / "fig" / "figure.png", dpi=40)
    pixels = np.asarray(Image.open(out).convert("RGB")).astype(int)
    height, width, _ = pixels.shape
    centres = [pixels[height // 2, int((c + 0.5) * width / 4)] for c in range(4)]
    for centre, name in zip(centres, ["input", "baseline", "vib", "gradcam"]):
        assert np.abs(centre - COLOURS[name]).max() <= 3, (name, centre)
    assert not list((tmp_path / "fig").glob(".*"))  # no temporary file left
