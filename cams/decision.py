"""The decision rule of docs/results.md: does VIB move the CAM onto the object? yes / no / inconclusive.

    python -m cams.decision studies/results/seed0 studies/results/seed1 studies/results/seed2 \
        --control control --runs runs/results --out studies/results/decision.md

For every method other than the baseline and the control, per metric (energy in mask primary, pointing
game secondary), on all items and on the items every model classifies correctly:

- per seed, the paired per-item difference method - baseline (bootstrap CI over items);
- pooled over seeds, a two-level bootstrap (seeds, then items) of the same differences;
- the control: another seed's baseline shown as a third method, whose difference from the baseline
  on the same items measures seed noise.

"yes": the bottleneck was active in every run of that method, the difference has the same sign in
every seed, the pooled CI excludes 0, and |effect| > |control effect| (and its CI excludes 0 the
right way: better for the method). "no": bottleneck active and the pooled CI lies inside
+-0.02 (energy) / +-0.05 (pointing game). Anything else: "inconclusive".
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cams.compare import load_scored_packages, regular_items, two_level_bootstrap
from cams.loading import StudyInputError
from cams.metrics import HIGHER_IS_BETTER, TITLES, write_atomic
from cams.stats import Estimate, paired_difference

DECIDING = ("energy_in_mask", "pointing_game")  # primary, secondary
NO_EFFECT_BAND = {"energy_in_mask": 0.02, "pointing_game": 0.05}


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
    if not active or pooled.n == 0 or not math.isfinite(pooled.low):
        return "inconclusive"
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    better = [sign * e.mean > 0 for e in per_seed]
    worse = [sign * e.mean < 0 for e in per_seed]
    same_sign = all(better) or all(worse)
    excludes_zero = pooled.low > 0 or pooled.high < 0
    beyond_control = abs(pooled.mean) > abs(control.mean)
    if same_sign and excludes_zero and beyond_control and all(better):
        return "yes"
    band = NO_EFFECT_BAND[metric]
    if -band < pooled.low and pooled.high < band:
        return "no"
    if same_sign and excludes_zero and beyond_control:
        return "yes, the other way (worse)"
    return "inconclusive"


def evaluate(packages: list[Path], control: str, activity: dict[str, bool]) -> list[Decision]:
    loaded = [(manifest, metrics) for _, manifest, metrics in load_scored_packages(packages, "-metrics")]
    baseline = loaded[0][0]["baseline"]
    methods = [m for m in loaded[0][0]["methods"] if m not in (baseline, control)]
    if control not in loaded[0][0]["methods"]:
        raise StudyInputError(f"{packages[0]} has no method {control!r}; add another seed's baseline with "
                              f"--method {control}=RUN to cams.generate")
    decisions = []
    for both_correct in (False, True):
        scope = "items every model gets right" if both_correct else "all items"
        for method in methods:
            for metric in DECIDING:
                per_seed, groups, control_groups = [], [], []
                for manifest, metrics in loaded:
                    ids = regular_items(manifest, both_correct, manifest["methods"])
                    base = np.array([metrics.get((i, baseline), {}).get(metric, math.nan) for i in ids])
                    ours = np.array([metrics.get((i, method), {}).get(metric, math.nan) for i in ids])
                    other = np.array([metrics.get((i, control), {}).get(metric, math.nan) for i in ids])
                    per_seed.append(paired_difference(ours, base))
                    groups.append(ours - base)
                    control_groups.append(other - base)
                pooled, control_effect = two_level_bootstrap(groups), two_level_bootstrap(control_groups)
                active = activity.get(method, False)
                decisions.append(Decision(method, metric, scope, tuple(per_seed), pooled, control_effect, active,
                                          decide(per_seed, pooled, control_effect, metric, active)))
    return decisions


def markdown(decisions: list[Decision], seeds: int) -> str:
    lines = ["| method | scope | metric | " + " | ".join(f"seed {k}" for k in range(seeds)) +
             " | pooled | control (baseline seed 3 − baseline) | bottleneck active | answer |",
             "|---|---|---|" + "---|" * seeds + "---|---|---|---|"]
    for d in decisions:
        lines.append(f"| {d.method} | {d.scope} | {TITLES[d.metric]} | " + " | ".join(e.format() for e in d.per_seed)
                     + f" | {d.pooled.format()} | {d.control.format()} | {'yes' if d.active else 'no'} | "
                       f"**{d.answer}** |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cams.decision", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("packages", type=Path, nargs="+", help="one study package per seed, scored by cams.metrics")
    parser.add_argument("--control", default="control", help="method name of the other seed's baseline")
    parser.add_argument("--active", action="append", default=[], metavar="METHOD=0|1",
                        help="bottleneck verdict of METHOD over all its runs (1: active in every seed)")
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown table here (default: print)")
    args = parser.parse_args(argv)
    try:
        activity = {}
        for text in args.active:
            name, _, flag = text.partition("=")
            if flag not in ("0", "1"):
                raise StudyInputError(f"--active {text!r}: expected METHOD=0 or METHOD=1")
            activity[name] = flag == "1"
        text = markdown(evaluate(args.packages, args.control, activity), len(args.packages))
    except (StudyInputError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.out:
        write_atomic(args.out, text)
        print(f"wrote {args.out}")
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
