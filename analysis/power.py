"""`python -m analysis.power`: how many raters and items does a preference study need?

    python -m analysis.power --raters 30 --items 15 --rate 0.7 --rater-sd 0.5 --item-sd 1.0

Simulates crossed studies (contract D: every rater votes on every item, preference
logistic(logit(rate) + u_rater + v_item)) and reports how often each analysis detects the
preference, plus exact binomial sample sizes. The point it makes plain: items, not raters, limit
precision. With infinitely many raters each item's preference is known exactly, but the average
over I items still varies from one set of images to the next.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse, stats
from tqdm import tqdm

from analysis.crossed import CellTable, bootstrap_rate
from analysis.simulate import crossed_preference_probabilities, logistic, logit, marginal_rate


def simulate_study_tests(
    n_raters: int,
    n_items: int,
    rate: float,
    rater_sd: float,
    item_sd: float,
    rng: np.random.Generator,
    *,
    replicates: int = 300,
    alpha: float = 0.05,
) -> dict:
    """One simulated fully crossed study: does each analysis reject 'rate = 50%'? Also interval widths."""
    votes = (
        rng.random((n_raters, n_items))
        < crossed_preference_probabilities(n_raters, n_items, rate, rater_sd, item_sd, rng)
    ).astype(float)
    k, n = int(votes.sum()), votes.size
    naive = stats.binomtest(k, n, 0.5)
    naive_ci = naive.proportion_ci(1 - alpha, method="exact")
    per_item = votes.sum(0)
    won, lost = int((2 * per_item > n_raters).sum()), int((2 * per_item < n_raters).sum())
    item_p = stats.binomtest(won, won + lost, 0.5).pvalue if won + lost else 1.0
    table = CellTable(
        sparse.csr_matrix(votes),
        sparse.csr_matrix(np.ones_like(votes)),
        np.arange(n_raters),
        np.arange(n_items),
    )
    two_way = bootstrap_rate(
        table, replicates=replicates, seed=int(rng.integers(2**31)), confidence=1 - alpha
    )["ci"]
    return {
        "naive": naive.pvalue < alpha,
        "items": item_p < alpha,
        "two_way": not two_way[0] <= 0.5 <= two_way[1],
        "naive_width": naive_ci.high - naive_ci.low,
        "two_way_width": two_way[1] - two_way[0],
        "item_majority": won / n_items,
    }


def simulated_power(
    n_raters: int,
    n_items: int,
    rate: float,
    rater_sd: float,
    item_sd: float,
    *,
    sims: int = 200,
    replicates: int = 300,
    alpha: float = 0.05,
    seed: int = 0,
    progress: bool = False,
) -> dict:
    """Share of `sims` simulated studies in which each analysis rejects 50% at level `alpha`.

    `two_way` (the crossed bootstrap interval excludes 50%) is the honest power; `naive` (pooled
    binomial) looks better only because it ignores the shared raters and items (see `false_positive`
    in the command's output); `items` is the sign test over item majorities (the paper's Table 2).
    """
    rng = np.random.default_rng(seed)
    rows = [
        simulate_study_tests(
            n_raters, n_items, rate, rater_sd, item_sd, rng, replicates=replicates, alpha=alpha
        )
        for _ in tqdm(
            range(sims),
            desc=f"{n_raters} raters x {n_items} items",
            leave=False,
            disable=not progress,
            file=sys.stderr,
        )
    ]
    frame = pd.DataFrame(rows)
    return {
        "raters": n_raters,
        "items": n_items,
        "power_two_way": float(frame["two_way"].mean()),
        "power_items": float(frame["items"].mean()),
        "power_naive": float(frame["naive"].mean()),
        "two_way_width": float(frame["two_way_width"].mean()),
        "naive_width": float(frame["naive_width"].mean()),
        "item_majority_rate": float(frame["item_majority"].mean()),
    }


def interval_coverage(
    n_raters: int,
    n_items: int,
    rate: float,
    rater_sd: float,
    item_sd: float,
    *,
    studies: int = 300,
    replicates: int = 300,
    confidence: float = 0.95,
    seed: int = 0,
    progress: bool = False,
) -> dict:
    """How often each interval covers the true population-average rate over simulated crossed studies.

    Intervals: the pooled exact (Clopper-Pearson) and Wilson intervals (naive), the item-only bootstrap
    and the two-way rater x item bootstrap (primary). Truth: `marginal_rate(rate, rater_sd, item_sd)`.
    """
    truth = marginal_rate(rate, rater_sd, item_sd)
    rng = np.random.default_rng(seed)
    hits = {"naive_exact": 0, "naive_wilson": 0, "item_bootstrap": 0, "two_way_bootstrap": 0}
    for _ in tqdm(range(studies), desc="coverage", disable=not progress, file=sys.stderr):
        votes = (
            rng.random((n_raters, n_items))
            < crossed_preference_probabilities(n_raters, n_items, rate, rater_sd, item_sd, rng)
        ).astype(float)
        test = stats.binomtest(int(votes.sum()), votes.size)
        table = CellTable(
            sparse.csr_matrix(votes),
            sparse.csr_matrix(np.ones_like(votes)),
            np.arange(n_raters),
            np.arange(n_items),
        )
        seed_b = int(rng.integers(2**31))
        intervals = {
            "naive_exact": test.proportion_ci(confidence, method="exact"),
            "naive_wilson": test.proportion_ci(confidence, method="wilson"),
            "item_bootstrap": bootstrap_rate(
                table, replicates=replicates, seed=seed_b, confidence=confidence, resample_raters=False
            )["ci"],
            "two_way_bootstrap": bootstrap_rate(
                table, replicates=replicates, seed=seed_b + 1, confidence=confidence
            )["ci"],
        }
        for name, ci in intervals.items():
            low, high = (ci.low, ci.high) if hasattr(ci, "low") else ci
            hits[name] += int(low <= truth <= high)
    return {"truth": truth, "studies": studies, **{name: count / studies for name, count in hits.items()}}


def precision_floors(
    n_raters: int,
    n_items: int,
    rate: float,
    rater_sd: float,
    item_sd: float,
    confidence: float = 0.95,
    draws: int = 200_000,
    seed: int = 0,
) -> dict:
    """Half-widths of the rate's interval if raters, or items, were unlimited.

    With infinitely many raters only the item-to-item spread remains: half-width
    z * sd(item means) / sqrt(I); likewise for infinitely many items and R raters.
    """
    rng = np.random.default_rng(seed)
    z = stats.norm.ppf(0.5 + confidence / 2)
    x, w = np.polynomial.hermite_e.hermegauss(40)
    w = w / w.sum()
    v = rng.normal(0, item_sd, draws) if item_sd > 0 else np.zeros(1)
    u = rng.normal(0, rater_sd, draws) if rater_sd > 0 else np.zeros(1)
    item_means = (logistic(logit(rate) + v[:, None] + rater_sd * x[None, :]) * w).sum(1)
    rater_means = (logistic(logit(rate) + u[:, None] + item_sd * x[None, :]) * w).sum(1)
    return {
        "infinite_raters": float(z * item_means.std() / np.sqrt(n_items)),
        "infinite_items": float(z * rater_means.std() / np.sqrt(n_raters)),
    }


def exact_binomial_power(
    n: np.ndarray | int, p: float, alpha: float = 0.05, alternative: str = "two-sided"
) -> np.ndarray:
    """Exact power of the binomial test of 50% with n independent units whose true rate is p.

    With p0 = 0.5 the null is symmetric, so the two-sided test rejects k >= c or k <= n - c where c
    is the smallest count with P(K >= c) <= alpha / 2 (identical to scipy's and R's two-sided test).
    """
    n = np.atleast_1d(np.asarray(n, dtype=np.int64))
    tail = alpha / 2 if alternative == "two-sided" else alpha
    c = stats.binom.isf(tail, n, 0.5).astype(np.int64) + 1  # smallest c with sf(c - 1) <= tail
    c = np.where(stats.binom.sf(c - 2, n, 0.5) <= tail, c - 1, c)  # guard isf's rounding
    power = stats.binom.sf(c - 1, n, p)
    if alternative == "two-sided":
        power = power + stats.binom.cdf(n - c, n, p) * (n - c < c)
    return power


def exact_binomial_sample_size(
    p: float, alpha: float = 0.05, power: float = 0.8, alternative: str = "two-sided", n_max: int = 100_000
) -> dict:
    """Smallest n reaching `power`, and the smallest n from which on every larger n does.

    Exact tests' power zig-zags with n (discreteness), so both are reported. None when n_max is not enough.
    """
    if p == 0.5:
        return {"n": None, "n_stable": None, "note": "a rate of exactly 50% cannot be detected"}
    n = np.arange(1, n_max + 1)
    reach = exact_binomial_power(n, p, alpha, alternative) >= power
    if not reach.any():
        return {"n": None, "n_stable": None, "note": f"more than {n_max} units needed"}
    first = int(n[np.argmax(reach)])
    below = np.flatnonzero(~reach)
    stable = int(n[below[-1] + 1]) if below.size and below[-1] + 1 < n.size else first
    return {"n": first, "n_stable": stable}


def _scaled(values: list[int]) -> list[int]:
    return sorted({max(2, int(v)) for v in values})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m analysis.power",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="Distinction studies (raters nested in methods): python -m analysis.power distinction --help",
    )
    parser.add_argument("--raters", type=int, default=30, help="raters R (each votes on every item)")
    parser.add_argument("--items", type=int, default=15, help="items I")
    parser.add_argument(
        "--rate",
        type=float,
        default=0.7,
        help="preference of a typical rater on a typical item (contract D's rate)",
    )
    parser.add_argument("--rater-sd", type=float, default=0.5, help="sd of rater effects (logit scale)")
    parser.add_argument("--item-sd", type=float, default=1.0, help="sd of item effects (logit scale)")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level (two-sided)")
    parser.add_argument("--power", type=float, default=0.8, help="target power for the sample sizes")
    parser.add_argument("--sims", type=int, default=200, help="simulated studies per design")
    parser.add_argument(
        "--bootstrap", type=int, default=300, metavar="B", help="bootstrap replicates per study"
    )
    parser.add_argument(
        "--no-grid", action="store_true", help="only the given design, not the raters x items grid"
    )
    parser.add_argument(
        "--coverage",
        action="store_true",
        help="also report how often each interval covers the true rate (uses --sims studies)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--out", metavar="JSON", help="also write the results as JSON")
    return parser


def run(args: argparse.Namespace) -> dict:
    """Everything the command prints, as a dict."""
    truth = marginal_rate(args.rate, args.rater_sd, args.item_sd)
    main = simulated_power(
        args.raters,
        args.items,
        args.rate,
        args.rater_sd,
        args.item_sd,
        sims=args.sims,
        replicates=args.bootstrap,
        alpha=args.alpha,
        seed=args.seed,
        progress=True,
    )
    null = simulated_power(
        args.raters,
        args.items,
        0.5,
        args.rater_sd,
        args.item_sd,
        sims=args.sims,
        replicates=args.bootstrap,
        alpha=args.alpha,
        seed=args.seed + 1,
        progress=True,
    )
    grid = []
    if not args.no_grid:
        designs = [
            (r, i)
            for r in _scaled([args.raters / 2, args.raters, args.raters * 4])
            for i in _scaled([args.items / 2, args.items, args.items * 4])
        ]
        for k, (r, i) in enumerate(tqdm(designs, desc="raters x items grid", file=sys.stderr)):
            grid.append(
                simulated_power(
                    r,
                    i,
                    args.rate,
                    args.rater_sd,
                    args.item_sd,
                    sims=args.sims,
                    replicates=args.bootstrap,
                    alpha=args.alpha,
                    seed=args.seed + 10 + k,
                )
            )
    floors = precision_floors(args.raters, args.items, args.rate, args.rater_sd, args.item_sd, 1 - args.alpha)
    coverage = (
        interval_coverage(
            args.raters,
            args.items,
            args.rate,
            args.rater_sd,
            args.item_sd,
            studies=args.sims,
            replicates=args.bootstrap,
            confidence=1 - args.alpha,
            seed=args.seed + 2,
            progress=True,
        )
        if args.coverage
        else None
    )
    return {
        "coverage": coverage,
        "design": {
            "raters": args.raters,
            "items": args.items,
            "rate": args.rate,
            "population_rate": truth,
            "rater_sd": args.rater_sd,
            "item_sd": args.item_sd,
            "alpha": args.alpha,
            "sims": args.sims,
            "power_target": args.power,
        },
        "power": main,
        "false_positive": {
            "two_way": null["power_two_way"],
            "items": null["power_items"],
            "naive": null["power_naive"],
        },
        "grid": grid,
        "floors": floors,
        "sample_sizes": {
            "votes_if_independent": exact_binomial_sample_size(truth, args.alpha, args.power),
            "items_sign_test": exact_binomial_sample_size(main["item_majority_rate"], args.alpha, args.power)
            if main["item_majority_rate"] not in (0.0, 0.5, 1.0)
            else {"n": None, "n_stable": None},
        },
    }


def print_report(result: dict) -> None:
    d, p, fp, fl, ss = (
        result["design"],
        result["power"],
        result["false_positive"],
        result["floors"],
        result["sample_sizes"],
    )
    print(
        f"Crossed design: {d['raters']} raters x {d['items']} items; typical-rater rate {d['rate']:.3f} "
        f"(population average {d['population_rate']:.3f}); rater sd {d['rater_sd']}, item sd {d['item_sd']} (logit)"
    )
    print(f"Power at alpha {d['alpha']} over {d['sims']} simulated studies:")
    print(
        f"  two-way rater x item bootstrap (honest) : {p['power_two_way']:.2f}   false positives at 50%: {fp['two_way']:.2f}"
    )
    print(
        f"  item-level sign test (Table 2)           : {p['power_items']:.2f}   false positives at 50%: {fp['items']:.2f}"
    )
    print(
        f"  pooled binomial (ignores the design)     : {p['power_naive']:.2f}   false positives at 50%: {fp['naive']:.2f}"
    )
    print(
        f"  mean 95% interval width: two-way {p['two_way_width']:.3f}, pooled binomial {p['naive_width']:.3f}"
    )
    if result["grid"]:
        grid = pd.DataFrame(result["grid"])
        table = grid.pivot(index="raters", columns="items", values="power_two_way")
        width = grid.pivot(index="raters", columns="items", values="two_way_width")
        print("\nTwo-way power (rows: raters, columns: items):")
        print(table.to_string(float_format=lambda x: f"{x:.2f}"))
        print("\nMean two-way interval width:")
        print(width.to_string(float_format=lambda x: f"{x:.3f}"))
    print(
        f"\nItems, not raters, limit precision: with unlimited raters the interval half-width cannot drop below "
        f"{fl['infinite_raters']:.3f} with {d['items']} items; with unlimited items it would be {fl['infinite_items']:.3f} "
        f"with {d['raters']} raters. Add images before adding people."
    )
    if result.get("coverage"):
        cov = result["coverage"]
        print(
            f"\nCoverage of {1 - d['alpha']:.0%} intervals over {cov['studies']} studies (truth {cov['truth']:.3f}): "
            f"two-way {cov['two_way_bootstrap']:.3f}, item-only {cov['item_bootstrap']:.3f}, "
            f"pooled exact {cov['naive_exact']:.3f}, pooled Wilson {cov['naive_wilson']:.3f}"
        )
    votes, items = ss["votes_if_independent"], ss["items_sign_test"]
    print(f"\nExact binomial sample sizes (power {d['power_target']:.0%}, two-sided alpha {d['alpha']}):")
    print(
        f"  independent votes at rate {d['population_rate']:.3f}: n = {votes['n']} (every n >= {votes['n_stable']})"
        " -- votes in a crossed study are NOT independent, so this is a lower bound only"
    )
    print(
        f"  items for the sign test (item majority rate {p['item_majority_rate']:.3f} with {d['raters']} raters): "
        f"n = {items['n']} (every n >= {items['n_stable']})"
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["distinction"]:  # plans a distinction study (issue 14); see analysis.distinction_power
        from analysis.distinction_power import main as plan_distinction

        return plan_distinction(argv[1:])
    args = build_parser().parse_args(argv)
    problems = []
    if args.raters < 1 or args.items < 1:
        problems.append("--raters and --items must be >= 1")
    if not 0 < args.rate < 1:
        problems.append(f"--rate must be between 0 and 1, got {args.rate}")
    if args.rater_sd < 0 or args.item_sd < 0:
        problems.append("--rater-sd and --item-sd must be >= 0")
    if not 0 < args.alpha < 0.5 or not 0 < args.power < 1:
        problems.append("--alpha must be in (0, 0.5) and --power in (0, 1)")
    if args.sims < 10 or args.bootstrap < 100:
        problems.append("use --sims >= 10 and --bootstrap >= 100")
    if problems:
        print("error: " + "; ".join(problems), file=sys.stderr)
        return 2
    result = run(args)
    print_report(result)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        tmp.replace(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
