"""`python -m analysis.power distinction`: how many raters per method and items does a distinction
study need for a given precision on the accuracy difference between two methods?

    python -m analysis.power distinction --raters 10,20,30 --items 20,40 --accuracy 0.5,0.35

The model (contract D's logic, for this task): rater r, nested in method m, answers item i correctly
with probability logistic(logit(acc_m) + u_r + v_i + w_im); u_r ~ N(0, rater_sd^2) (raters differ),
v_i ~ N(0, item_sd^2) (some images are hard under every method: items are crossed with methods, so
this part cancels in the difference), w_im ~ N(0, item_method_sd^2) (a method helps more on some
images: it does not cancel). Each simulated study is analysed exactly as the report does
(`analysis.crossed.grouped_replicates`: items drawn once, raters within methods).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse
from tqdm import tqdm

from analysis.crossed import CellTable, grouped_replicates, percentile_interval
from analysis.simulate import logistic, logit, marginal_rate


def distinction_logits(
    n_raters: int,
    n_items: int,
    accuracies: Sequence[float],
    rater_sd: float,
    item_sd: float,
    item_method_sd: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """M x R x I log-odds that rater r of method m answers item i correctly (raters nested in methods,
    items crossed with methods). `accuracies` are each method's accuracy for a typical rater on a
    typical item; `marginal_accuracy` gives the population average the analysis estimates."""
    if n_raters < 1 or n_items < 1:
        raise ValueError(f"need at least one rater per method and one item, got {n_raters} x {n_items}")
    if min(rater_sd, item_sd, item_method_sd) < 0:
        raise ValueError("standard deviations must be >= 0")
    base = logit(np.asarray(accuracies, dtype=float))
    m = base.size
    u = rng.normal(0.0, rater_sd, (m, n_raters)) if rater_sd > 0 else np.zeros((m, n_raters))
    v = rng.normal(0.0, item_sd, n_items) if item_sd > 0 else np.zeros(n_items)
    w = rng.normal(0.0, item_method_sd, (m, n_items)) if item_method_sd > 0 else np.zeros((m, n_items))
    return base[:, None, None] + u[:, :, None] + v[None, None, :] + w[:, None, :]


def marginal_accuracy(accuracy: float, rater_sd: float, item_sd: float, item_method_sd: float) -> float:
    """Population-average accuracy E[logistic(logit(acc) + u + v + w)]: the estimand of the analysis."""
    return marginal_rate(accuracy, rater_sd, float(np.hypot(item_sd, item_method_sd)))


def tables_from_matrix(correct: np.ndarray) -> dict[int, CellTable]:
    """Aligned cell tables (one per method) from an M x R x I array of 0/1 answers, raters stacked."""
    m, r, i = correct.shape
    tables = {}
    for k in range(m):
        s = np.zeros((m * r, i))
        s[k * r : (k + 1) * r] = correct[k]
        n = np.zeros((m * r, i))
        n[k * r : (k + 1) * r] = 1.0
        tables[k] = CellTable(sparse.csr_matrix(s), sparse.csr_matrix(n), np.arange(m * r), np.arange(i))
    return tables


def simulate_difference(
    n_raters: int,
    n_items: int,
    accuracies: Sequence[float],
    rater_sd: float,
    item_sd: float,
    item_method_sd: float,
    rng: np.random.Generator,
    *,
    replicates: int = 300,
    confidence: float = 0.95,
) -> dict:
    """One simulated study: the primary interval of acc_0 - acc_1 and of each method's accuracy."""
    p = logistic(distinction_logits(n_raters, n_items, accuracies, rater_sd, item_sd, item_method_sd, rng))
    correct = (rng.random(p.shape) < p).astype(float)
    strata = np.repeat(np.arange(len(accuracies)), n_raters)
    reps = grouped_replicates(tables_from_matrix(correct), strata, replicates, rng)
    diff = percentile_interval(reps[0] - reps[1], confidence)
    acc = [percentile_interval(reps[k], confidence) for k in range(2)]
    return {
        "estimate": float(correct[0].mean() - correct[1].mean()),
        "low": diff[0],
        "high": diff[1],
        "accuracy_half_width": float(np.mean([(c[1] - c[0]) / 2 for c in acc])),
    }


def plan_design(
    n_raters: int,
    n_items: int,
    accuracies: Sequence[float],
    rater_sd: float,
    item_sd: float,
    item_method_sd: float,
    *,
    sims: int = 200,
    replicates: int = 300,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict:
    """Over `sims` simulated studies of one design: mean and 90th-percentile half-width of the
    difference's interval, its coverage of the true difference, and power (interval excludes 0)."""
    truth = marginal_accuracy(accuracies[0], rater_sd, item_sd, item_method_sd) - marginal_accuracy(
        accuracies[1], rater_sd, item_sd, item_method_sd
    )
    rng = np.random.default_rng(seed)
    rows = pd.DataFrame(
        [
            simulate_difference(
                n_raters,
                n_items,
                accuracies,
                rater_sd,
                item_sd,
                item_method_sd,
                rng,
                replicates=replicates,
                confidence=confidence,
            )
            for _ in range(sims)
        ]
    )
    half = (rows["high"] - rows["low"]) / 2
    return {
        "raters_per_method": n_raters,
        "items": n_items,
        "answers": n_raters * len(accuracies) * n_items,
        "half_width_mean": float(half.mean()),
        "half_width_p90": float(half.quantile(0.9)),
        "coverage": float(((rows["low"] <= truth) & (truth <= rows["high"])).mean()),
        "power": float(((rows["low"] > 0) | (rows["high"] < 0)).mean()),
        "accuracy_half_width_mean": float(rows["accuracy_half_width"].mean()),
    }


def plan(
    raters: Sequence[int],
    items: Sequence[int],
    accuracies: Sequence[float],
    rater_sd: float,
    item_sd: float,
    item_method_sd: float,
    *,
    target_half_width: float = 0.1,
    sims: int = 200,
    replicates: int = 300,
    confidence: float = 0.95,
    seed: int = 0,
    progress: bool = False,
) -> dict:
    """Every raters x items design, and the cheapest (fewest answers) whose mean half-width of the
    difference's interval is at most `target_half_width`."""
    designs = [(r, i) for r in raters for i in items]
    grid = [
        plan_design(
            r,
            i,
            accuracies,
            rater_sd,
            item_sd,
            item_method_sd,
            sims=sims,
            replicates=replicates,
            confidence=confidence,
            seed=seed + k,
        )
        for k, (r, i) in enumerate(tqdm(designs, desc="designs", disable=not progress, file=sys.stderr))
    ]
    meeting = [g for g in grid if g["half_width_mean"] <= target_half_width]
    best = min(meeting, key=lambda g: (g["answers"], g["half_width_mean"])) if meeting else None
    return {
        "design": {
            "accuracies": list(accuracies),
            "marginal_accuracies": [
                marginal_accuracy(a, rater_sd, item_sd, item_method_sd) for a in accuracies
            ],
            "rater_sd": rater_sd,
            "item_sd": item_sd,
            "item_method_sd": item_method_sd,
            "confidence": confidence,
            "target_half_width": target_half_width,
            "sims": sims,
            "bootstrap": replicates,
        },
        "grid": grid,
        "smallest": best,
    }


def _numbers(kind: type, text: str) -> list:
    try:
        return [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m analysis.power distinction",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--raters",
        type=lambda t: _numbers(int, t),
        default=[10, 20, 30],
        help="raters PER METHOD to try, comma-separated",
    )
    parser.add_argument(
        "--items",
        type=lambda t: _numbers(int, t),
        default=[20, 40],
        help="items (each shown under every method) to try, comma-separated",
    )
    parser.add_argument(
        "--accuracy",
        type=lambda t: _numbers(float, t),
        default=[0.5, 0.35],
        help="accuracy of a typical rater on a typical item, per method (two values: A,B; "
        "the planned difference is A - B); chance is 0.25",
    )
    parser.add_argument("--rater-sd", type=float, default=0.5, help="sd of rater effects (logit scale)")
    parser.add_argument(
        "--item-sd", type=float, default=1.0, help="sd of item effects shared by every method (logit scale)"
    )
    parser.add_argument(
        "--item-method-sd",
        type=float,
        default=0.5,
        help="sd of item x method effects (logit scale): how much a method's help varies by image",
    )
    parser.add_argument(
        "--half-width",
        type=float,
        default=0.1,
        help="target half-width of the difference's interval (accuracy points, 0.1 = 10 points)",
    )
    parser.add_argument("--confidence", type=float, default=0.95, help="confidence level of the intervals")
    parser.add_argument("--sims", type=int, default=200, help="simulated studies per design")
    parser.add_argument(
        "--bootstrap", type=int, default=300, metavar="B", help="bootstrap replicates per study"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--out", metavar="JSON", help="also write the results as JSON")
    return parser


def problems(args: argparse.Namespace) -> list[str]:
    """Flag values the simulation cannot use, each with the fix."""
    out = []
    if not args.raters or not args.items or min(args.raters) < 1 or min(args.items) < 1:
        out.append("--raters and --items need whole numbers >= 1")
    if len(args.accuracy) != 2 or not all(0 < a < 1 for a in args.accuracy):
        out.append(f"--accuracy needs two values strictly between 0 and 1 (A,B), got {args.accuracy}")
    if min(args.rater_sd, args.item_sd, args.item_method_sd) < 0:
        out.append("--rater-sd, --item-sd and --item-method-sd must be >= 0")
    if not 0.5 < args.confidence < 1 or args.half_width <= 0:
        out.append("--confidence must be in (0.5, 1) and --half-width > 0")
    if args.sims < 10 or args.bootstrap < 100:
        out.append("use --sims >= 10 and --bootstrap >= 100")
    return out


def print_plan(result: dict) -> None:
    d = result["design"]
    acc, marg = d["accuracies"], d["marginal_accuracies"]
    print(
        f"Distinction design: raters nested in 2 methods, items crossed; typical accuracy {acc[0]:.3f} vs {acc[1]:.3f} "
        f"(population {marg[0]:.3f} vs {marg[1]:.3f}, difference {marg[0] - marg[1]:+.3f}); sd rater {d['rater_sd']}, "
        f"item {d['item_sd']}, item x method {d['item_method_sd']} (logit); {d['sims']} studies per design"
    )
    grid = pd.DataFrame(result["grid"])
    for column, title in (
        ("half_width_mean", f"Mean half-width of the {d['confidence']:.0%} interval of the difference"),
        ("half_width_p90", "90th percentile of that half-width"),
        ("power", "Power (interval excludes 0)"),
        ("coverage", "Coverage of the true difference"),
    ):
        print(f"\n{title} (rows: raters per method, columns: items):")
        print(
            grid.pivot(index="raters_per_method", columns="items", values=column).to_string(
                float_format=lambda x: f"{x:.3f}"
            )
        )
    best = result["smallest"]
    if best:
        print(
            f"\nSmallest design with mean half-width <= {d['target_half_width']}: {best['raters_per_method']} raters per "
            f"method x {best['items']} items ({best['answers']} answers): half-width {best['half_width_mean']:.3f}, "
            f"power {best['power']:.2f}"
        )
    else:
        print(
            f"\nNo design in the grid reaches half-width {d['target_half_width']}: add items first (item x method "
            "effects do not shrink with more raters), then raters."
        )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    issues = problems(args)
    if issues:
        print("error: " + "; ".join(issues), file=sys.stderr)
        return 2
    result = plan(
        args.raters,
        args.items,
        args.accuracy,
        args.rater_sd,
        args.item_sd,
        args.item_method_sd,
        target_half_width=args.half_width,
        sims=args.sims,
        replicates=args.bootstrap,
        confidence=args.confidence,
        seed=args.seed,
        progress=True,
    )
    print_plan(result)
    if args.out:
        from fileio import write_text_atomic

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
