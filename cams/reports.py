"""The Markdown reports of the cams commands: `metrics.md` (cams.metrics), the pooled comparison
(cams.compare) and the decision table (cams.decision).

Reports only format: the numbers come from `cams.stats`, which method wins from `cams.verdict`, titles
and directions from the metric registry (`cams.metrics.METRICS`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from cams.decision_rule import Decision
from cams.loading import StudyInputError
from cams.metrics import METRICS
from cams.metrics.maps import mask_to_bool
from cams.metrics_files import ScoredPackage, regular_items
from cams.scoring import ScoredItem
from cams.stats import bootstrap_mean, paired_difference, two_level_bootstrap
from cams.verdict import verdict
from survey.package import CamsSection, resolve_inside


def metric_header(first: str, count: str) -> list[str]:
    """The header of a per-method table: one column per metric, titled with its direction."""
    return [
        f"| {first} | {count} | " + " | ".join(f"{m.title} {m.arrow}" for m in METRICS.values()) + " |",
        "|---|---|" + "---|" * len(METRICS),
    ]


# -------------------------------------------------------------------------------------- metrics.md
def metric_table(rows: list[dict], methods: list[str], item_ids: set[str] | None = None) -> list[str]:
    lines = metric_header("method", "n")
    for method in methods:
        mine = [r for r in rows if r["method"] == method and (item_ids is None or r["item"] in item_ids)]
        if not mine:
            continue
        cells = [bootstrap_mean([r[m] for r in mine]).format() for m in METRICS]
        lines.append(f"| {method} | {len(mine)} | " + " | ".join(cells) + " |")
    return lines


def difference_table(rows: list[dict], first: str, second: str, item_ids: set[str] | None = None) -> list[str]:
    by_item: dict[str, dict[str, dict]] = {}
    for r in rows:
        if item_ids is None or r["item"] in item_ids:
            by_item.setdefault(r["item"], {})[r["method"]] = r
    paired = [v for v in by_item.values() if first in v and second in v]
    lines = [f"| metric | {first} − {second} [95% CI] | n | better |", "|---|---|---|---|"]
    for metric in METRICS.values():
        est = paired_difference([v[first][metric.name] for v in paired], [v[second][metric.name] for v in paired])
        lines.append(f"| {metric.title} | {est.format()} | {est.n} | {verdict(est, metric, first, second)} |")
    return lines


def sanity_table(sanity: list[dict]) -> list[str]:
    stages = list(dict.fromkeys(r["stage"] for r in sanity))
    lines = [
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
            bootstrap_mean([r["spearman"] for r in sanity if r["method"] == method and r["stage"] == s]).format(2)
            for s in stages
        ]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines + [""]


def metrics_markdown(
    manifest: dict,
    section: CamsSection | None,
    rows: list[dict],
    items: list[ScoredItem],
    steps: int,
    sanity: list[dict] | None,
    scored_with: dict[str, str],
) -> str:
    """metrics.md: per-method means, the paired difference proposed − baseline, both again on the items
    both classify correctly, and the sanity check's table."""
    methods = [m for m in manifest["methods"] if any(r["method"] == m for r in rows)]
    proposed, baseline = manifest["proposed"], manifest["baseline"]
    both_correct = {i.id for i in items if i.correct.get(proposed) and i.correct.get(baseline)}
    lines = [
        f"# Explanation metrics: {manifest['name']}",
        "",
        (
            f"{len(items)} regular items (attention checks skipped), methods {', '.join(methods)}; "
            f"target class: {section.target if section else 'as recorded'}. "
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
        lines += [f"### Paired difference {proposed} − {baseline}", ""]
        lines += difference_table(rows, proposed, baseline) + [""]
        lines += [f"## Items both {proposed} and {baseline} classify correctly ({len(both_correct)})", ""]
        if both_correct:
            lines += metric_table(rows, methods, both_correct) + [""]
            lines += difference_table(rows, proposed, baseline, both_correct) + [""]
    if sanity:
        lines += sanity_table(sanity)
    return "\n".join(lines) + "\n"


# -------------------------------------------------------------------------------- cams.compare
def mask_area(package: Path, item: dict) -> float:
    """Share of the image the item's mask covers (what a flat map scores on the mask metrics)."""
    with Image.open(resolve_inside(package, item["mask"])) as mask:
        return float(mask_to_bool(np.asarray(mask.convert("L"))).mean())


def pooled_markdown(loaded: list[ScoredPackage], both_correct: bool) -> str:
    """Every method against the baseline, per package (paired bootstrap over items) and pooled over
    packages (two-level bootstrap). The packages must compare the same methods."""
    baseline = loaded[0].manifest["baseline"]
    methods = [m for m in loaded[0].manifest["methods"] if m != baseline]
    for scored in loaded:
        manifest = scored.manifest
        if manifest["baseline"] != baseline or [m for m in manifest["methods"] if m != baseline] != methods:
            raise StudyInputError(
                f"{scored.path} compares {manifest['methods']}, not {[baseline, *methods]}; "
                "pool packages made with the same method names"
            )
    items = [regular_items(s.manifest, both_correct, s.manifest["methods"]) for s in loaded]
    scope = "items every model classifies correctly" if both_correct else "all regular items"
    lines = [
        (
            f"Pooled over {len(loaded)} packages ({', '.join(s.path.name for s in loaded)}), {scope}; 95% CIs: "
            "per package a paired bootstrap over items, pooled a two-level bootstrap (packages, then items)."
        ),
        "",
    ]
    areas = []
    for scored, kept in zip(loaded, items):
        areas += [mask_area(scored.path, i) for i in scored.manifest["items"] if i["id"] in kept and "mask" in i]
    if areas:
        lines += [
            (
                "Chance level (a flat map) for pointing game and energy in mask: the mean mask area, "
                f"{np.mean(areas):.3f} over these {len(areas)} items."
            ),
            "",
        ]
    lines += metric_header("method", "n items")
    for method in [baseline, *methods]:
        estimates = [
            two_level_bootstrap([np.array(s.values(method, metric, ids)) for s, ids in zip(loaded, items)])
            for metric in METRICS
        ]
        count = max(e.n for e in estimates)
        lines.append(f"| {method} | {count} | " + " | ".join(e.format() for e in estimates) + " |")
    for method in methods:
        lines += [
            "",
            f"**{method} − {baseline}** (paired per item)",
            "",
            "| metric | " + " | ".join(s.path.name for s in loaded) + " | pooled | better (pooled) |",
            "|---|" + "---|" * (len(loaded) + 2),
        ]
        for metric in METRICS.values():
            cells, groups = [], []
            for scored, ids in zip(loaded, items):
                a = np.array(scored.values(method, metric.name, ids))
                b = np.array(scored.values(baseline, metric.name, ids))
                cells.append(paired_difference(a, b).format())
                groups.append(a - b)
            pooled = two_level_bootstrap(groups)
            lines.append(
                f"| {metric.title} | " + " | ".join(cells) + f" | {pooled.format()} | "
                f"{verdict(pooled, metric, method, baseline)} |"
            )
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------- cams.decision
def decision_markdown(decisions: list[Decision], seeds: int) -> str:
    lines = [
        "| method | scope | metric | " + " | ".join(f"seed {k}" for k in range(seeds))
        + " | pooled | control (baseline seed 3 − baseline) | bottleneck active | answer |",
        "|---|---|---|" + "---|" * seeds + "---|---|---|---|",
    ]
    for d in decisions:
        lines.append(
            f"| {d.method} | {d.scope} | {METRICS[d.metric].title} | " + " | ".join(e.format() for e in d.per_seed)
            + f" | {d.pooled.format()} | {d.control.format()} | {'yes' if d.active else 'no'} | **{d.answer}** |"
        )
    return "\n".join(lines) + "\n"
