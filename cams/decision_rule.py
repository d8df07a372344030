"""The decision rule of docs/results.md: does VIB move the CAM onto the object? yes / no / inconclusive.

For every method other than the baseline and the control, per metric (energy in mask primary, pointing
game secondary), on all items and on the items every model classifies correctly:

- per seed, the paired per-item difference method - baseline (bootstrap CI over items);
- pooled over seeds, a two-level bootstrap (seeds, then items) of the same differences;
- the control: another seed's baseline shown as a third method, whose difference from the baseline
  on the same items measures seed noise.

"yes": the bottleneck was active in every run of that method, the difference has the same sign in
every seed, the pooled verdict (`cams.verdict`) is the method (its CI excludes 0 the right way), and
|effect| > |control effect|. "yes, the other way (worse)": the same, with the baseline winning. "no":
bottleneck active and the pooled CI lies inside +-0.02 (energy) / +-0.05 (pointing game). Anything
else (including too few items for a CI): "inconclusive". `python -m cams.decision` is the command.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cams.loading import StudyInputError
from cams.metrics import METRICS
from cams.metrics_files import load_scored_packages, regular_items
from cams.stats import Estimate, paired_difference, two_level_bootstrap
from cams.verdict import NOT_COMPUTABLE, TOO_FEW_ITEMS, verdict

DECIDING = ("energy_in_mask", "pointing_game")  # primary, secondary
NO_EFFECT_BAND = {"energy_in_mask": 0.02, "pointing_game": 0.05}
SCOPES = {False: "all items", True: "items every model gets right"}


@dataclass(frozen=True)
class Decision:
    method: str
    metric: str
    scope: str
    per_seed: tuple[Estimate, ...]
    pooled: Estimate
    control: Estimate
    active: bool
    answer: str


def decide(per_seed: list[Estimate], pooled: Estimate, control: Estimate, metric: str, active: bool) -> str:
    """yes / no / inconclusive under the rule above (better = in the metric's good direction)."""
    winner = verdict(pooled, metric, "method", "baseline")
    if not active or winner in (NOT_COMPUTABLE, TOO_FEW_ITEMS):
        return "inconclusive"  # no bottleneck, or no CI to decide on
    sign = 1.0 if METRICS[metric].higher_is_better else -1.0
    same_sign = all(sign * e.mean > 0 for e in per_seed) or all(sign * e.mean < 0 for e in per_seed)
    beyond_control = abs(pooled.mean) > abs(control.mean)
    if same_sign and beyond_control and winner == "method":
        return "yes"
    band = NO_EFFECT_BAND[metric]
    if -band < pooled.low and pooled.high < band:
        return "no"
    if same_sign and beyond_control and winner == "baseline":
        return "yes, the other way (worse)"
    return "inconclusive"


def evaluate(packages: list[Path], control: str, activity: dict[str, bool]) -> list[Decision]:
    """Every decision for one package per seed, each scored by cams.metrics (default folder)."""
    loaded = load_scored_packages(packages)
    first = loaded[0].manifest
    if control not in first["methods"]:
        raise StudyInputError(f"{packages[0]} has no method {control!r}; add another seed's baseline with "
                              f"--method {control}=RUN to cams.generate")
    baseline = first["baseline"]
    methods = [m for m in first["methods"] if m not in (baseline, control)]
    decisions = []
    for both_correct, scope in SCOPES.items():
        for method in methods:
            for metric in DECIDING:
                per_seed, groups, control_groups = [], [], []
                for scored in loaded:
                    ids = regular_items(scored.manifest, both_correct, scored.manifest["methods"])
                    base = np.array(scored.values(baseline, metric, ids))
                    ours = np.array(scored.values(method, metric, ids))
                    other = np.array(scored.values(control, metric, ids))
                    per_seed.append(paired_difference(ours, base))
                    groups.append(ours - base)
                    control_groups.append(other - base)
                pooled, control_effect = two_level_bootstrap(groups), two_level_bootstrap(control_groups)
                active = activity.get(method, False)
                decisions.append(Decision(method, metric, scope, tuple(per_seed), pooled, control_effect, active,
                                          decide(per_seed, pooled, control_effect, metric, active)))
    return decisions
