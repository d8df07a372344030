"""Scoring a study package: read its items, load the checkpoints it names, compute every metric of the
registry (`cams.metrics.METRICS`) per item and method, and the model-randomisation sanity check.

Plain functions returning rows (dicts keyed by `cams.metrics.COLUMNS`); writing and Markdown are
`cams.metrics_files` and `cams.reports`, the command line `python -m cams.metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from cams.explain import explain
from cams.loading import StudyInputError, parse_method_spec
from cams.methods import make_method
from cams.metrics import MAP_METRICS, METRICS, PERTURBATION_METRICS
from cams.render import postprocess
from cams.sanity import cascading_randomizations, randomization_stages, spearman
from models.checkpoint import CheckpointError, CheckpointInfo, load_model
from models.data.transforms import to_model_input
from survey.package import CamsSection, resolve_inside

Models = dict[str, tuple[torch.nn.Module, CheckpointInfo]]  # method -> (model, checkpoint info)


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
def class_index_of(section: CamsSection | None, infos: dict[str, CheckpointInfo]) -> dict[str, int]:
    """Readable label -> class index, from the package's own class list or else a checkpoint's."""
    labels = section.class_labels if section is not None else None
    if labels is None and infos:
        labels = next(iter(infos.values())).class_labels
    return {label: k for k, label in enumerate(labels or [])}


def read_items(
    root: Path, manifest: dict, section: CamsSection | None, infos: dict[str, CheckpointInfo]
) -> list[ScoredItem]:
    """The regular items that carry heatmaps, with their images, masks and target classes: the class
    each map explains as recorded in the `cams` section, else (a package made by hand) the true class."""
    index_of = class_index_of(section, infos)
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
        if section is not None:
            targets = dict(section.items[entry["id"]].targets)
        else:
            truth = index_of.get(entry["label"])
            targets = {} if truth is None else {method: truth for method in heatmaps}
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


def load_checkpoints(manifest: dict, overrides: list[str], device: str) -> Models:
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
    loaded: Models = {}
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
def map_scores(heat: np.ndarray, mask: np.ndarray | None) -> dict[str, float]:
    """Every map metric of one heatmap (NaN for the mask metrics without a mask)."""
    return {metric.name: metric(heat, mask) for metric in MAP_METRICS}


@torch.no_grad()
def perturbation_scores(
    items: list[ScoredItem], methods: list[str], models: Models, steps: int, device: str,
    batch_size: int, progress: bool,
) -> dict[tuple[str, str], dict[str, float]]:
    """(item, method) -> every perturbation metric. All curves of an item that share a model (every
    metric of every method on it) go through batched forward passes together."""
    results: dict[tuple[str, str], dict[str, float]] = {}
    curve = steps + 1
    for item in tqdm(items, desc="deletion/insertion", unit="item", disable=not progress):
        image = to_model_input([item.image])[0].to(device)
        for model in {id(models[m][0]): models[m][0] for m in methods if m in models}.values():
            mine = [m for m in methods if m in models and models[m][0] is model and m in item.targets]
            if not mine:
                continue
            batches, fractions = [], None
            for method in mine:
                heat = torch.from_numpy(item.heatmaps[method]).to(device)
                for metric in PERTURBATION_METRICS:
                    batch, fractions = metric.batch(image, heat, steps)
                    batches.append(batch)
            stacked = torch.cat(batches)
            probs = torch.cat(
                [model(stacked[k : k + batch_size]).float().softmax(1) for k in range(0, len(stacked), batch_size)]
            )
            for n, method in enumerate(mine):
                p = probs[n * len(PERTURBATION_METRICS) * curve :, item.targets[method]].cpu().numpy()
                results[(item.id, method)] = {
                    metric.name: metric.area(p[k * curve : (k + 1) * curve], fractions)
                    for k, metric in enumerate(PERTURBATION_METRICS)
                }
    return results


def score(
    items: list[ScoredItem], methods: list[str], models: Models, steps: int, device: str,
    batch_size: int, progress: bool,
) -> list[dict]:
    """One row per (item, method) with every metric (NaN where it cannot be computed)."""
    curves = perturbation_scores(items, methods, models, steps, device, batch_size, progress) if models else {}
    rows = []
    for item in items:
        for method in methods:
            if method not in item.heatmaps:
                continue
            row = {"item": item.id, "method": method, **{name: float("nan") for name in METRICS}}
            row.update(map_scores(item.heatmaps[method], item.mask))
            row.update(curves.get((item.id, method), {}))
            rows.append(row)
    return rows


@torch.no_grad()
def sanity_rows(
    items: list[ScoredItem], methods: list[str], models: Models, section: CamsSection | None, device: str,
    batch_size: int, seed: int, progress: bool,
) -> list[dict]:
    """Spearman correlation between each item's original map and the map after randomising fc,
    then the feature blocks top-down (cumulative), per method. Methods that share a checkpoint
    share one randomised copy per stage, and one backbone pass per chunk of items (`explain`)."""
    rows: list[dict] = []
    images = to_model_input([item.image for item in items])
    size = tuple(images.shape[-2:])
    usable = {m: [k for k, item in enumerate(items) if m in item.targets] for m in methods if m in models}

    def heatmaps(net: torch.nn.Module, group: list[str]) -> dict[str, np.ndarray]:
        """Post-processed maps of every method in `group` on `net`, for the items each can score."""
        cams_of = {m: make_method(section.methods[m].cam if section else "cam", net) for m in group}
        out: dict[str, list[np.ndarray]] = {m: [] for m in group}
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            classes = {m: [item.targets.get(m, 0) for item in chunk] for m in group}  # 0: dropped below
            batches = explain(cams_of, images[start : start + len(chunk)].to(device), classes=classes)
            for m in group:
                keep = [j for j, item in enumerate(chunk) if m in item.targets]
                if keep:
                    out[m].append(postprocess(batches[m].maps[keep], size).cpu().numpy())
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
                    rows.append({
                        "item": items[k].id,
                        "method": method,
                        "stage": stage,
                        "spearman": spearman(original[method][n], randomized_maps[method][n]),
                    })
            bar.update(1)
        bar.close()
    order = {m: i for i, m in enumerate(methods)}
    return sorted(rows, key=lambda r: order[r["method"]])
