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
from collections.abc import Hashable, Mapping, Sequence
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


def _rater_order(regular: list, checks: list, rater_seed: int, repeats: int) -> list[tuple[Hashable, bool]]:
    """(item, is_repeat) in the rater's order: regular items shuffled by the rater's seed, repeats
    inserted later, attention checks spread one per equal stretch. Shared by every task."""
    rng = random.Random(rater_seed)
    order = list(regular)
    rng.shuffle(order)
    sequence = _insert_repeats(order, repeats, rng)
    check_order = list(checks)
    rng.shuffle(check_order)
    slots = dict(zip(_check_slots(len(sequence), len(check_order), rng), check_order))

    full: list[tuple[Hashable, bool]] = []
    for gap, entry in enumerate(sequence, start=1):
        full.append(entry)
        if gap in slots:
            full.append((slots[gap], False))
    return full


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

    full = _rater_order([s.item for s in regular], [s.item for s in checks], rater_seed, repeats)
    trials = []
    for position, (item, is_repeat) in enumerate(full, start=1):
        spec = spec_of[item]
        reference_left = left_of[item] != is_repeat  # a repeat swaps the sides
        left, right = (spec.reference, spec.other) if reference_left else (spec.other, spec.reference)
        trials.append(PlannedTrial(position, item, left, right, is_repeat, spec.is_attention_check))
    return trials


# ------------------------------------------------------------------------------------ distinction
@dataclass(frozen=True)
class DistinctionItemSpec:
    """An item of a distinction study: ``answers`` maps each method to the index of its rank-1
    candidate in that method's list of ``n_candidates``."""

    item: Hashable
    n_candidates: int
    answers: Mapping[Hashable, int]
    is_attention_check: bool = False


@dataclass(frozen=True)
class DistinctionTrial:
    position: int  # 1-based
    item: Hashable
    order: tuple[int, ...]  # candidate indices (into the method's list) in screen order
    is_repeat: bool
    is_attention_check: bool


@dataclass(frozen=True)
class DistinctionPlan:
    method: Hashable  # the one method this rater sees (between subjects)
    trials: list[DistinctionTrial]


def method_for_rater(methods: Sequence[Hashable], rater_index: int, study_seed: int) -> Hashable:
    """The method of rater number ``rater_index``: permuted blocks of ``len(methods)`` raters.

    Raters ``b*m .. b*m+m-1`` (block b) get every method once, in an order drawn from the study seed
    and b. So at any moment the methods' rater counts differ by at most one (sequence numbers are
    gap-free), and no method is tied to a place in the arrival order (early or late raters)."""
    if rater_index < 0:
        raise ValueError(f"rater_index must be >= 0, got {rater_index}")
    if not methods:
        raise ValueError("no methods to assign")
    block, place = divmod(rater_index, len(methods))
    permuted = list(methods)
    random.Random(f"vibcam-methods:{study_seed}:{block}").shuffle(permuted)
    return permuted[place]


def _screen_orders(trials: list[tuple[Hashable, bool]], specs: Mapping[Hashable, DistinctionItemSpec],
                   method: Hashable, rater_seed: int) -> list[tuple[int, ...]]:
    """Each trial's candidates in a random screen order, with the answer's *slot* balanced over the
    rater's trials (each slot within one as often as the others), so a rater who always clicks the
    same place scores chance and position preferences cannot favour one method."""
    rng = random.Random(f"vibcam-candidates:{rater_seed}")
    by_count: dict[int, list[int]] = {}
    for k, (item, _) in enumerate(trials):
        by_count.setdefault(specs[item].n_candidates, []).append(k)
    slot_of: dict[int, int] = {}
    for n, indices in sorted(by_count.items()):
        slots = [j % n for j in range(len(indices))]
        rng.shuffle(slots)
        slot_of.update(zip(indices, slots))
    orders = []
    for k, (item, _) in enumerate(trials):
        spec = specs[item]
        answer = spec.answers[method]
        others = [c for c in range(spec.n_candidates) if c != answer]
        rng.shuffle(others)
        others.insert(slot_of[k], answer)
        orders.append(tuple(others))
    return orders


def plan_distinction(items: Sequence[DistinctionItemSpec], methods: Sequence[Hashable], *, rater_seed: int,
                     rater_index: int, study_seed: int, repeats: int = 0) -> DistinctionPlan:
    """The whole sequence of one distinction rater: their method, the item order (as pairwise: the
    rater's seed, spread attention checks, optional repeats) and each trial's candidate order."""
    ids = [spec.item for spec in items]
    if len(set(ids)) != len(ids):
        raise ValueError("item ids must be unique")
    regular = [spec.item for spec in items if not spec.is_attention_check]
    checks = [spec.item for spec in items if spec.is_attention_check]
    if not 0 <= repeats <= len(regular):
        raise ValueError(f"repeats must be between 0 and the {len(regular)} regular items, got {repeats}")
    method = method_for_rater(methods, rater_index, study_seed)
    specs = {spec.item: spec for spec in items}
    for spec in items:
        if not 0 <= spec.answers.get(method, -1) < spec.n_candidates:
            raise ValueError(f"item {spec.item!r}: no valid answer index for method {method!r}")
    full = _rater_order(regular, checks, rater_seed, repeats)
    orders = _screen_orders(full, specs, method, rater_seed)
    trials = [DistinctionTrial(position, item, order, is_repeat, specs[item].is_attention_check)
              for position, ((item, is_repeat), order) in enumerate(zip(full, orders), start=1)]
    return DistinctionPlan(method, trials)
