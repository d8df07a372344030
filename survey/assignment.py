"""Randomisation of a rater's sequence, as pure functions (no database, no clock, no global state).

Design (see docs/survey.md, "Randomisation"):

* **Order** of items comes from the rater's own seed (stored with the rater), so a rater's sequence
  can always be rebuilt and audited.
* **Sides** come from the rater's *sequence number* in the study (0, 1, 2, ... allocated in the same
  transaction that creates the rater) and a study-wide seed. Raters are paired in blocks (0-1, 2-3,
  ...): inside a block the first rater gets a random half of the items with the proposed map on the
  left and the second rater gets exactly the complement. So for every item the proposed map is on the
  left for half of its raters, within one, at any moment, and each rater also sees it on the left for
  half of their items, within one. Arrival-order races cannot break this, because sequence numbers
  are unique and gap-free. Attention checks are balanced the same way, separately.
* **Attention checks** are spread through the sequence: never first, never two in a row, one in each
  of ``m`` equal stretches of the regular trials.
* **Repeats** (optional): ``repeats`` regular items, drawn from the first half of the rater's order,
  are shown a second time with sides swapped, later in the sequence and at least ``MIN_REPEAT_GAP``
  trials after their first showing where the sequence leaves room (always when ``repeats`` is at most
  half of 6 or more regular items), to measure rater consistency.
"""
from __future__ import annotations

import math
import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

MIN_REPEAT_GAP = 2  # other trials between an item and its repeat, when the sequence is long enough


@dataclass(frozen=True)
class ItemSpec:
    """An item to plan: ``reference`` is the method whose side is balanced (the proposed method; for an
    attention check the expected one), ``other`` the method it is paired with."""

    item: Hashable
    reference: Hashable
    other: Hashable
    is_attention_check: bool = False


@dataclass(frozen=True)
class PlannedTrial:
    position: int  # 1-based
    item: Hashable
    left: Hashable
    right: Hashable
    is_repeat: bool
    is_attention_check: bool


def reference_on_left(items: Sequence[Hashable], rater_index: int, study_seed: int, salt: str = "") -> dict:
    """For each item, whether rater number ``rater_index`` sees the reference method on the left.

    Raters 2j and 2j+1 form block j: a random balanced half of the items (drawn from the study seed and
    j) is "left" for rater 2j, and the complement for rater 2j+1.
    """
    if rater_index < 0:
        raise ValueError(f"rater_index must be >= 0, got {rater_index}")
    block, second = divmod(rater_index, 2)
    rng = random.Random(f"vibcam-sides:{study_seed}:{salt}:{block}")
    shuffled = list(items)
    rng.shuffle(shuffled)
    # Odd counts: which half gets the extra item alternates with a random bit per block.
    n_left = len(shuffled) // 2 + (len(shuffled) % 2) * rng.randrange(2)
    left = set(shuffled[:n_left])
    return {item: (item in left) != bool(second) for item in items}


def _insert_repeats(order: list, repeats: int, rng: random.Random) -> list[tuple[Hashable, bool]]:
    """The regular order with ``repeats`` items shown again later; entries are (item, is_repeat)."""
    sequence: list[tuple[Hashable, bool]] = [(item, False) for item in order]
    if repeats == 0:
        return sequence
    pool = order[: max(repeats, math.ceil(len(order) / 2))]  # early items leave room for a gap
    chosen = set(rng.sample(pool, repeats))
    for item in [it for it in order if it in chosen]:
        first = sequence.index((item, False))
        low = min(first + 1 + MIN_REPEAT_GAP, len(sequence))
        sequence.insert(rng.randint(low, len(sequence)), (item, True))
    return sequence


def _check_slots(n_trials: int, n_checks: int, rng: random.Random) -> list[int]:
    """Distinct gaps (gap g = right after regular trial g, 1..n_trials), one per equal stretch."""
    if n_checks > n_trials:
        raise ValueError(f"{n_checks} attention checks cannot be spread over {n_trials} regular trials")
    bounds = [k * n_trials // n_checks for k in range(n_checks + 1)] if n_checks else [0]
    return [rng.randint(bounds[k] + 1, bounds[k + 1]) for k in range(n_checks)]


def plan_sequence(items: Sequence[ItemSpec], *, rater_seed: int, rater_index: int, study_seed: int,
                  repeats: int = 0) -> list[PlannedTrial]:
    """The whole sequence of one rater: order, sides, attention checks and repeats, deterministically."""
    ids = [spec.item for spec in items]
    if len(set(ids)) != len(ids):
        raise ValueError("item ids must be unique")
    regular = [spec for spec in items if not spec.is_attention_check]
    checks = [spec for spec in items if spec.is_attention_check]
    if not 0 <= repeats <= len(regular):
        raise ValueError(f"repeats must be between 0 and the {len(regular)} regular items, got {repeats}")
    spec_of = {spec.item: spec for spec in items}
    left_regular = reference_on_left([s.item for s in regular], rater_index, study_seed, "regular")
    left_checks = reference_on_left([s.item for s in checks], rater_index, study_seed, "checks")
    left_of = {**left_regular, **left_checks}

    rng = random.Random(rater_seed)
    order = [spec.item for spec in regular]
    rng.shuffle(order)
    sequence = _insert_repeats(order, repeats, rng)
    check_order = [spec.item for spec in checks]
    rng.shuffle(check_order)
    slots = dict(zip(_check_slots(len(sequence), len(check_order), rng), check_order))

    full: list[tuple[Hashable, bool]] = []
    for gap, entry in enumerate(sequence, start=1):
        full.append(entry)
        if gap in slots:
            full.append((slots[gap], False))

    trials = []
    for position, (item, is_repeat) in enumerate(full, start=1):
        spec = spec_of[item]
        reference_left = left_of[item] != is_repeat  # a repeat swaps the sides
        left, right = (spec.reference, spec.other) if reference_left else (spec.other, spec.reference)
        trials.append(PlannedTrial(position, item, left, right, is_repeat, spec.is_attention_check))
    return trials
