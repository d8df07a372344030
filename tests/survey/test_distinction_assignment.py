"""Distinction plans as pure functions (no database): one method per rater, balanced across raters at
every moment; items in the rater's own order with attention checks spread; candidate orders random
but reproducible, the answer's screen slot balanced per rater."""
from __future__ import annotations

from collections import Counter
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tests.hypothesis_home  # noqa: F401  (before Hypothesis writes anything)
from survey.assignment import (
    DistinctionItemSpec,
    ItemSpec,
    method_for_rater,
    plan_distinction,
    plan_sequence,
)

METHODS = ("baseline", "vib", "gradcam")


def specs(n_regular: int = 12, n_checks: int = 3, k: int = 4) -> list[DistinctionItemSpec]:
    items = [DistinctionItemSpec(f"r{j}", k, {m: (j + 2 * a) % k for a, m in enumerate(METHODS)})
             for j in range(n_regular)]
    items += [DistinctionItemSpec(f"c{j}", k, {m: j % k for m in METHODS}, True) for j in range(n_checks)]
    return items


@pytest.mark.parametrize("n_methods", [2, 3])
def test_methods_balanced_within_one_at_every_moment(n_methods: int) -> None:
    methods = METHODS[:n_methods]
    counts: Counter = Counter()
    seen_first = Counter()
    for seq in range(60):
        counts[method_for_rater(methods, seq, study_seed=11)] += 1
        assert max(counts.values()) - min(counts.get(m, 0) for m in methods) <= 1, (seq, counts)
        if seq % n_methods == 0:
            seen_first[method_for_rater(methods, seq, study_seed=11)] += 1
    assert all(counts[m] == 60 // n_methods for m in methods)
    assert len(seen_first) == n_methods  # permuted blocks: no method always gets the block's first rater


def test_method_depends_on_study_seed_and_is_reproducible() -> None:
    first = [method_for_rater(METHODS, s, 1) for s in range(30)]
    assert first == [method_for_rater(METHODS, s, 1) for s in range(30)]
    assert any(first != [method_for_rater(METHODS, s, seed) for s in range(30)] for seed in range(2, 6))
    with pytest.raises(ValueError):
        method_for_rater(METHODS, -1, 1)


def test_plan_uses_the_raters_method_and_covers_every_item_once() -> None:
    items = specs()
    plan = plan_distinction(items, METHODS, rater_seed=5, rater_index=4, study_seed=9)
    assert plan.method == method_for_rater(METHODS, 4, 9)
    assert [t.position for t in plan.trials] == list(range(1, len(items) + 1))
    assert sorted(t.item for t in plan.trials) == sorted(s.item for s in items)
    assert plan == plan_distinction(items, METHODS, rater_seed=5, rater_index=4, study_seed=9)


def test_item_order_and_checks_follow_the_pairwise_rules() -> None:
    """The same order function as pairwise plans: same seed -> same item order and check places."""
    items = specs()
    pairwise_plan = plan_sequence([ItemSpec(s.item, "a", "b", s.is_attention_check) for s in items],
                             rater_seed=77, rater_index=0, study_seed=1, repeats=2)
    plan = plan_distinction(items, METHODS, rater_seed=77, rater_index=0, study_seed=1, repeats=2)
    assert [(t.item, t.is_repeat) for t in plan.trials] == [(t.item, t.is_repeat) for t in pairwise_plan]
    checks = [t.position for t in plan.trials if t.is_attention_check]
    assert 1 not in checks and all(b - a > 1 for a, b in pairwise(checks))
    orders = {tuple(t.item for t in plan_distinction(items, METHODS, rater_seed=s, rater_index=0,
                                                     study_seed=1).trials) for s in range(10)}
    assert len(orders) == 10  # the rater's seed decides the order


def test_candidate_orders_are_permutations_with_the_answer_slot_balanced() -> None:
    items = specs(n_regular=16, n_checks=4)
    answers = {s.item: s.answers for s in items}
    for rater in range(12):
        plan = plan_distinction(items, METHODS, rater_seed=1000 + rater, rater_index=rater, study_seed=3,
                                repeats=3)
        slots = Counter()
        for trial in plan.trials:
            assert sorted(trial.order) == [0, 1, 2, 3]
            slots[trial.order.index(answers[trial.item][plan.method])] += 1
        assert max(slots.values()) - min(slots[s] for s in range(4)) <= 1, slots
        repeated = [t for t in plan.trials if t.is_repeat]
        assert len(repeated) == 3
    orders = Counter(t.order for r in range(40) for t in plan_distinction(
        items, METHODS, rater_seed=r, rater_index=r, study_seed=3).trials)
    assert len(orders) == 24  # every permutation of four occurs: the order is random, not a rotation


def test_bad_specs_are_refused() -> None:
    items = specs(n_regular=3, n_checks=0)
    with pytest.raises(ValueError, match="unique"):
        plan_distinction(items + items[:1], METHODS, rater_seed=1, rater_index=0, study_seed=1)
    with pytest.raises(ValueError, match="repeats"):
        plan_distinction(items, METHODS, rater_seed=1, rater_index=0, study_seed=1, repeats=4)
    broken = [DistinctionItemSpec("x", 4, {m: 4 for m in METHODS})]
    with pytest.raises(ValueError, match="answer"):
        plan_distinction(broken, METHODS, rater_seed=1, rater_index=0, study_seed=1)


@settings(max_examples=150, deadline=None)
@given(n_regular=st.integers(1, 20), data=st.data(), k=st.integers(2, 8), n_methods=st.integers(1, 4),
       rater_index=st.integers(0, 500), rater_seed=st.integers(0, 2**62), study_seed=st.integers(0, 2**62))
def test_every_plan_is_complete_and_balanced(n_regular: int, data, k: int, n_methods: int, rater_index: int,  # noqa: ANN001
                                             rater_seed: int, study_seed: int) -> None:
    n_checks = data.draw(st.integers(0, n_regular))
    repeats = data.draw(st.integers(0, n_regular))
    methods = [f"m{j}" for j in range(n_methods)]
    answers = data.draw(st.lists(st.lists(st.integers(0, k - 1), min_size=n_methods, max_size=n_methods),
                                 min_size=n_regular + n_checks, max_size=n_regular + n_checks))
    items = [DistinctionItemSpec(j, k, dict(zip(methods, answers[j])), j >= n_regular)
             for j in range(n_regular + n_checks)]
    plan = plan_distinction(items, methods, rater_seed=rater_seed, rater_index=rater_index, study_seed=study_seed,
                            repeats=repeats)
    assert plan.method in methods
    firsts = [t.item for t in plan.trials if not t.is_repeat]
    assert sorted(firsts) == list(range(n_regular + n_checks))
    assert sum(t.is_repeat for t in plan.trials) == repeats
    assert [t.position for t in plan.trials] == list(range(1, len(plan.trials) + 1))
    slots = Counter()
    for t in plan.trials:
        assert sorted(t.order) == list(range(k))
        slots[t.order.index(answers[t.item][methods.index(plan.method)])] += 1
    assert max(slots.values()) - min(slots[s] for s in range(k)) <= 1
    checks = [t.position for t in plan.trials if t.is_attention_check]
    assert 1 not in checks and all(b - a > 1 for a, b in pairwise(checks))
