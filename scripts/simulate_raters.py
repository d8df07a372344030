"""Simulated raters for the demo: ``python -m scripts.simulate_raters --db URL --study S --raters 30``.

They vote through the same service functions as the app (start_rater, next_trial, record_vote), so a
demo run also exercises the real vote path. Attention checks are answered correctly with probability
``--attention-accuracy``. Two models of the comparison votes (docs/survey.md):

- ``--metrics CSV`` (what ``make demo-votes`` uses): the raters look at the maps. Rater r prefers the
  proposed map on item i with probability logistic(logit(rate) + sensitivity * d_i + u_r + v_i), where
  d_i is the item's energy-in-mask difference (proposed - baseline) read from the cams.metrics CSV,
  u_r ~ N(0, rater_sd^2), v_i ~ N(0, item_sd^2), and rate defaults to 0.5: identical maps get no
  preference (``analysis.simulate.metric_driven_probabilities``).
- without it: a fixed preference whatever the maps show, logistic(logit(rate) + u_r + v_i) with rate 0.7
  (``analysis.simulate.crossed_preference_probabilities``), for power analyses and tests.

Rater ids start with ``sim`` so an analysis report can tell simulated raters from people.

A script, not part of the survey: it uses the analysis package's crossed-design maths, and the survey
never imports the analysis (docs/architecture.md).
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from analysis.simulate import (
    DEFAULT_SENSITIVITY,
    crossed_preference_probabilities,
    metric_differences,
    metric_driven_probabilities,
)
from analysis.summary import SIMULATED_RATER_PREFIX as SIMULATED_PREFIX  # reports flag these raters
from survey.db import DatabaseError, get_engine
from survey.service import SurveyError, get_study, next_trial, record_vote, start_rater
from testing.reveal import reveal_trial


def read_metric_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise SurveyError(f"metrics file {path} not found; make it with python -m cams.metrics PACKAGE")
    with open(path, newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def differences_for(rows: list[dict[str, str]], path: Path, proposed: str, baseline: str) -> dict[str, float]:
    """item -> energy in mask of proposed minus baseline, from a cams.metrics CSV's rows."""
    differences = metric_differences(rows, proposed, baseline)
    if not differences:
        raise SurveyError(f"{path} has no item scored for both {proposed!r} and {baseline!r}; "
                          "pass the metrics of this study's package")
    return differences


def simulate(url: str | None, study: str, *, raters: int = 30, seed: int = 0, rate: float | None = None,
             rater_sd: float = 0.5, item_sd: float = 0.5, attention_accuracy: float = 0.97,
             prefix: str = SIMULATED_PREFIX, progress: bool = True, metrics: Path | None = None,
             sensitivity: float | None = None) -> int:
    """Runs ``raters`` simulated raters (ids ``sim-001`` ...) to the end; returns the votes recorded.

    With ``metrics`` the preference follows each item's energy-in-mask difference; without, it is
    ``rate`` (default 0.7) on a typical item whatever the maps show."""
    if not prefix.startswith(SIMULATED_PREFIX):
        raise SurveyError(f"--prefix must start with {SIMULATED_PREFIX!r} (reports use it to flag simulated "
                          f"raters), got {prefix!r}")

    engine = get_engine(url)
    view = get_study(engine, study)
    if view is None:
        raise SurveyError(f"no study named {study!r}; import it first with python -m survey.study import")
    if not view.is_open:
        raise SurveyError(f"study {study!r} is closed; open it with python -m survey.study open {study}")
    rows = read_metric_rows(Path(metrics)) if metrics is not None else []  # a bad file fails before any vote
    rng = np.random.default_rng(seed)
    ids = [f"{prefix}-{k + 1:03d}" for k in range(raters)]
    for rater in ids:  # create everyone first so the item columns of the probability matrix are known
        start_rater(engine, study, rater)
    items: dict[str, int] = {}
    if metrics is not None:
        probabilities = None  # made at the first comparison trial, which names the proposed and baseline methods

        def metric_probabilities(proposed: str, baseline: str):
            differences = differences_for(rows, Path(metrics), proposed, baseline)
            items.update({key: column for column, key in enumerate(differences)})
            return metric_driven_probabilities(
                raters, list(differences.values()), DEFAULT_SENSITIVITY if sensitivity is None else sensitivity,
                rater_sd, item_sd, rng, 0.5 if rate is None else rate)
    else:
        # One column per item (n_trials_per_rater is an upper bound on the items): u_r and v_i are shared.
        probabilities = crossed_preference_probabilities(raters, view.n_trials_per_rater,
                                                         0.7 if rate is None else rate, rater_sd, item_sd, rng)
    recorded = 0
    bar = tqdm(total=raters * view.n_trials_per_rater, desc=f"simulated votes ({study})", unit="vote",
               disable=not progress)
    for r, rater in enumerate(ids):
        while (trial := next_trial(engine, study, rater)) is not None:
            truth = reveal_trial(engine, trial.token)
            if truth.is_attention_check:
                correct = rng.random() < attention_accuracy
                wanted = truth.expected_method if correct else (
                    truth.right_method if truth.left_method == truth.expected_method else truth.left_method)
            else:
                if probabilities is None:
                    baseline = truth.right_method if truth.left_method == truth.proposed_method else truth.left_method
                    probabilities = metric_probabilities(truth.proposed_method, baseline)
                if metrics is not None and truth.item not in items:
                    raise SurveyError(f"item {truth.item!r} of study {study!r} is not in {metrics}; "
                                      "pass the metrics of this study's package")
                column = items.setdefault(truth.item, len(items))
                prefers_proposed = rng.random() < probabilities[r, column]
                proposed_left = truth.left_method == truth.proposed_method
                other = truth.right_method if proposed_left else truth.left_method
                wanted = truth.proposed_method if prefers_proposed else other
            choice = "A" if truth.left_method == wanted else "B"
            result = record_vote(engine, study, rater, trial.token, choice)
            recorded += int(result.recorded)
            bar.update(1)
    bar.close()
    return recorded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.simulate_raters",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--db", default=None, metavar="URL",
                        help="database URL (default: $SURVEY_DB_URL or sqlite:///data/survey.db)")
    parser.add_argument("--study", required=True, help="study name")
    parser.add_argument("--raters", type=int, default=30, help="number of simulated raters (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the choices (default 0)")
    parser.add_argument("--metrics", type=Path, default=None, metavar="CSV",
                        help="cams.metrics CSV of the study's package: each item's preference follows its "
                             "energy-in-mask difference (proposed - baseline)")
    parser.add_argument("--sensitivity", type=float, default=None,
                        help="with --metrics: logit units per unit of energy-in-mask difference (default 15: "
                             "0.1 more energy on the object -> preferred with p = 0.82)")
    parser.add_argument("--rate", type=float, default=None,
                        help="preference for the proposed map of a typical rater on a typical item (default "
                             "0.7; with --metrics 0.5, i.e. only the maps decide)")
    parser.add_argument("--rater-sd", type=float, default=0.5, help="sd of rater effects on the logit scale")
    parser.add_argument("--item-sd", type=float, default=0.5, help="sd of item effects on the logit scale")
    parser.add_argument("--attention-accuracy", type=float, default=0.97,
                        help="probability of answering an attention check correctly (default 0.97)")
    parser.add_argument("--prefix", default=SIMULATED_PREFIX,
                        help="rater id prefix, starting with 'sim' (default sim: sim-001, sim-002, ...)")
    args = parser.parse_args(argv)
    try:
        if args.raters < 1:
            raise SurveyError(f"--raters must be >= 1, got {args.raters}")
        if not 0 <= args.attention_accuracy <= 1:
            raise SurveyError(f"--attention-accuracy must be in [0, 1], got {args.attention_accuracy}")
        n = simulate(args.db, args.study, raters=args.raters, seed=args.seed, rate=args.rate,
                     rater_sd=args.rater_sd, item_sd=args.item_sd, attention_accuracy=args.attention_accuracy,
                     prefix=args.prefix, metrics=args.metrics, sensitivity=args.sensitivity)
    except (SurveyError, DatabaseError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"recorded {n} new vote(s) from {args.raters} simulated raters in study {args.study!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
