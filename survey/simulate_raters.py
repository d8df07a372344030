"""Simulated raters for the demo: ``python -m survey.simulate_raters --db URL --study S --raters 30``.

They vote through the same service functions as the app (start_rater, next_trial, record_vote), so a
demo run also exercises the real vote path. Choices follow the crossed design of contract D: rater r
prefers the proposed map on item i with probability logistic(logit(rate) + u_r + v_i)
(``analysis.simulate.crossed_preference_probabilities``); attention checks are answered correctly with
probability ``--attention-accuracy``.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
from tqdm import tqdm

from survey.db import DatabaseError, get_engine
from survey.service import SurveyError, get_study, next_trial, record_vote, reveal_trial, start_rater


def simulate(url: str | None, study: str, *, raters: int = 30, seed: int = 0, rate: float = 0.7,
             rater_sd: float = 0.5, item_sd: float = 0.5, attention_accuracy: float = 0.97,
             prefix: str = "sim", progress: bool = True) -> int:
    """Runs ``raters`` simulated raters (ids ``sim-001`` ...) to the end; returns the votes recorded."""
    from analysis.simulate import crossed_preference_probabilities

    engine = get_engine(url)
    view = get_study(engine, study)
    if view is None:
        raise SurveyError(f"no study named {study!r}; import it first with python -m survey.study import")
    if not view.is_open:
        raise SurveyError(f"study {study!r} is closed; open it with python -m survey.study open {study}")
    rng = np.random.default_rng(seed)
    ids = [f"{prefix}-{k + 1:03d}" for k in range(raters)]
    for rater in ids:  # create everyone first so the item columns of the probability matrix are known
        start_rater(engine, study, rater)
    # One column per item (n_trials_per_rater is an upper bound on the items): u_r and v_i are shared.
    probabilities = crossed_preference_probabilities(raters, view.n_trials_per_rater, rate, rater_sd, item_sd,
                                                     rng)
    items: dict[str, int] = {}
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
    parser = argparse.ArgumentParser(prog="python -m survey.simulate_raters",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--db", default=None, metavar="URL",
                        help="database URL (default: $SURVEY_DB_URL or sqlite:///data/survey.db)")
    parser.add_argument("--study", required=True, help="study name")
    parser.add_argument("--raters", type=int, default=30, help="number of simulated raters (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the choices (default 0)")
    parser.add_argument("--rate", type=float, default=0.7,
                        help="preference for the proposed map of a typical rater on a typical item "
                             "(default 0.7)")
    parser.add_argument("--rater-sd", type=float, default=0.5, help="sd of rater effects on the logit scale")
    parser.add_argument("--item-sd", type=float, default=0.5, help="sd of item effects on the logit scale")
    parser.add_argument("--attention-accuracy", type=float, default=0.97,
                        help="probability of answering an attention check correctly (default 0.97)")
    parser.add_argument("--prefix", default="sim",
                        help="rater id prefix (default sim: sim-001, sim-002, ...)")
    args = parser.parse_args(argv)
    try:
        if args.raters < 1:
            raise SurveyError(f"--raters must be >= 1, got {args.raters}")
        if not 0 <= args.attention_accuracy <= 1:
            raise SurveyError(f"--attention-accuracy must be in [0, 1], got {args.attention_accuracy}")
        n = simulate(args.db, args.study, raters=args.raters, seed=args.seed, rate=args.rate,
                     rater_sd=args.rater_sd, item_sd=args.item_sd, attention_accuracy=args.attention_accuracy,
                     prefix=args.prefix)
    except (SurveyError, DatabaseError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"recorded {n} new vote(s) from {args.raters} simulated raters in study {args.study!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
