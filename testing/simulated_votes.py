"""Synthetic votes tables for tests and benchmarks: simulated crossed studies in the votes CSV format.

Test scaffolding, not product: the analysis never needs it. The probabilities come from the
crossed-design maths in `analysis.simulate` (contract D); the frames have exactly the columns and
dtypes of `survey.votes_format` (contract C), the same as `survey.export.votes_frame` gives, so what
the tests and benchmarks analyse is what `python -m survey.study export` writes (write them to a file
with `survey.votes_format.write_votes_csv`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from analysis.simulate import crossed_preference_probabilities, logistic, logit, marginal_rate
from survey.votes_format import COLUMNS, normalise

_LABELS = np.array(
    [
        "waiting room",
        "television studio",
        "lake",
        "forest path",
        "bamboo forest",
        "dam",
        "ice floe",
        "forest road",
        "apartment building (outdoor)",
        "kitchen",
    ],
    dtype=object,
)


def _role_slices(n_raters: int, careless: int, side_pickers: int, unfinished: int) -> dict[str, np.ndarray]:
    if min(careless, side_pickers, unfinished) < 0:
        raise ValueError("careless_raters, side_pickers and unfinished_raters must be >= 0")
    if careless + side_pickers + unfinished > n_raters:
        raise ValueError(
            f"careless_raters + side_pickers + unfinished_raters ({careless + side_pickers + unfinished}) "
            f"exceeds n_raters ({n_raters})"
        )
    idx = np.arange(n_raters)
    return {
        "careless": idx[:careless],
        "side_pickers": idx[careless : careless + side_pickers],
        "unfinished": idx[n_raters - unfinished :] if unfinished else idx[:0],
    }


def _timestamps(start: str, rater: np.ndarray, position: np.ndarray, response_ms: np.ndarray) -> np.ndarray:
    """ISO 8601 UTC strings: raters start a minute apart and vote one trial after another."""
    t0 = np.datetime64(start.rstrip("Z"), "ms")
    offset_ms = rater.astype(np.int64) * 60_000 + position.astype(np.int64) * 2_000 + response_ms
    return np.datetime_as_string(t0 + offset_ms.astype("timedelta64[ms]"), unit="s", timezone="UTC")


def simulate_votes(
    n_raters: int,
    n_items: int,
    rate: float,
    rater_sd: float,
    item_sd: float,
    seed: int | None = 0,
    *,
    study: str = "sim",
    proposed: str = "vib",
    baseline: str = "baseline",
    items_per_rater: int | None = None,
    left_bias: float = 0.0,
    side_pickers: int = 0,
    no_preference: float = 0.0,
    repeats: int = 0,
    attention_checks: int = 0,
    careless_raters: int = 0,
    unfinished_raters: int = 0,
    start: str = "2026-11-27T18:00:00Z",
) -> pd.DataFrame:
    """Votes of a simulated crossed study, one row per vote, in the votes CSV format (contract C).

    Each rater sees `items_per_rater` items (all by default) in their own random order, the proposed
    map on a random side. Options add what real studies have:
    `left_bias` (logit shift towards the left map), `side_pickers` (raters who always choose left),
    `no_preference` (chance of a "no preference" vote: empty chosen_method), `repeats` (items shown a
    second time at the end with sides swapped, repeat=1), `attention_checks` (catch trials per rater;
    expected_method is the proposed method; careful raters pass them), `careless_raters` (answer at
    random, fast, and fail about half the checks) and `unfinished_raters` (stop part way;
    rater_finished false). Rater roles take the first (careless, then side pickers) and last
    (unfinished) rater indices. `frame.attrs["truth"]` records the marginal rate and the roles.
    """
    rng = np.random.default_rng(seed)
    k = n_items if items_per_rater is None else int(items_per_rater)
    if not 1 <= k <= n_items:
        raise ValueError(f"items_per_rater must be between 1 and n_items={n_items}, got {items_per_rater}")
    if not 0 <= repeats <= k:
        raise ValueError(f"repeats must be between 0 and items per rater ({k}), got {repeats}")
    if attention_checks < 0:
        raise ValueError(f"attention_checks must be >= 0, got {attention_checks}")
    if not 0 <= no_preference < 1:
        raise ValueError(f"no_preference must be in [0, 1), got {no_preference}")
    if proposed == baseline:
        raise ValueError(f"proposed and baseline must differ, both are {proposed!r}")
    roles = _role_slices(n_raters, careless_raters, side_pickers, unfinished_raters)
    prob = crossed_preference_probabilities(n_raters, n_items, rate, rater_sd, item_sd, rng)

    # Each rater's items: a random subset of size k in random order (one argsort per row).
    order = np.argsort(rng.random((n_raters, n_items)), axis=1)[:, :k]
    n_trials = k + repeats + attention_checks
    # Trial kinds per rater, column-wise: k first showings, `repeats` repeats, then checks.
    kind = np.concatenate(
        [np.zeros(k, np.int8), np.ones(repeats, np.int8), np.full(attention_checks, 2, np.int8)]
    )
    item = np.concatenate([order, order[:, :repeats], np.full((n_raters, attention_checks), -1)], axis=1)
    # Sort keys: repeats come after every first showing, checks anywhere.
    keys = rng.random((n_raters, n_trials)) + np.where(kind == 1, 1.0, 0.0)[None, :]
    keys[:, kind == 2] *= 2.0
    position = np.argsort(np.argsort(keys, axis=1), axis=1) + 1

    proposed_left_first = rng.random((n_raters, k)) < 0.5
    proposed_left = np.concatenate(
        [
            proposed_left_first,
            ~proposed_left_first[:, :repeats],
            rng.random((n_raters, attention_checks)) < 0.5,
        ],
        axis=1,
    )

    rater_idx = np.repeat(np.arange(n_raters), n_trials)
    kind_f = np.tile(kind, n_raters)
    item_f = item.ravel()
    position_f = position.ravel()
    left_f = proposed_left.ravel()
    is_check = kind_f == 2
    careless = np.zeros(n_raters, bool)
    careless[roles["careless"]] = True
    picker = np.zeros(n_raters, bool)
    picker[roles["side_pickers"]] = True

    p = np.where(is_check, 1.0, prob[rater_idx, np.maximum(item_f, 0)])
    if left_bias:
        p = np.where(
            is_check,
            p,
            logistic(logit(np.clip(p, 1e-12, 1 - 1e-12)) + np.where(left_f, left_bias, -left_bias)),
        )
    p = np.where(careless[rater_idx], 0.5, p)
    chose_proposed = rng.random(p.size) < p
    chose_left = np.where(picker[rater_idx], True, chose_proposed == left_f)
    chose_proposed = chose_left == left_f
    none = (rng.random(p.size) < no_preference) & ~is_check & ~picker[rater_idx]

    response_ms = (
        np.where(
            careless[rater_idx],
            rng.lognormal(np.log(350), 0.3, p.size),
            rng.lognormal(np.log(3500), 0.5, p.size),
        )
        .round()
        .astype(np.int64)
    )

    # Unfinished raters stop after 20-80 % of their sequence.
    done = np.full(n_raters, n_trials)
    if len(roles["unfinished"]):
        done[roles["unfinished"]] = np.maximum(
            1, (rng.uniform(0.2, 0.8, len(roles["unfinished"])) * n_trials).astype(int)
        )
    finished = done == n_trials
    keep = position_f <= done[rater_idx]

    item_names = np.array([f"i-{i:05d}" for i in range(n_items)], dtype=object)
    check_names = np.array([f"check-{j:02d}" for j in range(max(attention_checks, 1))], dtype=object)
    check_no = np.tile(np.concatenate([np.zeros(k + repeats, int), np.arange(attention_checks)]), n_raters)
    item_str = np.where(is_check, check_names[check_no], item_names[np.maximum(item_f, 0)])
    label = np.where(
        is_check, _LABELS[check_no % len(_LABELS)], _LABELS[np.maximum(item_f, 0) % len(_LABELS)]
    )
    rater_names = np.array([f"r-{r:04d}" for r in range(n_raters)], dtype=object)
    left_method = np.where(left_f, proposed, baseline).astype(object)
    right_method = np.where(left_f, baseline, proposed).astype(object)
    chosen_method = np.where(none, "", np.where(chose_proposed, proposed, baseline)).astype(object)
    chosen_side = np.where(none, "none", np.where(chose_left, "left", "right")).astype(object)

    frame = pd.DataFrame(
        {
            "study": study,
            "rater": rater_names[rater_idx],
            "item": item_str,
            "label": label,
            "left_method": left_method,
            "right_method": right_method,
            "chosen_method": chosen_method,
            "proposed_method": proposed,
            "baseline_method": baseline,
            "attention_check": is_check,
            "response_ms": response_ms,
            "created_at": _timestamps(start, rater_idx, position_f, response_ms),
            "chosen_side": chosen_side,
            "position": position_f.astype(np.int64),
            "repeat": (kind_f == 1).astype(np.int64),
            "expected_method": np.where(is_check, proposed, "").astype(object),
            "rater_finished": finished[rater_idx],
        }
    )
    # Rows grouped by rater in their voting order (rater indices are already ascending).
    rows = np.flatnonzero(keep)
    rows = rows[np.lexsort((position_f[rows], rater_idx[rows]))]
    frame = normalise(frame.iloc[rows].reset_index(drop=True)[list(COLUMNS)])  # contract C dtypes
    frame.attrs["truth"] = {
        "rate": rate,
        "rater_sd": rater_sd,
        "item_sd": item_sd,
        "marginal_rate": marginal_rate(rate, rater_sd, item_sd),
        "careless": rater_names[roles["careless"]].tolist(),
        "side_pickers": rater_names[roles["side_pickers"]].tolist(),
        "unfinished": rater_names[roles["unfinished"]].tolist(),
    }
    return frame


def simulate_pairwise_votes(
    n_raters: int,
    n_items: int,
    strengths: Mapping[str, float],
    seed: int | None = 0,
    *,
    study: str = "sim",
    proposed: str | None = None,
    baseline: str | None = None,
    pairs_per_rater: int | None = None,
    item_sd: float = 0.0,
) -> pd.DataFrame:
    """Votes of a study with more than two methods under a Bradley-Terry model.

    `strengths` maps method -> log-strength; method a beats b with probability
    logistic(s_a - s_b + v_i) where v_i (sd `item_sd`) makes some items favour the first method of
    the pair. Each rater sees every (item, pair) combination, or a random `pairs_per_rater` of them.
    """
    methods: Sequence[str] = list(strengths)
    if len(methods) < 2:
        raise ValueError(f"need at least two methods, got {methods}")
    proposed = proposed or methods[-1]
    baseline = baseline or methods[0]
    rng = np.random.default_rng(seed)
    s = np.array([strengths[m] for m in methods], dtype=float)
    a_idx, b_idx = np.triu_indices(len(methods), k=1)
    combos_item = np.repeat(np.arange(n_items), len(a_idx))
    combos_a = np.tile(a_idx, n_items)
    combos_b = np.tile(b_idx, n_items)
    n_combos = combos_item.size
    k = n_combos if pairs_per_rater is None else int(pairs_per_rater)
    if not 1 <= k <= n_combos:
        raise ValueError(f"pairs_per_rater must be between 1 and {n_combos}, got {pairs_per_rater}")
    order = np.argsort(rng.random((n_raters, n_combos)), axis=1)[:, :k]
    rater_idx = np.repeat(np.arange(n_raters), k)
    combo = order.ravel()
    item_effect = rng.normal(0, item_sd, n_items) if item_sd > 0 else np.zeros(n_items)
    a, b, it = combos_a[combo], combos_b[combo], combos_item[combo]
    a_wins = rng.random(combo.size) < logistic(s[a] - s[b] + item_effect[it])
    a_left = rng.random(combo.size) < 0.5
    names = np.array(methods, dtype=object)
    left = np.where(a_left, names[a], names[b])
    right = np.where(a_left, names[b], names[a])
    chosen = np.where(a_wins, names[a], names[b])
    response_ms = rng.lognormal(np.log(3500), 0.5, combo.size).round().astype(np.int64)
    position = np.tile(np.arange(1, k + 1), n_raters)
    frame = pd.DataFrame(
        {
            "study": study,
            "rater": np.array([f"r-{r:04d}" for r in range(n_raters)], dtype=object)[rater_idx],
            "item": np.array([f"i-{i:05d}" for i in range(n_items)], dtype=object)[it],
            "label": _LABELS[it % len(_LABELS)],
            "left_method": left,
            "right_method": right,
            "chosen_method": chosen,
            "proposed_method": proposed,
            "baseline_method": baseline,
            "attention_check": False,
            "response_ms": response_ms,
            "created_at": _timestamps("2026-11-27T18:00:00Z", rater_idx, position, response_ms),
            "chosen_side": np.where(chosen == left, "left", "right"),
            "position": position,
            "repeat": 0,
            "expected_method": "",
            "rater_finished": True,
        }
    )
    frame = normalise(frame[list(COLUMNS)])  # contract C dtypes
    frame.attrs["truth"] = {"strengths": dict(strengths)}
    return frame
