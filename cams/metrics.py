"""Automatic explanation metrics of a study package, without any person:

    python -m cams.metrics studies/demo [--out DIR] [--sanity]

Per regular item (attention checks are skipped) and method: pointing game and energy inside the
mask (items with a mask), deletion and insertion AUC (the checkpoints named in the manifest's
provenance, checked by sha256), Gini sparseness and entropy. Writes `metrics.csv` (one row per
item and method) and `metrics.md` (per-method means with bootstrap CIs, and the paired
difference proposed - baseline). `--sanity` adds the model-randomisation test of Adebayo et al.
(`sanity.csv` and a table in metrics.md). Definitions: `cams.measures`, docs/cams.md.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from cams.loading import StudyInputError, parse_method_spec
from cams.measures import (
    DEFAULT_STEPS,
    energy_in_mask,
    entropy,
    gini,
    mask_to_bool,
    perturbation_auc,
    perturbation_batch,
    pointing_game,
)
from cams.methods import make_method
from cams.render import postprocess
from cams.sanity import cascading_randomizations, randomization_stages, spearman
from cams.stats import bootstrap_mean, paired_difference
from models.checkpoint import CheckpointError, CheckpointInfo, load_model
from models.data.transforms import to_model_input
from survey.package import PackageError, load_package, resolve_inside

COLUMNS = (
    "item",
    "method",
    "pointing_game",
    "energy_in_mask",
    "deletion_auc",
    "insertion_auc",
    "gini",
    "entropy",
)
METRICS = COLUMNS[2:]
HIGHER_IS_BETTER = {
    "pointing_game": True,
    "energy_in_mask": True,
    "deletion_auc": False,
    "insertion_auc": True,
    "gini": True,
    "entropy": False,
}
TITLES = {
    "pointing_game": "pointing game",
    "energy_in_mask": "energy in mask",
    "deletion_auc": "deletion AUC",
    "insertion_auc": "insertion AUC",
    "gini": "Gini",
    "entropy": "entropy",
}


@dataclass
class ScoredItem:
    """What metrics need of one regular item."""

    id: str
    image: Image.Image
    mask: np.ndarray | None
    heatmaps: dict[str, np.ndarray]
    targets: dict[str, int]
    correct: dict[str, bool]


# -------------------------------------------------------------------------------------- reading
def class_index_of(manifest: dict, infos: dict[str, CheckpointInfo]) -> dict[str, int]:
    """Readable label -> class index, from the package's own class list or else a checkpoint's."""
    labels = manifest.get("cams", {}).get("class_labels")
    if labels is None and infos:
        labels = next(iter(infos.values())).class_labels
    return {label: k for k, label in enumerate(labels or [])}


def read_items(root: Path, manifest: dict, infos: dict[str, CheckpointInfo]) -> list[ScoredItem]:
    """The regular items that carry heatmaps, with their images, masks and target classes."""
    extra = manifest.get("cams", {}).get("items", {})
    index_of = class_index_of(manifest, infos)
    items = []
    for entry in manifest["items"]:
        if entry.get("attention_check") or not entry.get("heatmaps"):
            continue
        heatmaps = {
            m: np.load(resolve_inside(root, p), allow_pickle=False).astype(np.float32)
            for m, p in entry["heatmaps"].items()
        }
        with Image.open(resolve_inside(root, entry["image"])) as image:
            rgb = image.convert("RGB")
        mask = None
        if "mask" in entry:
            with Image.open(resolve_inside(root, entry["mask"])) as picture:
                mask = np.asarray(picture.convert("L"))
        truth = index_of.get(entry["label"])
        targets = dict(extra.get(entry["id"], {}).get("targets", {}))
        for method in heatmaps:
            if method not in targets and truth is not None:
                targets[method] = truth
        correct = {
            m: bool(rows) and rows[0]["label"] == entry["label"]
            for m, rows in entry.get("predictions", {}).items()
        }
        for method, heat in heatmaps.items():
            if heat.shape != (rgb.height, rgb.width):
                raise StudyInputError(
                    f"item {entry['id']}: heatmap of {method} is {heat.shape}, image is "
                    f"{rgb.height}x{rgb.width}; regenerate the package"
                )
        items.append(ScoredItem(entry["id"], rgb, mask, heatmaps, targets, correct))
    if not items:
        raise StudyInputError(
            "the package has no regular items with heatmaps; make it with python -m cams.generate"
        )
    return items


def load_checkpoints(
    manifest: dict, overrides: list[str], device: str
) -> dict[str, tuple[torch.nn.Module, CheckpointInfo]]:
    """Each method's model, from `--checkpoint NAME=PATH` or the manifest's provenance (sha256 checked)."""
    recorded = manifest.get("provenance", {}).get("checkpoints", {})
    given = {}
    for text in overrides:
        spec = parse_method_spec(text)
        given[spec.name] = spec.path
    unknown = sorted(set(given) - set(manifest["methods"]))
    if unknown:
        raise StudyInputError(
            f"--checkpoint names unknown method(s) {unknown}; methods are {manifest['methods']}"
        )
    loaded: dict[str, tuple[torch.nn.Module, CheckpointInfo]] = {}
    by_path: dict[Path, tuple[torch.nn.Module, CheckpointInfo]] = {}
    for method in manifest["methods"]:
        path = given.get(method) or (Path(recorded[method]["path"]) if method in recorded else None)
        if path is None:
            continue
        try:
            key = Path(path).resolve()
            if key not in by_path:
                by_path[key] = load_model(path, device)
        except CheckpointError as error:
            raise StudyInputError(f"method {method!r}: {error}; pass --checkpoint {method}=PATH") from None
        model, info = by_path[key]
        expected = recorded.get(method, {}).get("sha256")
        if expected and info.sha256 != expected and method not in given:
            raise StudyInputError(
                f"checkpoint {info.path} of {method!r} changed since the package was made "
                f"(sha256 {info.sha256[:12]}... != {expected[:12]}...); pass --checkpoint "
                f"{method}=PATH to score with another file on purpose"
            )
        loaded[method] = (model, info)
    return loaded


# -------------------------------------------------------------------------------------- scoring
def map_metrics(heat: np.ndarray, mask: np.ndarray | None) -> dict[str, float]:
    nan = float("nan")
    return {
        "pointing_game": pointing_game(heat, mask) if mask is not None else nan,
        "energy_in_mask": energy_in_mask(heat, mask) if mask is not None else nan,
        "gini": gini(heat),
        "entropy": entropy(heat),
    }


@torch.no_grad()
def perturbation_metrics(
    items: list[ScoredItem],
    methods: list[str],
    models: dict,
    steps: int,
    device: str,
    batch_size: int,
    progress: bool,
) -> dict[tuple[str, str], tuple[float, float]]:
    """(item, method) -> (deletion AUC, insertion AUC). Every perturbation step of an item goes into
    batched forward passes (all methods that share a model together)."""
    results: dict[tuple[str, str], tuple[float, float]] = {}
    per_item = 2 * (steps + 1)
    for item in tqdm(items, desc="deletion/insertion", unit="item", disable=not progress):
        image = to_model_input([item.image])[0].to(device)
        for model in {id(models[m][0]): models[m][0] for m in methods if m in models}.values():
            mine = [m for m in methods if m in models and models[m][0] is model and m in item.targets]
            batches, fractions = [], None
            for method in mine:
                heat = torch.from_numpy(item.heatmaps[method]).to(device)
                for mode in ("deletion", "insertion"):
                    batch, fractions = perturbation_batch(image, heat, mode, steps)
                    batches.append(batch)
            if not batches:
                continue
            stacked = torch.cat(batches)
            probs = torch.cat(
                [
                    model(stacked[k : k + batch_size]).float().softmax(1)
                    for k in range(0, len(stacked), batch_size)
                ]
            )
            for n, method in enumerate(mine):
                p = probs[n * per_item : (n + 1) * per_item, item.targets[method]].cpu().numpy()
                results[(item.id, method)] = (
                    perturbation_auc(p[: steps + 1], fractions),
                    perturbation_auc(p[steps + 1 :], fractions),
                )
    return results


def score(
    items: list[ScoredItem],
    methods: list[str],
    models: dict,
    steps: int,
    device: str,
    batch_size: int,
    progress: bool,
) -> list[dict]:
    """One row per (item, method) with every metric (NaN where it cannot be computed)."""
    curves = (
        perturbation_metrics(items, methods, models, steps, device, batch_size, progress) if models else {}
    )
    rows = []
    for item in items:
        for method in methods:
            if method not in item.heatmaps:
                continue
            row = {"item": item.id, "method": method, **map_metrics(item.heatmaps[method], item.mask)}
            row["deletion_auc"], row["insertion_auc"] = curves.get(
                (item.id, method), (float("nan"), float("nan"))
            )
            rows.append(row)
    return rows


@torch.no_grad()
def sanity_rows(
    items: list[ScoredItem],
    methods: list[str],
    models: dict,
    cams: dict,
    device: str,
    batch_size: int,
    seed: int,
    progress: bool,
) -> list[dict]:
    """Spearman correlation between each item's original map and the map after randomising fc,
    then the feature blocks top-down (cumulative), per method. Methods that share a checkpoint
    share one randomised copy per stage."""
    rows: list[dict] = []
    images = to_model_input([item.image for item in items])
    size = tuple(images.shape[-2:])
    usable = {m: [k for k, item in enumerate(items) if m in item.targets] for m in methods if m in models}

    def heatmaps(net: torch.nn.Module, group: list[str]) -> dict[str, np.ndarray]:
        """Post-processed maps of every method in `group` (one backbone pass per chunk of items)."""
        cams_of = {m: make_method(cams.get(m, {}).get("cam", "cam"), net) for m in group}
        out: dict[str, list[np.ndarray]] = {m: [] for m in group}
        for start in range(0, len(items), batch_size):
            chunk = range(start, min(start + batch_size, len(items)))
            feats = cams_of[group[0]].features(images[start : chunk.stop].to(device))
            for m in group:
                rows_ = [k - start for k in chunk if m in items[k].targets]
                if rows_:
                    classes = torch.tensor([items[start + r].targets[m] for r in rows_], device=feats.device)
                    raw = cams_of[m].maps_from_features(feats[rows_], classes)
                    out[m].append(postprocess(raw, size).cpu().numpy())
        return {m: np.concatenate(v) if v else np.zeros((0, *size)) for m, v in out.items()}

    groups: dict[int, list[str]] = {}
    for method in usable:
        groups.setdefault(id(models[method][0]), []).append(method)
    for group in groups.values():
        model = models[group[0]][0]
        original = heatmaps(model, group)
        stages = randomization_stages(model)
        bar = tqdm(total=len(stages), desc=f"sanity {', '.join(group)}", unit="stage", disable=not progress)
        for stage, randomized in cascading_randomizations(model, seed):
            randomized_maps = heatmaps(randomized, group)
            for method in group:
                for n, k in enumerate(usable[method]):
                    rows.append(
                        {
                            "item": items[k].id,
                            "method": method,
                            "stage": stage,
                            "spearman": spearman(original[method][n], randomized_maps[method][n]),
                        }
                    )
            bar.update(1)
        bar.close()
    order = {m: i for i, m in enumerate(methods)}
    return sorted(rows, key=lambda r: order[r["method"]])


# -------------------------------------------------------------------------------------- writing
def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def csv_text(rows: list[dict], columns: tuple[str, ...]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                k: (
                    ""
                    if isinstance(v, float) and math.isnan(v)
                    else f"{v:.6g}"
                    if isinstance(v, float)
                    else v
                )
                for k, v in row.items()
            }
        )
    return buffer.getvalue()


def metric_table(rows: list[dict], methods: list[str], item_ids: set[str] | None = None) -> list[str]:
    lines = [
        "| method | n | "
        + " | ".join(f"{TITLES[m]} {'↑' if HIGHER_IS_BETTER[m] else '↓'}" for m in METRICS)
        + " |",
        "|---|---|" + "---|" * len(METRICS),
    ]
    for method in methods:
        mine = [r for r in rows if r["method"] == method and (item_ids is None or r["item"] in item_ids)]
        if not mine:
            continue
        cells = [bootstrap_mean([r[m] for r in mine]).format() for m in METRICS]
        lines.append(f"| {method} | {len(mine)} | " + " | ".join(cells) + " |")
    return lines


def difference_table(
    rows: list[dict], first: str, second: str, item_ids: set[str] | None = None
) -> list[str]:
    by_item = {}
    for r in rows:
        if item_ids is None or r["item"] in item_ids:
            by_item.setdefault(r["item"], {})[r["method"]] = r
    paired = [v for v in by_item.values() if first in v and second in v]
    lines = [f"| metric | {first} − {second} [95% CI] | n | better |", "|---|---|---|---|"]
    for m in METRICS:
        est = paired_difference([v[first][m] for v in paired], [v[second][m] for v in paired])
        if est.n == 0:
            verdict = "n/a"
        elif not math.isfinite(est.low):
            verdict = "too few items"
        elif est.low > 0 or est.high < 0:
            verdict = first if (est.mean > 0) == HIGHER_IS_BETTER[m] else second
        else:
            verdict = "no clear difference"
        lines.append(f"| {TITLES[m]} | {est.format()} | {est.n} | {verdict} |")
    return lines


def summary_markdown(
    manifest: dict,
    rows: list[dict],
    items: list[ScoredItem],
    steps: int,
    sanity: list[dict] | None,
    scored_with: dict[str, str],
) -> str:
    methods = [m for m in manifest["methods"] if any(r["method"] == m for r in rows)]
    proposed, baseline = manifest["proposed"], manifest["baseline"]
    both_correct = {i.id for i in items if i.correct.get(proposed) and i.correct.get(baseline)}
    lines = [
        f"# Explanation metrics: {manifest['name']}",
        "",
        (
            f"{len(items)} regular items (attention checks skipped), methods {', '.join(methods)}; "
            f"target class: {manifest.get('cams', {}).get('target', 'as recorded')}. "
            "Means with 95% percentile-bootstrap CIs over items (2000 resamples). Deletion/insertion: "
            f"{steps} steps, deleted pixels set to the dataset mean, insertion starts from a blurred image. "
            "Definitions: docs/cams.md."
        ),
        "",
    ]
    areas = [float(mask_to_bool(i.mask).mean()) for i in items if i.mask is not None]
    if areas:
        lines += [
            (
                "Chance level: a flat map scores the mask's area on both pointing game and energy in mask; "
                f"the mean mask area of these {len(areas)} items is **{np.mean(areas):.3f}**."
            ),
            "",
        ]
    if scored_with:
        lines += ["Checkpoints: " + "; ".join(f"{m}: `{p}`" for m, p in scored_with.items()), ""]
    lines += ["## All items", ""] + metric_table(rows, methods) + [""]
    if proposed in methods and baseline in methods:
        lines += [f"### Paired difference {proposed} − {baseline}", ""] + difference_table(
            rows, proposed, baseline
        )
        lines += [""]
        lines += [f"## Items both {proposed} and {baseline} classify correctly ({len(both_correct)})", ""]
        if both_correct:
            lines += metric_table(rows, methods, both_correct) + [""]
            lines += difference_table(rows, proposed, baseline, both_correct) + [""]
    if sanity:
        stages = list(dict.fromkeys(r["stage"] for r in sanity))
        lines += [
            "## Sanity check: model randomisation (Adebayo et al. 2018)",
            "",
            (
                "Spearman rank correlation between each item's original map and its map after "
                "re-initialising the named layer and every layer above it (left to right: more randomised). "
                "Values near 0 mean the map depends on the weights, as it should; values near 1 mean it "
                "does not."
            ),
            "",
            "| method | " + " | ".join(f"{s}" for s in stages) + " |",
            "|---|" + "---|" * len(stages),
        ]
        for method in dict.fromkeys(r["method"] for r in sanity):
            cells = [
                bootstrap_mean(
                    [r["spearman"] for r in sanity if r["method"] == method and r["stage"] == s]
                ).format(2)
                for s in stages
            ]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cams.metrics",
        description="Automatic explanation metrics of a study package: pointing game, energy in mask, "
        "deletion/insertion AUC, Gini, entropy (metrics.csv + metrics.md); --sanity adds "
        "the model-randomisation test.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("package", type=Path, help="study package folder (from python -m cams.generate)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for metrics.csv/metrics.md (default: PACKAGE-metrics beside the package)",
    )
    parser.add_argument("--sanity", action="store_true", help="also run the model-randomisation sanity check")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="deletion/insertion steps per curve")
    parser.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="use this checkpoint for method NAME instead of the one in the manifest's provenance",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the randomised weights (--sanity)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return parser


def default_metrics_dir(package: Path) -> Path:
    """Beside the package, not in it: the package stays exactly as generated (and blinded)."""
    package = package.absolute()
    return package.with_name(f"{package.name}-metrics")


def run(args: argparse.Namespace) -> tuple[Path, list[dict]]:
    if args.steps < 1 or args.batch_size < 1:
        raise StudyInputError("--steps and --batch-size must be >= 1")
    try:
        manifest = load_package(args.package)
    except PackageError as error:
        raise StudyInputError(str(error).splitlines()[0] + ": " + str(error.problems[0])) from None
    models = load_checkpoints(manifest, args.checkpoint, args.device)
    infos = {m: info for m, (_, info) in models.items()}
    items = read_items(args.package, manifest, infos)
    methods = list(manifest["methods"])
    missing = [m for m in methods if m not in models]
    if missing:
        print(
            f"warning: no checkpoint for {', '.join(missing)}: deletion/insertion left empty"
            + ("" if not args.sanity else " and no sanity check")
            + "; pass --checkpoint NAME=PATH",
            file=sys.stderr,
        )
    rows = score(items, methods, models, args.steps, args.device, args.batch_size, not args.no_progress)
    sanity = None
    if args.sanity:
        sanity = sanity_rows(
            items,
            methods,
            models,
            manifest.get("cams", {}).get("methods", {}),
            args.device,
            args.batch_size,
            args.seed,
            not args.no_progress,
        )
    out = args.out or default_metrics_dir(args.package)
    write_atomic(out / "metrics.csv", csv_text(rows, COLUMNS))
    if sanity is not None:
        write_atomic(out / "sanity.csv", csv_text(sanity, ("item", "method", "stage", "spearman")))
    scored_with = {m: str(info.path) for m, info in infos.items()}
    write_atomic(
        out / "metrics.md", summary_markdown(manifest, rows, items, args.steps, sanity, scored_with) + "\n"
    )
    return out, rows


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        out, rows = run(args)
    except (StudyInputError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: cannot write metrics: {error}", file=sys.stderr)
        return 2
    print(f"wrote {out / 'metrics.csv'} ({len(rows)} rows) and {out / 'metrics.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
