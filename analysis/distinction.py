"""Statistics of the distinction task (issue 14, after HIVE): do a method's maps help people tell
which of the model's top-4 classes it predicted?

The design: raters are nested in methods (each sees one method's maps), items are crossed with
methods (every image is shown under every method). So:
- a method's accuracy has the same crossed rater x item structure as a pairwise preference rate, and
  its primary interval is `analysis.crossed`'s two-way bootstrap, next to the exact binomial test
  against 25 % chance (which treats answers as independent and is optimistic);
- the difference between two methods shares the items: one draw of items is used for both methods
  (their item effects partly cancel) while raters are drawn within each method (different people).
  Drawing them independently per method, or not drawing raters at all, would get the variance wrong.
Calibration (accuracy by confidence) and confusion with the runner-up class describe *how* people
fail. Everything here is numpy/pandas/scipy; statsmodels fits the cross-checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

from analysis.binomial import binomial_summary
from analysis.crossed import (
    aligned_tables,
    bootstrap_rate,
    cell_table,
    grouped_replicates,
    percentile_interval,
)
from analysis.distinction_answers import CHANCE, CONFIDENCE_LEVELS, DistinctionAnswers, methods_per_rater
from analysis.exclusions import ExclusionRules, exclude_rows, nothing_left
from analysis.mixed import FitFailed, fit_recording_warnings
from survey.votes_format import CANDIDATES

#: Confidence levels pooled as "low" and "high" for the calibration contrast.
LOW_CONFIDENCE = (1, 2)
HIGH_CONFIDENCE = (4, 5)
#: Share of wrong answers expected on the runner-up (rank 2) if wrong picks were random among the others.
RUNNER_UP_CHANCE = 1 / (CANDIDATES - 1)


# --- design of the answers ---------------------------------------------------------------------------


def rater_strata(frame: pd.DataFrame, raters: np.ndarray) -> tuple[np.ndarray, bool]:
    """Stratum (method code) of each rater, and whether raters are nested in methods.

    Nested (between subjects): raters are resampled within their method, so every replicate keeps
    each method's number of raters. Not nested (a rater saw several methods): one stratum, raters
    drawn once and shared, as in a within-subjects design.
    """
    per_rater = methods_per_rater(frame)
    if (per_rater > 1).any():
        return np.zeros(len(raters), dtype=np.int64), False
    method_of = frame.groupby(frame["rater"].astype(str), observed=True)["method"].first()
    codes, _ = pd.factorize(method_of.reindex(raters).to_numpy())
    return codes.astype(np.int64), True


# --- accuracy per method ---------------------------------------------------------------------------


def method_accuracy(
    answers: pd.DataFrame, *, confidence: float = 0.95, replicates: int = 2000, seed: int = 0
) -> dict:
    """One method's accuracy against chance: exact binomial test (one- and two-sided), Clopper-Pearson
    and Wilson intervals (answers as independent), and the two-way rater x item bootstrap (primary)."""
    k, n = int(answers["y"].sum()), len(answers)
    test = binomial_summary(k, n, p0=CHANCE, confidence=confidence)
    two_way = bootstrap_rate(
        cell_table(answers["rater"], answers["item"], answers["y"]),
        replicates=replicates,
        seed=seed,
        confidence=confidence,
    )
    return {
        "accuracy": test["rate"],
        "k": k,
        "n_answers": n,
        "n_raters": int(answers["rater"].nunique()),
        "n_items": int(answers["item"].nunique()),
        "p_greater": test["p_greater"],
        "p_two_sided": test["p_two_sided"],
        "ci_exact": test["ci_exact"],
        "ci_wilson": test["ci_wilson"],
        "ci_bootstrap": two_way["ci"],
        "se_bootstrap": two_way["se"],
    }


# --- differences between methods -------------------------------------------------------------------


def wald_difference(k_a: int, n_a: int, k_b: int, n_b: int, confidence: float = 0.95) -> list[float] | None:
    """Naive interval for p_a - p_b treating every answer as independent (ignores raters and items)."""
    if not n_a or not n_b:
        return None
    p_a, p_b = k_a / n_a, k_b / n_b
    z = stats.norm.ppf(0.5 + confidence / 2)
    half = z * np.sqrt(p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b)
    return [float(p_a - p_b - half), float(p_a - p_b + half)]


def method_differences(
    answers: pd.DataFrame,
    methods: Sequence[str],
    *,
    confidence: float = 0.95,
    replicates: int = 2000,
    seed: int = 0,
) -> list[dict]:
    """Accuracy difference a - b for every pair of methods (in `methods` order).

    `ci_bootstrap` (primary): items drawn once per replicate and shared by both methods, raters drawn
    within their method. `ci_items_only` keeps raters fixed and `ci_naive` (Wald) treats answers as
    independent: both ignore that answers cluster within raters and are shown for comparison.
    """
    tables, raters, _ = aligned_tables(answers, "method", methods)
    strata, nested = rater_strata(answers, raters)
    rng = np.random.default_rng(seed)
    both = grouped_replicates(tables, strata, replicates, rng)
    items_only = grouped_replicates(tables, strata, replicates, rng, resample_raters=False)
    counts = answers.groupby("method", observed=True)["y"].agg(["sum", "size"])
    results = []
    for a, b in combinations(methods, 2):
        k_a, n_a = int(counts.loc[a, "sum"]), int(counts.loc[a, "size"])
        k_b, n_b = int(counts.loc[b, "sum"]), int(counts.loc[b, "size"])
        reps = both[a] - both[b]
        finite = reps[np.isfinite(reps)]
        results.append(
            {
                "a": a,
                "b": b,
                "estimate": k_a / n_a - k_b / n_b,
                "ci_bootstrap": percentile_interval(reps, confidence),
                "se_bootstrap": float(finite.std(ddof=1)) if finite.size > 1 else None,
                "ci_items_only": percentile_interval(items_only[a] - items_only[b], confidence),
                "ci_naive": wald_difference(k_a, n_a, k_b, n_b, confidence),
                "raters_nested": nested,
                "replicates": int(replicates),
            }
        )
    return results


def mixed_difference(answers: pd.DataFrame, methods: Sequence[str], confidence: float = 0.95) -> dict:
    """Cross-check of the differences: MixedLM (linear probability, REML) of correct ~ 0 + method with
    crossed variance components for rater, item and item x method.

    The coefficients are the methods' accuracies (the bootstrap's estimand); each difference gets a
    Wald interval from the coefficient covariance. Same limits as `analysis.mixed.fit_linear_mixed`
    (normal errors on 0/1 data, boundary variance components). A GEE would allow one clustering
    factor only (raters or items, not both crossed), so it is not used.
    """
    import statsmodels.formula.api as smf

    data = pd.DataFrame(
        {
            "y": answers["y"].to_numpy(float),
            "method": answers["method"].astype(str).to_numpy(),
            "rater": answers["rater"].astype(str).to_numpy(),
            "item": answers["item"].astype(str).to_numpy(),
        }
    )
    data["item_method"] = data["item"] + "|" + data["method"]
    data["one"] = 1
    if data["item"].nunique() < 2 or data["rater"].nunique() < 2 * len(methods):
        return {"fitted": False, "reason": "needs two items and two raters per method"}
    if data["y"].nunique() < 2:
        return {"fitted": False, "reason": "every answer was the same: no variance to model"}
    model = smf.mixedlm(
        "y ~ 0 + C(method)",
        data,
        groups="one",
        re_formula="0",
        vc_formula={"rater": "0 + C(rater)", "item": "0 + C(item)", "item_method": "0 + C(item_method)"},
        use_sparse=True,
    )
    try:
        result, notes = fit_recording_warnings(lambda: model.fit(reml=True, method=["lbfgs"]), "MixedLM")
    except FitFailed as exc:
        return {"fitted": False, "reason": str(exc)}
    params = result.fe_params  # one coefficient per method, named C(method)[name]
    cov = result.cov_params().loc[params.index, params.index]
    z = stats.norm.ppf(0.5 + confidence / 2)
    diffs = []
    for a, b in combinations(methods, 2):
        ka, kb = f"C(method)[{a}]", f"C(method)[{b}]"
        est = float(params[ka] - params[kb])
        se = float(np.sqrt(cov.loc[ka, ka] + cov.loc[kb, kb] - 2 * cov.loc[ka, kb]))
        diffs.append(
            {
                "a": a,
                "b": b,
                "estimate": est,
                "se": se,
                "ci": [est - z * se, est + z * se],
                "p_two_sided": float(2 * stats.norm.sf(abs(est) / se)) if se > 0 else None,
            }
        )
    vcomp = dict(zip(model.exog_vc.names, np.asarray(result.vcomp, dtype=float)))
    return {
        "fitted": True,
        "model": "MixedLM (linear probability, REML; rater, item and item x method variance components)",
        "differences": diffs,
        "rater_var": float(vcomp.get("rater", np.nan)),
        "item_var": float(vcomp.get("item", np.nan)),
        "item_method_var": float(vcomp.get("item_method", np.nan)),
        "residual_var": float(result.scale),
        "converged": bool(result.converged),
        "warnings": notes,
    }


# --- calibration and the runner-up -----------------------------------------------------------------


def accuracy_by_confidence(answers: pd.DataFrame, confidence: float = 0.95) -> list[dict]:
    """Answers, correct answers, accuracy and Clopper-Pearson interval at each confidence level 1..5."""
    rows = []
    for level in CONFIDENCE_LEVELS:
        at = answers[answers["confidence"] == level]
        test = binomial_summary(int(at["y"].sum()), len(at), p0=CHANCE, confidence=confidence)
        rows.append(
            {
                "confidence": level,
                "n": test["n"],
                "k": test["k"],
                "accuracy": test["rate"],
                "ci_exact": test["ci_exact"],
            }
        )
    return rows


def calibration_slope(answers: pd.DataFrame, confidence: float = 0.95) -> dict:
    """Log-odds of a correct answer per confidence step (logistic GLM with one intercept per method,
    so differences in accuracy between methods are not read as calibration), with a rater-clustered
    (sandwich) interval. Items are crossed and not clustered on: a descriptive companion of the
    bootstrap contrast `high_minus_low`."""
    import statsmodels.api as sm

    data = answers[answers["confidence"].notna()]
    if len(data) < 10 or data["confidence"].nunique() < 2 or data["y"].nunique() < 2:
        return {
            "fitted": False,
            "reason": "needs at least 10 answers, two confidence levels and both outcomes",
        }
    dummies = pd.get_dummies(data["method"].astype(str), dtype=float)
    exog = pd.concat([dummies, data["confidence"].astype(float).rename("confidence")], axis=1)
    groups = pd.factorize(data["rater"].astype(str))[0]
    glm = sm.GLM(data["y"].to_numpy(float), exog, family=sm.families.Binomial())
    try:
        fit, notes = fit_recording_warnings(
            lambda: glm.fit(cov_type="cluster", cov_kwds={"groups": groups}), "GLM")
    except FitFailed as exc:
        return {"fitted": False, "reason": str(exc)}
    slope, se = float(fit.params["confidence"]), float(fit.bse["confidence"])
    z = stats.norm.ppf(0.5 + confidence / 2)
    return {
        "fitted": True,
        "log_odds_per_level": slope,
        "se": se,
        "ci": [slope - z * se, slope + z * se],
        "p_two_sided": float(2 * stats.norm.sf(abs(slope) / se)) if se > 0 else None,
        "warnings": notes,
    }


def calibration(
    answers: pd.DataFrame,
    methods: Sequence[str],
    *,
    confidence: float = 0.95,
    replicates: int = 2000,
    seed: int = 0,
) -> dict:
    """Is confidence informative? Accuracy by level (pooled and per method), the high (4-5) minus low
    (1-2) accuracy contrast with the rater x item bootstrap (raters within methods), the logistic
    slope, and mean confidence of correct vs wrong answers (HIVE's point: people are confident when wrong)."""
    rated = answers[answers["confidence"].notna()]
    band = np.select(
        [rated["confidence"].isin(HIGH_CONFIDENCE), rated["confidence"].isin(LOW_CONFIDENCE)],
        ["high", "low"],
        "",
    )
    banded = rated.assign(band=band)
    contrast: dict = {"high": list(HIGH_CONFIDENCE), "low": list(LOW_CONFIDENCE)}
    counts = banded.groupby("band")["y"].agg(["sum", "size"])
    if {"high", "low"} <= set(counts.index):
        tables, raters, _ = aligned_tables(banded, "band", ["high", "low"])
        strata, _ = rater_strata(banded, raters)
        reps = grouped_replicates(tables, strata, replicates, np.random.default_rng(seed))
        acc = {g: counts.loc[g, "sum"] / counts.loc[g, "size"] for g in ("high", "low")}
        contrast |= {
            "n_high": int(counts.loc["high", "size"]),
            "n_low": int(counts.loc["low", "size"]),
            "accuracy_high": float(acc["high"]),
            "accuracy_low": float(acc["low"]),
            "estimate": float(acc["high"] - acc["low"]),
            "ci_bootstrap": percentile_interval(reps["high"] - reps["low"], confidence),
        }
    else:
        contrast |= {
            "estimate": None,
            "ci_bootstrap": None,
            "note": "needs answers at both high and low confidence",
        }
    mean_conf = rated.groupby("correct")["confidence"].mean()
    return {
        "levels": accuracy_by_confidence(answers, confidence),
        "by_method": {
            m: accuracy_by_confidence(answers[answers["method"] == m], confidence) for m in methods
        },
        "high_minus_low": contrast,
        "slope": calibration_slope(answers, confidence),
        "mean_confidence": {
            "correct": float(mean_conf[True]) if True in mean_conf.index else None,
            "wrong": float(mean_conf[False]) if False in mean_conf.index else None,
        },
        "missing": int(answers["confidence"].isna().sum()),
    }


def runner_up(
    answers: pd.DataFrame, *, confidence: float = 0.95, replicates: int = 2000, seed: int = 0
) -> dict:
    """Among wrong answers, the share that picked the runner-up class (rank 2), against 1/3 (random
    among the three wrong maps): exact binomial test and the two-way bootstrap; plus counts by rank."""
    wrong = answers[~answers["correct"]]
    on_second = (wrong["chosen_rank"] == 2).astype(float)
    test = binomial_summary(int(on_second.sum()), len(wrong), p0=RUNNER_UP_CHANCE, confidence=confidence)
    two_way = bootstrap_rate(
        cell_table(wrong["rater"], wrong["item"], on_second),
        replicates=replicates,
        seed=seed,
        confidence=confidence,
    )
    ranks = answers["chosen_rank"].value_counts()
    return {
        "wrong": test["n"],
        "runner_up": test["k"],
        "share": test["rate"],
        "p_two_sided": test["p_two_sided"],
        "p_greater": test["p_greater"],
        "ci_exact": test["ci_exact"],
        "ci_bootstrap": two_way["ci"],
        "by_rank": {str(r): int(ranks.get(float(r), 0)) for r in range(1, 5)},
    }


def per_item_accuracy(answers: pd.DataFrame) -> pd.DataFrame:
    """One row per (item, method): label, answers, correct, accuracy (distinction_items.csv)."""
    table = (
        answers.groupby(["item", "method"], observed=True)
        .agg(label=("label", "first"), answers=("y", "size"), correct=("y", "sum"))
        .reset_index()
    )
    table["correct"] = table["correct"].astype(int)
    table["accuracy"] = table["correct"] / table["answers"]
    return table


# --- everything, for the report ---------------------------------------------------------------------


def accuracy_only(answers: DistinctionAnswers, *, confidence: float, replicates: int, seed: int) -> dict:
    """Accuracy per method and the differences: the part shown with and without exclusions."""
    regular = answers.regular
    methods = [m for m in answers.methods if (regular["method"] == m).any()]
    return {
        "n_answers": len(regular),
        "n_raters": int(regular["rater"].nunique()),
        "n_items": int(regular["item"].nunique()),
        "methods": {
            m: method_accuracy(
                regular[regular["method"] == m], confidence=confidence, replicates=replicates, seed=seed + k
            )
            for k, m in enumerate(methods)
        },
        "differences": method_differences(
            regular, methods, confidence=confidence, replicates=replicates, seed=seed + 100
        )
        if len(methods) > 1
        else [],
    }


def design_facts(answers: DistinctionAnswers, everything: DistinctionAnswers) -> dict:
    """How the answers were collected: nesting of raters and crossing of items (in the answers
    analysed), attention checks and repeats (in `everything`, before exclusions)."""
    regular, f = answers.regular, everything.frame
    per_rater = methods_per_rater(regular)
    items_per_method = regular.groupby("method", observed=True)["item"].nunique()
    shown = regular.groupby("item", observed=True)["method"].nunique()
    return {
        "raters_nested_in_methods": bool((per_rater <= 1).all()),
        "items_crossed_with_methods": bool((shown == len(answers.methods)).all()),
        "raters_per_method": {
            m: int(regular.loc[regular["method"] == m, "rater"].nunique()) for m in answers.methods
        },
        "items_per_method": {m: int(items_per_method.get(m, 0)) for m in answers.methods},
        "attention_checks": int(f["attention_check"].sum()),
        "failed_checks": int(f["failed_check"].sum()),
        "repeats": int((f["repeat"] > 0).sum()),
    }


def distinction_warnings(result: dict, confidence: float) -> list[str]:
    """What a reader of the distinction results should know before quoting them."""
    out = []
    design = result["design"]
    if not design["raters_nested_in_methods"]:
        out.append(
            "Distinction task: some raters answered under several methods (not the between-subjects design); "
            "the difference bootstrap draws raters once for all methods."
        )
    if not design["items_crossed_with_methods"]:
        out.append(
            "Distinction task: not every item was shown under every method; differences mix item sets."
        )
    if result["n_items"] < 10:
        out.append(f"Distinction task: only {result['n_items']} items; intervals are too narrow with so few.")
    for m, r in result["methods"].items():
        if r["n_raters"] < 2:
            out.append(
                f"Distinction task: method {m} has {r['n_raters']} rater(s); its interval ignores rater spread."
            )
        ci, p = r["ci_bootstrap"], r["p_greater"]
        if ci and p is not None and (p < 1 - confidence) != (ci[0] > CHANCE):
            out.append(
                f"Distinction task, {m}: the exact binomial test (one-sided p = {p:.3g}) and the two-way interval "
                f"[{ci[0]:.3f}, {ci[1]:.3f}] disagree about beating chance; trust the crossed interval."
            )
    if result["calibration"]["missing"]:
        out.append(f"Distinction task: {result['calibration']['missing']} answer(s) without confidence.")
    return out


def distinction_conclusion(result: dict, confidence: float, who: str = "people") -> str:
    """One quotable sentence per method and per difference, from the primary (bootstrap) intervals."""
    level = f"{confidence:.0%}"
    parts = []
    for m, r in result["methods"].items():
        ci = r["ci_bootstrap"]
        if r["accuracy"] is None or ci is None:
            continue
        verdict = (
            "above chance"
            if ci[0] > CHANCE
            else ("below chance" if ci[1] < CHANCE else "not distinguishable from chance")
        )
        parts.append(
            f"with {m} maps {who} picked the model's prediction in {r['accuracy']:.1%} of {r['n_answers']} answers "
            f"({r['n_raters']} raters x {r['n_items']} items; two-way {level} interval [{ci[0]:.1%}, {ci[1]:.1%}]): "
            f"{verdict} (25 %)"
        )
    for d in result["differences"]:
        ci = d["ci_bootstrap"]
        if ci is None:
            continue
        verdict = (
            f"{d['a']} helps more"
            if ci[0] > 0
            else (f"{d['b']} helps more" if ci[1] < 0 else "no difference shown")
        )
        parts.append(
            f"{d['a']} - {d['b']}: {100 * d['estimate']:+.1f} points [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]: {verdict}"
        )
    if not parts:
        return "Distinction task: no answers to conclude from."
    return "Distinction task: " + "; ".join(parts) + "."


def distinction_results(
    answers: DistinctionAnswers,
    rules: ExclusionRules = ExclusionRules(),
    *,
    confidence: float = 0.95,
    replicates: int = 2000,
    seed: int = 0,
    mixed: bool = True,
    mixed_max_votes: int = 20000,
    who: str = "people",
) -> tuple[dict, pd.DataFrame]:
    """Every distinction statistic after the exclusion rules (and accuracy without them), the JSON-ready
    summary under `summary.json["distinction"]`, plus the per-(item, method) table."""
    frame, report = exclude_rows(answers.frame, rules)
    kept = answers.with_frame(frame)
    if kept.regular.empty:
        raise nothing_left(report, "distinction answer", "answers")
    result: dict = {"chance": CHANCE, "study": kept.study, "method_order": list(kept.methods)}
    result |= accuracy_only(kept, confidence=confidence, replicates=replicates, seed=seed)
    regular = kept.regular
    methods = list(result["methods"])
    n = len(regular)
    if len(methods) < 2:
        result["mixed_model"] = {"fitted": False, "reason": "one method only: no difference to model"}
    elif not mixed:
        result["mixed_model"] = {"fitted": False, "reason": "turned off (--no-mixed)"}
    elif n > mixed_max_votes:
        result["mixed_model"] = {
            "fitted": False,
            "reason": f"skipped: {n} answers > --mixed-max-votes {mixed_max_votes}",
        }
    else:
        result["mixed_model"] = mixed_difference(regular, methods, confidence)
    result["calibration"] = calibration(
        regular, methods, confidence=confidence, replicates=replicates, seed=seed + 200
    )
    result["runner_up"] = {
        "chance": RUNNER_UP_CHANCE,
        "all": runner_up(regular, confidence=confidence, replicates=replicates, seed=seed + 300),
        "methods": {
            m: runner_up(
                regular[regular["method"] == m],
                confidence=confidence,
                replicates=replicates,
                seed=seed + 301 + k,
            )
            for k, m in enumerate(methods)
        },
    }
    result["design"] = design_facts(kept, answers)
    result["exclusions"] = report
    without = accuracy_only(answers, confidence=confidence, replicates=replicates, seed=seed)
    result["without_exclusions"] = {
        "n_answers": without["n_answers"],
        "methods": {
            m: {k: r[k] for k in ("accuracy", "n_answers", "ci_bootstrap", "p_greater")}
            for m, r in without["methods"].items()
        },
        "differences": [
            {k: d[k] for k in ("a", "b", "estimate", "ci_bootstrap")} for d in without["differences"]
        ],
    }
    result["warnings"] = distinction_warnings(result, confidence) + list(kept.notes)
    result["conclusion"] = distinction_conclusion(result, confidence, who)
    return result, per_item_accuracy(regular)
