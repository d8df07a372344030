"""Run every analysis on one study and collect the results: the stable summary keys and the tables.

`run_analysis` is the one function the report command and the notebook call. Main results use the
votes left after exclusions; the same stable keys are computed on all votes under
`without_exclusions` so a reader sees whether the exclusions matter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.agreement import agreement_summary, retest_consistency
from analysis.binomial import binomial_summary
from analysis.crossed import bootstrap_rate, cell_table
from analysis.distinction import distinction_results
from analysis.distinction_answers import DistinctionAnswers
from analysis.exclusions import ExclusionRules, apply_exclusions
from analysis.items import item_level_summary, per_item_table
from analysis.load import Votes
from analysis.metric_agreement import metric_correlations
from analysis.mixed import fit_mixed_models
from analysis.multi import compare_methods
from analysis.position import position_bias
from analysis.tasks import StudyVotes

#: The keys pipelines may rely on (issue 5); extra keys may be added, these never change.
STABLE_KEYS = (
    "n_votes",
    "n_raters",
    "n_items",
    "proposed_rate",
    "binomial",
    "items",
    "two_way_bootstrap",
    "position",
    "agreement",
    "exclusions",
)

#: Rater ids of python -m scripts.simulate_raters start with this (the script imports it from here).
SIMULATED_RATER_PREFIX = "sim"


@dataclass(frozen=True)
class AnalysisOptions:
    """Knobs of the analysis; defaults are what `python -m analysis.report` uses."""

    confidence: float = 0.95
    replicates: int = 2000
    seed: int = 0
    mixed: bool = True
    mixed_max_votes: int = 20000
    side_threshold: float = 0.9
    min_side_votes: int = 10

    def __post_init__(self) -> None:
        if not 0.5 < self.confidence < 1:
            raise ValueError(f"confidence must be between 0.5 and 1, got {self.confidence}")
        if self.replicates < 100:
            raise ValueError(f"use at least 100 bootstrap replicates, got {self.replicates}")


@dataclass
class Analysis:
    """Everything a report shows: `summary` (JSON-ready), per-item and per-rater tables, the votes.

    A study without pairwise votes (distinction task only) has `votes` and `all_votes` None and empty
    `items`/`raters`; `distinction_items` holds the per-(item, method) accuracies when the study has
    distinction answers.
    """

    summary: dict
    items: pd.DataFrame
    raters: pd.DataFrame
    votes: Votes | None
    all_votes: Votes | None
    extra: dict = field(default_factory=dict)
    distinction_items: pd.DataFrame | None = None


def per_rater_table(votes: Votes) -> pd.DataFrame:
    """One row per rater: comparison votes, proposed rate, left rate, failed checks, median response."""
    f = votes.frame
    comp = votes.comparisons
    table = pd.DataFrame(
        {
            "votes": comp.groupby("rater")["y"].size(),
            "proposed_rate": comp.groupby("rater")["y"].mean(),
            "left_rate": f[~f["attention_check"]].groupby("rater")["chose_left"].mean(),
            "failed_checks": f.groupby("rater")["failed_check"].sum(),
            "median_response_ms": f.groupby("rater")["response_ms"].median(),
            "finished": f.groupby("rater")["rater_finished"].all(),
        }
    )
    table.index.name = "rater"
    return table.reset_index().fillna({"votes": 0, "failed_checks": 0})


def core_results(votes: Votes, options: AnalysisOptions) -> tuple[dict, pd.DataFrame]:
    """The stable keys (except `exclusions`) for one set of votes, plus the per-item table."""
    comp = votes.comparisons
    decided = comp[comp["y"].notna()]
    k, n = int(decided["y"].sum()), int(len(decided))
    binomial = binomial_summary(k, n, confidence=options.confidence)
    items = per_item_table(comp, options.confidence)
    item_summary = item_level_summary(items, options.confidence)
    table = cell_table(decided["rater"], decided["item"], decided["y"])
    two_way = bootstrap_rate(
        table, replicates=options.replicates, seed=options.seed, confidence=options.confidence
    )
    item_only = bootstrap_rate(
        table,
        replicates=options.replicates,
        seed=options.seed + 1,
        confidence=options.confidence,
        resample_raters=False,
    )
    trials = votes.frame[votes.frame["pair"] & ~votes.frame["attention_check"]]
    position = position_bias(
        trials,
        side_threshold=options.side_threshold,
        min_votes=options.min_side_votes,
        confidence=options.confidence,
    )
    agreement = agreement_summary(
        comp,
        replicates=max(200, options.replicates // 2),
        seed=options.seed + 2,
        confidence=options.confidence,
    )
    result = {
        "n_votes": int(len(comp)),
        "n_raters": int(comp["rater"].nunique()),
        "n_items": int(comp["item"].nunique()),
        "proposed_rate": binomial["rate"],
        "binomial": {
            key: binomial[key] for key in ("k", "n", "p_two_sided", "p_greater", "ci_exact", "ci_wilson")
        }
        | {"p_less": binomial["p_less"], "no_preference": int(len(comp) - n)},
        "items": item_summary,
        "two_way_bootstrap": two_way,
        "item_bootstrap": item_only,
        "position": position,
        "agreement": agreement,
    }
    return result, items


def _crossed_warnings(result: dict, options: AnalysisOptions) -> list[str]:
    alpha = 1 - options.confidence
    warnings = []
    p = result["binomial"]["p_two_sided"]
    ci = result["two_way_bootstrap"]["ci"]
    if p is not None and ci is not None:
        naive = p < alpha
        crossed = not ci[0] <= 0.5 <= ci[1]
        if naive != crossed:
            warnings.append(
                f"Naive and crossed conclusions differ: the pooled binomial test gives p = {p:.3g} "
                f"({'significant' if naive else 'not significant'} at {alpha:g}) but the two-way rater x item "
                f"bootstrap interval [{ci[0]:.3f}, {ci[1]:.3f}] {'excludes' if crossed else 'includes'} 0.5. "
                "Votes share raters and items, so trust the crossed result."
            )
    if result["n_raters"] == 1:
        warnings.append(
            "Only one rater: the crossed interval cannot reflect differences between raters, "
            "and agreement is undefined."
        )
    if result["n_items"] < 2:
        warnings.append("Only one item: nothing can be said about other images.")
    elif result["n_items"] < 10:
        warnings.append(
            f"Only {result['n_items']} items: with so few, even the two-way interval is too narrow "
            "(about 87% coverage for a nominal 95% with 6 items in simulations); add items."
        )
    if result["items"]["ties"]:
        warnings.append(f"{result['items']['ties']} item(s) tied; they are left out of the item-level test.")
    if result["binomial"]["no_preference"]:
        warnings.append(
            f"{result['binomial']['no_preference']} 'no preference' vote(s) are left out of the rates."
        )
    pos = result["position"]
    if pos["p_two_sided"] is not None and pos["p_two_sided"] < alpha:
        warnings.append(
            f"Position bias: raters chose the left map {pos['left_rate']:.1%} of the time "
            f"(p = {pos['p_two_sided']:.3g})."
        )
    if pos["flagged_raters"]:
        warnings.append(
            f"{len(pos['flagged_raters'])} rater(s) chose one side nearly always: "
            + ", ".join(r["rater"] for r in pos["flagged_raters"][:10])
        )
    return warnings


def run_analysis(
    votes: Votes | StudyVotes,
    rules: ExclusionRules = ExclusionRules(),
    options: AnalysisOptions = AnalysisOptions(),
    metrics: pd.DataFrame | None = None,
    progress: Callable[[str], None] | None = None,
) -> Analysis:
    """All analyses of one study. `progress(step)` is called before each step (for progress bars).

    `votes` is a study's pairwise `Votes` or a `StudyVotes` (`analysis.tasks.load_study`) that may
    also hold distinction answers (summary key `distinction`); without pairwise votes only the
    distinction task is analysed and the pairwise parts are skipped with a note.
    """
    step = progress or (lambda name: None)
    study = votes if isinstance(votes, StudyVotes) else StudyVotes(votes, None)
    if study.pairwise is None:
        return _distinction_only(study.distinction, rules, options, step, metrics_given=metrics is not None)
    votes = study.pairwise
    step("exclusions")
    excluded = apply_exclusions(votes, rules)
    kept = excluded.votes
    step("vote, item and crossed-design statistics")
    main, items = core_results(kept, options)
    step("statistics without exclusions")
    without, _ = core_results(votes, options)
    summary: dict = dict(main)
    summary["exclusions"] = excluded.report
    summary["without_exclusions"] = without
    summary["study"] = {
        "name": kept.study,
        "proposed": kept.proposed,
        "baseline": kept.baseline,
        "methods": list(kept.methods),
        "source": kept.source,
    }
    warnings = _crossed_warnings(main, options) + list(kept.notes)
    step("test-retest")
    summary["test_retest"] = retest_consistency(kept.frame, options.confidence)
    step("mixed models")
    if options.mixed:
        summary["mixed_model"] = fit_mixed_models(
            kept.comparisons, options.confidence, options.mixed_max_votes
        )
        linear = summary["mixed_model"]["linear"]
        if linear.get("fitted") and linear["p_two_sided"] is not None and main["two_way_bootstrap"]["ci"]:
            ci = main["two_way_bootstrap"]["ci"]
            if (linear["p_two_sided"] < 1 - options.confidence) != (not ci[0] <= 0.5 <= ci[1]):
                warnings.append(
                    f"The linear mixed model (p = {linear['p_two_sided']:.3g}) and the two-way bootstrap "
                    "disagree about whether the rate differs from 0.5; the result is borderline."
                )
    else:
        summary["mixed_model"] = {
            "linear": {"fitted": False, "reason": "turned off (--no-mixed)"},
            "bayes": {"fitted": False, "reason": "turned off (--no-mixed)"},
        }
    if len(kept.methods) > 2:
        step("method comparison")
        summary["methods"] = compare_methods(
            kept.frame,
            kept.methods,
            replicates=max(200, options.replicates // 2),
            seed=options.seed + 3,
            confidence=options.confidence,
        )
        warnings += summary["methods"]["warnings"]
    if metrics is not None:
        step("automatic metrics")
        summary["metrics"] = metric_correlations(items, metrics, kept.proposed, kept.baseline)
    rules_changed = (
        main["binomial"]["p_two_sided"] is not None
        and without["binomial"]["p_two_sided"] is not None
        and (main["binomial"]["p_two_sided"] < 1 - options.confidence)
        != (without["binomial"]["p_two_sided"] < 1 - options.confidence)
    )
    if rules_changed:
        warnings.append("The exclusions change the conclusion of the binomial test; report both.")
    distinction_items = None
    if study.distinction is not None:
        step("distinction task")
        summary["distinction"], distinction_items = _distinction(study.distinction, rules, options)
        warnings += summary["distinction"]["warnings"]
    summary["warnings"] = warnings
    summary["simulated_raters"] = simulated_raters(kept.frame["rater"])
    summary["conclusion"] = conclusion(summary, options)
    summary["options"] = options_summary(options)
    return Analysis(
        summary=to_jsonable(summary),
        items=items,
        raters=per_rater_table(kept),
        votes=kept,
        all_votes=votes,
        distinction_items=distinction_items,
    )


def options_summary(options: AnalysisOptions) -> dict:
    """The `options` key of summary.json."""
    return {
        "confidence": options.confidence,
        "bootstrap_replicates": options.replicates,
        "seed": options.seed,
        "side_threshold": options.side_threshold,
        "min_side_votes": options.min_side_votes,
    }


def _distinction(
    answers: DistinctionAnswers, rules: ExclusionRules, options: AnalysisOptions
) -> tuple[dict, pd.DataFrame]:
    """`summary["distinction"]` and the per-(item, method) table; says "simulated raters" when they are."""
    simulated, total = simulated_raters(answers.frame["rater"])
    result, items = distinction_results(
        answers,
        rules,
        confidence=options.confidence,
        replicates=options.replicates,
        seed=options.seed + 10,
        mixed=options.mixed,
        mixed_max_votes=options.mixed_max_votes,
        who="simulated raters" if simulated and simulated == total else "people",
    )
    if simulated == total and simulated:
        result["conclusion"] = "Simulated raters, not people: " + result["conclusion"]
    elif simulated:
        result["conclusion"] = f"{simulated} of {total} raters are simulated: " + result["conclusion"]
    return result, items


def _distinction_only(
    answers: DistinctionAnswers,
    rules: ExclusionRules,
    options: AnalysisOptions,
    step: Callable[[str], None],
    metrics_given: bool = False,
) -> Analysis:
    """A study with distinction answers only: the pairwise analyses are skipped, with a note."""
    step("distinction task")
    result, items = _distinction(answers, rules, options)
    if metrics_given:
        result["warnings"].append(
            "--metrics ignored: automatic metrics are correlated with pairwise preference, and this study "
            "has no pairwise votes."
        )
    summary = {
        "study": {"name": answers.study, "methods": list(answers.methods), "source": answers.source, "tasks": ["distinction"]},
        "pairwise": {"skipped": "the study has no pairwise (which map is better) votes, only distinction answers"},
        "distinction": result,
        "warnings": list(result["warnings"]),
        "simulated_raters": simulated_raters(answers.frame["rater"]),
        "conclusion": result["conclusion"],
        "options": options_summary(options),
    }
    return Analysis(
        summary=to_jsonable(summary),
        items=pd.DataFrame(),
        raters=pd.DataFrame(),
        votes=None,
        all_votes=None,
        distinction_items=items,
    )


def simulated_raters(raters: pd.Series) -> tuple[int, int]:
    """(simulated, all) distinct raters; simulated ones have ids starting with SIMULATED_RATER_PREFIX."""
    ids = pd.Series(raters.astype(str).unique())
    return int(ids.str.startswith(SIMULATED_RATER_PREFIX + "-").sum()), int(len(ids))


def conclusion(summary: dict, options: AnalysisOptions) -> str:
    """One sentence a reader can quote, based on the primary (two-way bootstrap) interval.

    Votes from `python -m scripts.simulate_raters` are said to be simulated, in the sentence itself."""
    rate, ci = summary["proposed_rate"], summary["two_way_bootstrap"]["ci"]
    name = summary["study"]["proposed"]
    if rate is None or ci is None:
        return "No decided comparison votes: no conclusion."
    simulated, total = summary.get("simulated_raters", (0, 0))
    who = "simulated raters" if simulated and simulated == total else "people"
    level = f"{options.confidence:.0%}"
    if ci[0] > 0.5:
        verdict = f"{who} prefer {name}"
    elif ci[1] < 0.5:
        verdict = f"{who} prefer {summary['study']['baseline']}"
    else:
        verdict = "the data cannot tell the two methods apart"
    text = (
        f"{name} was preferred in {rate:.1%} of {summary['binomial']['n']} votes "
        f"({summary['n_raters']} raters x {summary['n_items']} items; two-way {level} interval "
        f"[{ci[0]:.1%}, {ci[1]:.1%}]): {verdict}."
    )
    if simulated == total and simulated:
        return "Simulated raters, not people (python -m scripts.simulate_raters): " + text
    if simulated:
        return f"{simulated} of {total} raters are simulated (ids {SIMULATED_RATER_PREFIX}-...): " + text
    return text


def to_jsonable(value):
    """Plain Python types (JSON has no numpy scalars, NaN or tuples): NaN becomes None."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [to_jsonable(v) for v in value.tolist()]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not np.isfinite(value) else float(value)
    return value
