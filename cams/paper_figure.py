"""The paper's figure from a study package: one row per sample, input | baseline | proposed (| more).

Columns are labelled with the method names and each map with that model's top-1 prediction, so
this figure reveals which map is which by design: it is for the paper, never for raters. It is drawn
from the package's own overlay PNGs, so it shows exactly what raters saw. `python -m cams.figure` is
the command.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from fileio import write_with_atomic
from survey.package import resolve_inside


def figure_columns(manifest: dict) -> list[str]:
    """Baseline first, then the proposed method, then any others (the paper's order)."""
    rest = [m for m in manifest["methods"] if m not in (manifest["baseline"], manifest["proposed"])]
    return [manifest["baseline"], manifest["proposed"], *rest]


def prediction_text(item: dict, method: str) -> str:
    rows = item.get("predictions", {}).get(method)
    if not rows:
        return ""
    top = rows[0]
    mark = "✓" if top["label"] == item["label"] else "✗"
    return f"{mark} {top['label']} ({top['p']:.2f})"


def draw_figure(root: Path, manifest: dict, items: int, out: Path, dpi: int = 150) -> Path:
    """Render the figure to `out` (PNG, written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [item for item in manifest["items"] if not item.get("attention_check")][:items]
    columns = figure_columns(manifest)
    fig, axes = plt.subplots(
        len(rows), 1 + len(columns), figsize=(2.2 * (1 + len(columns)), 2.35 * len(rows)), squeeze=False
    )
    try:
        for r, item in enumerate(rows):
            panels = [("input", item["image"], item["label"])]
            panels += [(method, item["maps"][method], prediction_text(item, method)) for method in columns]
            for c, (title, relative, caption) in enumerate(panels):
                ax = axes[r][c]
                with Image.open(resolve_inside(root, relative)) as picture:
                    ax.imshow(picture.convert("RGB"))
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(title, fontsize=10, fontweight="bold")
                ax.set_xlabel(caption, fontsize=7)
        fig.tight_layout()
        write_with_atomic(out, lambda temporary: fig.savefig(temporary, dpi=dpi, format="png"), suffix=".png")
    finally:
        plt.close(fig)
    return out


def default_figure_path(package: Path) -> Path:
    """Beside the package, not in it: the figure names the methods, the package must not."""
    package = package.absolute()
    return package.with_name(f"{package.name}-figure.png")
