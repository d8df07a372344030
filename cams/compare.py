"""Pool the metrics of several study packages (one per training seed) into one comparison table.

    python -m cams.compare studies/seed0 studies/seed1 studies/seed2 --out results.md

Each package's metrics are read from `PACKAGE-metrics/metrics.csv` (what `python -m cams.metrics
PACKAGE` writes by default; `--metrics-suffix` changes it). Every method is compared with the
baseline, per package (paired over items, bootstrap CI) and pooled over packages with a two-level
bootstrap (resample packages, then items within each), because seeds, not only items, vary: a
difference that one seed shows and the others do not is not a property of the method.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from cams.loading import StudyInputError
from cams.measures import mask_to_bool
from cams.metrics import HIGHER_IS_BETTER, METRICS, TITLES, write_atomic
from cams.stats import DEFAULT_RESAMPLES, Estimate, bootstrap_mean, paired_difference
from survey.package import PackageError, load_package, resolve_inside


def read_metrics(path: Path) -> dict[tuple[str, str], dict[str, float]]:
    """(item, method) -> metric values (NaN for empty cells)."""
    if not path.is_file():
        raise StudyInputError(f"{path} not found; run python -m cams.metrics on the package first")
    with open(path, newline="", encoding="utf-8") as stream:
        return {
            (row["item"], row["method"]): {m: float(row[m]) if row[m] != "" else math.nan for m in METRICS}
            for row in csv.DictReader(stream)
        }


def mask_area(package: Path, item: dict) -> float:
    """Share of the image the item's mask covers (what a flat map scores on the mask metrics)."""
    with Image.open(resolve_inside(package, item["mask"])) as mask:
        return float(mask_to_bool(np.asarray(mask.convert("L"))).mean())


def two_level_bootstrap(
    groups: list[np.ndarray], resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> Estimate:
    """Mean over all finite values, CI from resampling groups, then values within each group."""
    groups = [g[np.isfinite(g)] for g in groups]
    groups = [g for g in groups if g.size]
    if not groups:
        return Estimate(math.nan, math.nan, math.nan, 0)
    pooled = np.concatenate(groups)
    if len(groups) < 2:
        return bootstrap_mean(pooled, resamples, seed=seed)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for r in range(resamples):
        picked = [groups[k] for k in rng.integers(0, len(groups), len(groups))]
        means[r] = np.concatenate([g[rng.integers(0, g.size, g.size)] for g in picked]).mean()
    low, high = np.quantile(means, [0.025, 0.975])
    return Estimate(float(pooled.mean()), float(low), float(high), int(pooled.size))


def verdict(est: Estimate, metric: str, method: str, baseline: str) -> str:
    if est.n == 0 or not math.isfinite(est.low):
        return "n/a"
    if est.low > 0 or est.high < 0:
        return method if (est.mean > 0) == HIGHER_IS_BETTER[metric] else baseline
    return "no clear difference"


def load_scored_packages(packages: list[Path], suffix: str) -> list[tuple[Path, dict, dict]]:
    """(package, manifest, metrics) for each study package and its `cams.metrics` folder (name + suffix)."""
    loaded = []
    for package in packages:
        try:
            manifest = load_package(package)
        except PackageError as error:
            raise StudyInputError(f"{package}: {error.problems[0]}") from None
        metrics = read_metrics(package.absolute().with_name(package.absolute().name + suffix) / "metrics.csv")
        loaded.append((package, manifest, metrics))
    return loaded


def regular_items(manifest: dict, both_correct: bool, methods: list[str]) -> list[str]:
    """Ids of the items that are not attention checks; with `both_correct`, only those whose top-1
    prediction is the true label for every one of `methods`."""
    keep = []
    for item in manifest["items"]:
        if item.get("attention_check"):
            continue
        predictions = item.get("predictions", {})
        correct = all(predictions.get(m, [{}])[0].get("label") == item["label"] for m in methods)
        if correct or not both_correct:
            keep.append(item["id"])
    return keep


def compare(packages: list[Path], suffix: str, both_correct: bool) -> str:
    loaded = load_scored_packages(packages, suffix)
    baseline = loaded[0][1]["baseline"]
    methods = [m for m in loaded[0][1]["methods"] if m != baseline]
    for package, manifest, _ in loaded:
        if manifest["baseline"] != baseline or [m for m in manifest["methods"] if m != baseline] != methods:
            raise StudyInputError(
                f"{package} compares {manifest['methods']}, not {[baseline, *methods]}; "
                "pool packages made with the same method names"
            )

    def items_of(manifest: dict) -> list[str]:
        return regular_items(manifest, both_correct, manifest["methods"])

    scope = "items every model classifies correctly" if both_correct else "all regular items"
    names = ", ".join(p.name for p, _, _ in loaded)
    lines = [
        (
            f"Pooled over {len(loaded)} packages ({names}), {scope}; 95% CIs: per package a paired "
            "bootstrap over items, pooled a two-level bootstrap (packages, then items)."
        ),
        "",
    ]
    areas = []
    for package, manifest, _ in loaded:
        kept = set(items_of(manifest))
        areas += [mask_area(package, i) for i in manifest["items"] if i["id"] in kept and "mask" in i]
    if areas:
        lines += [
            (
                "Chance level (a flat map) for pointing game and energy in mask: the mean mask area, "
                f"{np.mean(areas):.3f} over these {len(areas)} items."
            ),
            "",
        ]
    lines += [
        "| method | n items | "
        + " | ".join(f"{TITLES[m]} {'↑' if HIGHER_IS_BETTER[m] else '↓'}" for m in METRICS)
        + " |",
        "|---|---|" + "---|" * len(METRICS),
    ]
    for method in [baseline, *methods]:
        cells, count = [], 0
        for metric in METRICS:
            groups = [
                np.array([metrics.get((i, method), {}).get(metric, math.nan) for i in items_of(manifest)])
                for _, manifest, metrics in loaded
            ]
            est = two_level_bootstrap(groups)
            cells.append(est.format())
            count = max(count, est.n)
        lines.append(f"| {method} | {count} | " + " | ".join(cells) + " |")
    for method in methods:
        lines += [
            "",
            f"**{method} − {baseline}** (paired per item)",
            "",
            "| metric | " + " | ".join(p.name for p, _, _ in loaded) + " | pooled | better (pooled) |",
            "|---|" + "---|" * (len(loaded) + 2),
        ]
        for metric in METRICS:
            cells, groups = [], []
            for _, manifest, metrics in loaded:
                ids = items_of(manifest)
                a = np.array([metrics.get((i, method), {}).get(metric, math.nan) for i in ids])
                b = np.array([metrics.get((i, baseline), {}).get(metric, math.nan) for i in ids])
                cells.append(paired_difference(a, b).format())
                groups.append(a - b)
            pooled = two_level_bootstrap(groups)
            lines.append(
                f"| {TITLES[metric]} | " + " | ".join(cells) + f" | {pooled.format()} | "
                f"{verdict(pooled, metric, method, baseline)} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cams.compare",
        description="Pool cams.metrics results of several packages (e.g. one per seed): every method vs the "
        "baseline, per package and pooled with a two-level bootstrap.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "packages", type=Path, nargs="+", help="study packages, each already scored by cams.metrics"
    )
    parser.add_argument(
        "--metrics-suffix",
        default="-metrics",
        help="metrics folder of PACKAGE is PACKAGE<suffix> (cams.metrics' default)",
    )
    parser.add_argument(
        "--both-correct",
        action="store_true",
        help="only items that every model in the package classifies correctly",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown here (default: print it)")
    args = parser.parse_args(argv)
    try:
        text = compare(args.packages, args.metrics_suffix, args.both_correct)
    except StudyInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.out:
        write_atomic(args.out, text)
        print(f"wrote {args.out}")
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
