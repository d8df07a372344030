"""Randomisation as pure functions: balance, determinism, spread of attention checks, repeats."""
from __future__ import annotations

import random
from collections import Counter, defaultdict

import pytest

from survey.assignment import MIN_REPEAT_GAP, ItemSpec, plan_sequence, reference_on_left

P, B = "proposed", "baseline"


def specs(n_regular: int, n_checks: int = 0) -> list[ItemSpec]:
    regular = [ItemSpec(f"r{k}", P, B) for k in range(n_regular)]
    checks = [ItemSpec(f"c{k}", P if k % 2 else B, B if k % 2 else P, True) for k in range(n_checks)]
    return regular + checks


def plan(items, rater_index: int, *, rater_seed: int | None = None, study_seed: int = 7, repeats: int = 0):
    seed = rater_index * 7919 + 13 if rater_seed is None else rater_seed
    return plan_sequence(items, rater_seed=seed, rater_index=rater_index, study_seed=study_seed,
                         repeats=repeats)


@pytest.mark.parametrize("n_regular, n_checks", [(1, 0), (6, 1), (7, 3), (15, 2), (4, 4)])
def test_sides_balanced_per_item_at_every_rater_count_and_per_rater(n_regular: int, n_checks: int) -> None:
    items = specs(n_regular, n_checks)
    left_counts: Counter = Counter()
    for rater in range(41):
        trials = plan(items, rater)
        first = [t for t in trials if not t.is_repeat]
        for t in first:
            spec = next(s for s in items if s.item == t.item)
            left_counts[t.item] += int(t.left == spec.reference)
        shown = rater + 1
        for spec in items:  # each item: reference on the left for half its raters, within one
            assert abs(2 * left_counts[spec.item] - shown) <= 1, (spec.item, left_counts[spec.item], shown)
        for kind in (False, True):  # each rater: half of their regular items (and checks), within one
            group = [t for t in first if t.is_attention_check == kind]
            n_left = sum(t.left == next(s for s in items if s.item == t.item).reference for t in group)
            assert abs(2 * n_left - len(group)) <= 1


def test_balance_does_not_depend_on_rater_seeds_or_arrival() -> None:
    items = specs(9)
    rng = random.Random(1)
    counts: Counter = Counter()
    for rater in range(20):  # arbitrary personal seeds: sides depend only on the sequence number
        for t in plan(items, rater, rater_seed=rng.getrandbits(60)):
            counts[t.item] += int(t.left == P)
    assert set(counts.values()) == {10}


def test_sides_are_not_the_same_pattern_for_every_block() -> None:
    items = [f"i{k}" for k in range(12)]
    patterns = {tuple(reference_on_left(items, 2 * block, study_seed=3).values()) for block in range(10)}
    assert len(patterns) > 5


def test_deterministic_and_seed_dependent() -> None:
    items = specs(10, 2)
    assert plan(items, 3, rater_seed=99, repeats=2) == plan(items, 3, rater_seed=99, repeats=2)
    orders = {tuple(t.item for t in plan(items, 3, rater_seed=s)) for s in range(20)}
    assert len(orders) > 15
    other_study = plan(items, 3, rater_seed=99, study_seed=8)
    assert [t.item for t in other_study] == [t.item for t in plan(items, 3, rater_seed=99)]


@pytest.mark.parametrize("n_regular, n_checks, repeats",
                         [(6, 1, 0), (6, 3, 2), (10, 2, 10), (3, 3, 1), (1, 1, 1), (12, 4, 3), (2, 0, 2)])
def test_sequence_structure(n_regular: int, n_checks: int, repeats: int) -> None:
    items = specs(n_regular, n_checks)
    for rater in range(30):
        trials = plan(items, rater, repeats=repeats)
        assert [t.position for t in trials] == list(range(1, n_regular + n_checks + repeats + 1))
        firsts = Counter(t.item for t in trials if not t.is_repeat)
        assert firsts == Counter(s.item for s in items)  # every item exactly once as a first showing
        checks = [i for i, t in enumerate(trials) if t.is_attention_check]
        if checks:
            assert checks[0] != 0  # never first
            assert all(b - a > 1 for a, b in zip(checks, checks[1:]))  # never two in a row
        repeated = [t for t in trials if t.is_repeat]
        assert len(repeated) == repeats and len({t.item for t in repeated}) == repeats
        for rep in repeated:
            original = next(t for t in trials if t.item == rep.item and not t.is_repeat)
            assert (rep.left, rep.right) == (original.right, original.left)  # sides swapped
            assert not rep.is_attention_check
            assert rep.position > original.position
            if repeats <= n_regular // 2 and n_regular >= 6:  # room for a gap: always kept
                assert rep.position - original.position - 1 >= MIN_REPEAT_GAP


def test_attention_checks_spread_over_the_sequence() -> None:
    items = specs(20, 4)
    where = defaultdict(list)
    for rater in range(200):
        trials = plan(items, rater)
        regular_before = 0
        k = 0
        for t in trials:
            if t.is_attention_check:
                where[k].append(regular_before)
                k += 1
            else:
                regular_before += 1
    for k in range(4):  # check k lies in the k-th fifth of the regular trials (one per stretch)
        assert min(where[k]) >= 5 * k + 1 and max(where[k]) <= 5 * (k + 1)
        assert len(set(where[k])) == 5  # and is not always at the same place


def test_random_configurations_hold_the_invariants() -> None:
    rng = random.Random(5)
    for _ in range(300):
        n_regular = rng.randint(1, 12)
        items = specs(n_regular, rng.randint(0, n_regular))
        repeats = rng.randint(0, n_regular)
        trials = plan(items, rng.randint(0, 50), rater_seed=rng.getrandbits(40), repeats=repeats)
        checks = [t.position for t in trials if t.is_attention_check]
        assert 1 not in checks and all(b - a > 1 for a, b in zip(checks, checks[1:]))
        assert len(trials) == len(items) + repeats
        assert all(t.left != t.right for t in trials)


def test_invalid_plans_are_refused() -> None:
    with pytest.raises(ValueError, match="attention checks"):
        plan(specs(2, 3), 0)
    with pytest.raises(ValueError, match="repeats"):
        plan(specs(2), 0, repeats=3)
    with pytest.raises(ValueError, match="unique"):
        plan(specs(2) + specs(1), 0)
    with pytest.raises(ValueError):
        reference_on_left(["a"], -1, 0)
