"""Simulated distinction answers (issue 14) with known truth, as rows of the votes table.

The model is `analysis.distinction_power.distinction_logits` (raters nested in methods, items crossed
with methods, rater, item and item x method effects on the logit scale) plus what the analysis must
recover: a planted calibration (each step of confidence adds `calibration_slope` to the log-odds of
a correct answer), a runner-up share among wrong answers, and careless, unfinished and
check-failing raters for the exclusion rules. `frame.attrs["truth"]` holds the population values.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from analysis.distinction_power import distinction_logits
from analysis.simulate import logistic, logit
from survey.votes_format import ALL_TASKS, CANDIDATES, CONFIDENCE_LEVELS, normalise


def population_accuracy(
    accuracy: float, rater_sd: float, item_sd: float, item_method_sd: float, calibration_slope: float
) -> float:
    """E[correct] over raters, items and the uniform confidence levels (Gauss-Hermite quadrature)."""
    sd = float(np.sqrt(rater_sd**2 + item_sd**2 + item_method_sd**2))
    x, w = np.polynomial.hermite_e.hermegauss(64)
    levels = np.asarray(CONFIDENCE_LEVELS, float)
    eta = logit(accuracy) + calibration_slope * (levels[:, None] - 3) + sd * x[None, :]
    return float((logistic(eta) * w).sum(1).mean() / w.sum())


def simulate_distinction_votes(
    n_raters: int,
    n_items: int,
    accuracies: Mapping[str, float],
    *,
    rater_sd: float = 0.5,
    item_sd: float = 0.5,
    item_method_sd: float = 0.0,
    calibration_slope: float = 0.0,
    runner_up: float = 0.5,
    attention_checks: int = 0,
    check_failers: int = 0,
    unfinished_raters: int = 0,
    careless_raters: int = 0,
    seed: int = 0,
    study: str = "distinction",
    start: str = "2026-11-30T09:00:00Z",
) -> pd.DataFrame:
    """`n_raters` raters per method, each answering every item once under their one method.

    Confidence is uniform on 1..5 and shifts the log-odds by calibration_slope * (confidence - 3).
    Wrong answers land on the runner-up (rank 2) with probability `runner_up`, else on rank 3 or 4.
    Per method, the first `careless_raters` answer at random in ~300 ms, the next `check_failers`
    fail every attention check, the last `unfinished_raters` stop half way. Attention checks
    (`check-NN` items) have an obvious answer that careful raters always get.
    """
    rng = np.random.default_rng(seed)
    methods = list(accuracies)
    eta = distinction_logits(
        n_raters, n_items, [accuracies[m] for m in methods], rater_sd, item_sd, item_method_sd, rng
    )
    m_count = len(methods)
    confidence = rng.integers(1, 6, size=eta.shape)
    p = logistic(eta + calibration_slope * (confidence - 3))
    careless = np.zeros((m_count, n_raters), bool)
    careless[:, :careless_raters] = True
    p = np.where(careless[:, :, None], 0.25, p)
    correct = rng.random(p.shape) < p
    wrong_rank = np.where(rng.random(p.shape) < runner_up, 2, rng.integers(3, 5, size=p.shape))
    rank = np.where(correct, 1, wrong_rank)

    frames = []
    for k, method in enumerate(methods):
        for r in range(n_raters):
            rater = f"r-{method}-{r:04d}"
            n_trials = n_items + attention_checks
            order = rng.permutation(n_trials)  # position of each trial in the rater's sequence
            regular = pd.DataFrame(
                {
                    "item": [f"i-{i:05d}" for i in range(n_items)],
                    "confidence": confidence[k, r],
                    "correct": correct[k, r],
                    "chosen_rank": rank[k, r].astype(float),
                    "attention_check": False,
                }
            )
            fails = check_failers and careless_raters <= r < careless_raters + check_failers
            checks = pd.DataFrame(
                {
                    "item": [f"check-{j:02d}" for j in range(attention_checks)],
                    "confidence": 5,
                    "correct": not fails and not careless[k, r],
                    "chosen_rank": np.nan,
                    "attention_check": True,
                }
            )
            rows = pd.concat([regular, checks], ignore_index=True)
            rows["position"] = order + 1
            rows = rows.sort_values("position", kind="stable")
            if r >= n_raters - unfinished_raters:
                rows = rows.iloc[: max(1, n_trials // 2)]
            rows["rater"] = rater
            rows["method"] = method
            rows["rater_finished"] = r < n_raters - unfinished_raters
            rows["response_ms"] = (
                rng.lognormal(np.log(300 if careless[k, r] else 4000), 0.3, len(rows))
                .round()
                .astype(np.int64)
            )
            frames.append(rows)
    out = pd.concat(frames, ignore_index=True)

    def chosen_and_answer() -> tuple[np.ndarray, np.ndarray]:
        answer = rng.integers(0, CANDIDATES, size=len(out))
        other = (answer + rng.integers(1, CANDIDATES, size=len(out))) % CANDIDATES  # any but the answer
        return np.where(out["correct"], answer, other), answer

    out["chosen_index"], out["answer_index"] = chosen_and_answer()  # in the package's candidate list
    out["chosen_slot"], out["answer_slot"] = chosen_and_answer()  # on the screen (shuffled per rater)
    out["created_at"] = (pd.Timestamp(start) + pd.to_timedelta(out["position"] * 10, unit="s")).dt.strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    out["study"] = study
    out["task"] = "distinction"
    out["label"] = np.where(out["attention_check"], "check", "label")
    out["repeat"] = 0
    for column in ALL_TASKS.columns:  # the pairwise columns exist in the one votes table, empty here
        if column not in out:
            out[column] = None
    out = normalise(out[list(ALL_TASKS.columns)], source="simulated distinction answers")
    out.attrs["truth"] = {
        "accuracy": {
            m: population_accuracy(accuracies[m], rater_sd, item_sd, item_method_sd, calibration_slope)
            for m in methods
        },
        "typical_accuracy": dict(accuracies),
        "calibration_slope": calibration_slope,
        "runner_up": runner_up,
        "rater_sd": rater_sd,
        "item_sd": item_sd,
        "item_method_sd": item_method_sd,
    }
    return out


def with_task(pairwise: pd.DataFrame, distinction: pd.DataFrame) -> pd.DataFrame:
    """One votes table holding both tasks (pairwise rows get task = "pairwise" and empty distinction
    columns), as an export of a study with both would."""
    both = pd.concat([pairwise.assign(task="pairwise"), distinction], ignore_index=True)
    return normalise(both[list(ALL_TASKS.columns)], source="simulated votes of both tasks")
