"""The files `python -m cams.metrics` writes beside a package, and how later steps read them back.

`PACKAGE-metrics/` holds `metrics.csv` (one row per item and method, columns `cams.metrics.COLUMNS`),
`metrics.md` and, with `--sanity`, `sanity.csv` (`SANITY_COLUMNS`). Beside the package, never inside
it: the package stays exactly as generated (and blinded). `cams.compare` and `cams.decision` read
them through `load_scored_packages`. Writes are atomic (`fileio`).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

from cams.loading import StudyInputError
from cams.metrics import COLUMNS, METRICS
from fileio import write_text_atomic
from survey.package import PackageError, load_package

METRICS_CSV = "metrics.csv"
METRICS_MD = "metrics.md"
SANITY_CSV = "sanity.csv"
SANITY_COLUMNS = ("item", "method", "stage", "spearman")
DEFAULT_SUFFIX = "-metrics"


def metrics_dir(package: Path, suffix: str = DEFAULT_SUFFIX) -> Path:
    """`PACKAGE<suffix>` beside the package (default `PACKAGE-metrics`)."""
    package = Path(package).absolute()
    return package.with_name(f"{package.name}{suffix}")


def csv_text(rows: list[dict], columns: tuple[str, ...]) -> str:
    """CSV with `columns` in order; floats as %.6g, NaN as an empty cell."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({
            k: ("" if isinstance(v, float) and math.isnan(v) else f"{v:.6g}" if isinstance(v, float) else v)
            for k, v in row.items()
        })
    return buffer.getvalue()


def write_csv(path: Path, rows: list[dict], columns: tuple[str, ...]) -> None:
    write_text_atomic(path, csv_text(rows, columns), newline="")


def read_metrics(path: Path) -> dict[tuple[str, str], dict[str, float]]:
    """(item, method) -> metric values (NaN for empty cells) of a metrics.csv."""
    if not path.is_file():
        raise StudyInputError(f"{path} not found; run python -m cams.metrics on the package first")
    with open(path, newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise StudyInputError(f"{path} has columns {reader.fieldnames}, not {list(COLUMNS)}; "
                                  "score the package again with python -m cams.metrics")
        return {
            (row["item"], row["method"]): {m: float(row[m]) if row[m] != "" else math.nan for m in METRICS}
            for row in reader
        }


@dataclass(frozen=True)
class ScoredPackage:
    """A study package with the metrics of its `cams.metrics` folder."""

    path: Path
    manifest: dict
    metrics: dict[tuple[str, str], dict[str, float]]

    def values(self, method: str, metric: str, items: list[str]) -> list[float]:
        """`metric` of `method` on each of `items` (NaN where not scored)."""
        return [self.metrics.get((i, method), {}).get(metric, math.nan) for i in items]


def load_scored_packages(packages: list[Path], suffix: str = DEFAULT_SUFFIX) -> list[ScoredPackage]:
    """Each study package (validated) with its metrics (`PACKAGE<suffix>/metrics.csv`)."""
    loaded = []
    for package in packages:
        try:
            manifest = load_package(package)
        except PackageError as error:
            raise StudyInputError(f"{package}: {error.problems[0]}") from None
        loaded.append(ScoredPackage(package, manifest, read_metrics(metrics_dir(package, suffix) / METRICS_CSV)))
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
