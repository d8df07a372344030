"""The paper's figure from a study package: one row per sample, input | baseline | proposed (| more).

    python -m cams.figure studies/demo --out figure.png --items 6

Columns are labelled with the method names and each map with that model's top-1 prediction, so
this figure reveals which map is which by design: it is for the paper, never for raters.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from PIL import Image

from survey.package import PackageError, load_package, resolve_inside


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
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".png", dir=out.parent)
    os.close(handle)
    try:
        fig.savefig(temporary, dpi=dpi, format="png")
        os.replace(temporary, out)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
    return out


def default_figure_path(package: Path) -> Path:
    """Beside the package, not in it: the figure names the methods, the package must not."""
    package = package.absolute()
    return package.with_name(f"{package.name}-figure.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cams.figure",
        description="Draw the paper's figure (input | baseline | proposed, with labels and predictions) "
        "from a study package. It names the methods: for the paper, not for raters.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("package", type=Path, help="study package folder")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="PNG to write (default: PACKAGE-figure.png beside the package, never inside it)",
    )
    parser.add_argument("--items", type=int, default=6, help="rows (regular items, in manifest order)")
    args = parser.parse_args(argv)
    if args.items < 1:
        print("error: --items must be >= 1", file=sys.stderr)
        return 2
    try:
        manifest = load_package(args.package)
    except PackageError as error:
        print(f"error: {str(error).splitlines()[0]} {error.problems[0]}", file=sys.stderr)
        return 2
    out = draw_figure(args.package, manifest, args.items, args.out or default_figure_path(args.package))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
