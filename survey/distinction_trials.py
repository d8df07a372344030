"""A distinction rater's stored sequence: made once, in the transaction that creates the rater
(:func:`survey.service.start_rater` calls :func:`create_trials` right after allocating the rater's
sequence number), and counted for progress. Below both :mod:`survey.service` and
:mod:`survey.distinction_service`, so neither imports the other in a circle.
"""
from __future__ import annotations

import secrets

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from survey.assignment import DistinctionItemSpec, plan_distinction
from survey.schema import (
    DistinctionAnswer,
    DistinctionCandidate,
    DistinctionItem,
    DistinctionRater,
    DistinctionTrial,
    Item,
    Method,
    Rater,
    Study,
)


def _item_specs(session: Session, study: Study) -> list[DistinctionItemSpec]:
    counts: dict[tuple[int, int], int] = {}
    answers: dict[int, dict[int, int]] = {}
    for item_id, method_id, ordinal, rank in session.execute(
            select(DistinctionCandidate.item_id, DistinctionCandidate.method_id, DistinctionCandidate.ordinal,
                   DistinctionCandidate.rank)
            .join(Item, Item.id == DistinctionCandidate.item_id).where(Item.study_id == study.id)):
        counts[(item_id, method_id)] = counts.get((item_id, method_id), 0) + 1
        if rank == 1:
            answers.setdefault(item_id, {})[method_id] = ordinal
    specs = []
    for item_id, check in session.execute(
            select(Item.id, DistinctionItem.is_attention_check).join(DistinctionItem)
            .where(Item.study_id == study.id).order_by(Item.ordinal)):
        n = {count for (item, _), count in counts.items() if item == item_id}
        if len(n) != 1:  # the importer stores one count per item; anything else is a damaged database
            raise RuntimeError(f"item {item_id} of study {study.name!r} has candidate lists of lengths {n}")
        specs.append(DistinctionItemSpec(item_id, n.pop(), answers.get(item_id, {}), bool(check)))
    return specs


def create_trials(session: Session, study: Study, rater: Rater) -> int:
    """Fixes a new rater's method (permuted blocks over ``rater.seq``) and whole sequence, each trial
    with its candidates' screen order; returns the number of trials."""
    methods = list(session.scalars(select(Method.id).where(Method.study_id == study.id).order_by(Method.ordinal)))
    plan = plan_distinction(_item_specs(session, study), methods, rater_seed=rater.seed, rater_index=rater.seq,
                            study_seed=study.seed, repeats=study.repeats)
    session.add(DistinctionRater(rater_id=rater.id, method_id=plan.method))
    session.flush()
    session.add_all(
        DistinctionTrial(rater_id=rater.id, item_id=t.item, method_id=plan.method, position=t.position,
                         is_repeat=t.is_repeat, candidate_order=",".join(map(str, t.order)),
                         token=secrets.token_urlsafe(16))
        for t in plan.trials)
    session.flush()
    return len(plan.trials)


def progress_counts(session: Session, rater: Rater) -> tuple[int, int]:
    """(answered, total) trials of a distinction rater."""
    total = session.scalar(select(func.count()).select_from(DistinctionTrial)
                           .where(DistinctionTrial.rater_id == rater.id))
    answered = session.scalar(select(func.count()).select_from(DistinctionAnswer)
                              .where(DistinctionAnswer.rater_id == rater.id))
    return answered, total
