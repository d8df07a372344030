"""Which eval samples go into a study: by class (`--classes a,b --per-class N`), by id (`--ids FILE`)
or at random (`--random N`), then filtered by what the models predict (`--only`).

Selection is a *plan*: candidates in a seeded order, each with a quota group. Generation walks
the plan batch by batch and stops as soon as every quota is filled, so a filter that rejects
many candidates costs only the extra forward passes it needs.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cams.loading import StudyInputError

FILTERS = ("any", "both-correct", "disagree")


@dataclass
class SelectionPlan:
    """Candidates (dataset indices, in the order to try them), their quota group, and the quotas."""

    candidates: list[int]
    groups: list[str]
    quotas: dict[str, int]
    taken: dict[str, int] = field(default_factory=dict)

    def wants(self, position: int) -> bool:
        group = self.groups[position]
        return self.taken.get(group, 0) < self.quotas[group]

    def take(self, position: int) -> None:
        group = self.groups[position]
        self.taken[group] = self.taken.get(group, 0) + 1

    @property
    def full(self) -> bool:
        return all(self.taken.get(g, 0) >= q for g, q in self.quotas.items())

    def shortfall(self) -> dict[str, tuple[int, int]]:
        """Groups whose quota was not met: group -> (taken, wanted)."""
        return {g: (self.taken.get(g, 0), q) for g, q in self.quotas.items() if self.taken.get(g, 0) < q}


def _normalise(name: str) -> str:
    return " ".join(
        name.lower().replace("_", " ").replace("/", " ").replace("(", " ").replace(")", " ").split()
    )


def resolve_classes(requested: list[str], class_names: list[str], class_labels: list[str]) -> list[int]:
    """Class indices for names given as dataset keys (`waiting_room`) or readable labels
    (`waiting room`); an unknown name is an error that suggests the closest known ones."""
    lookup: dict[str, int] = {}
    for index, (key, label) in enumerate(zip(class_names, class_labels)):
        for spelling in (key, label, _normalise(key), _normalise(label)):
            lookup.setdefault(spelling, index)
    indices = []
    for name in requested:
        name = name.strip()
        if not name:
            continue
        index = lookup.get(name, lookup.get(_normalise(name)))
        if index is None:
            close = difflib.get_close_matches(name, class_names + class_labels, n=3, cutoff=0.5)
            keys = list(dict.fromkeys(class_names[lookup[c]] for c in close))  # a label -> its key, once
            if keys:
                hint = f"; did you mean {', '.join(repr(k) for k in keys)}?"
            else:
                more = " ..." if len(class_names) > 5 else ""
                hint = f"; known classes include {', '.join(class_names[:5])}{more}"
            raise StudyInputError(f"unknown class {name!r}{hint}")
        if index not in indices:
            indices.append(index)
    if not indices:
        raise StudyInputError("--classes is empty; name at least one class, e.g. --classes waiting_room")
    return indices


def plan_by_class(
    labels: list[int], classes: list[int], per_class: int, seed: int, class_names: list[str]
) -> SelectionPlan:
    """`per_class` samples of each class, candidates interleaved class by class in seeded order."""
    if per_class < 1:
        raise StudyInputError(f"--per-class must be >= 1, got {per_class}")
    rng = np.random.default_rng(seed)
    labels_array = np.asarray(labels)
    pools = []
    for c in classes:
        pool = np.flatnonzero(labels_array == c)
        if pool.size == 0:
            raise StudyInputError(
                f"class {class_names[c]!r} has no images in the eval set; pick another class"
            )
        pools.append(rng.permutation(pool).tolist())
    candidates, groups = [], []
    for rank in range(max(len(p) for p in pools)):
        for c, pool in zip(classes, pools):
            if rank < len(pool):
                candidates.append(pool[rank])
                groups.append(class_names[c])
    return SelectionPlan(candidates, groups, {class_names[c]: per_class for c in classes})


def plan_random(count: int, size: int, seed: int) -> SelectionPlan:
    """`count` samples drawn at random (seeded) from the whole eval set."""
    if count < 1:
        raise StudyInputError(f"--random must be >= 1, got {count}")
    order = np.random.default_rng(seed).permutation(size).tolist()
    return SelectionPlan(order, ["all"] * size, {"all": count})


def read_ids(path: Path) -> list[str]:
    """Sample ids, one per line (blank lines and '#' comments ignored)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise StudyInputError(f"cannot read --ids file {path}: {error}") from None
    ids = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not ids:
        raise StudyInputError(f"--ids file {path} lists no sample ids (one per line)")
    return list(dict.fromkeys(ids))


def plan_by_ids(ids: list[str], index_of: dict[str, int]) -> SelectionPlan:
    """Exactly the listed samples (each its own group), in the file's order."""
    unknown = [i for i in ids if i not in index_of]
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(index_of), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise StudyInputError(f"{len(unknown)} id(s) not in the eval set, e.g. {unknown[0]!r}{hint}")
    return SelectionPlan([index_of[i] for i in ids], list(ids), {i: 1 for i in ids})


def passes_filter(only: str, truth: int, proposed_top1: int, baseline_top1: int) -> bool:
    """`any`: every sample; `both-correct`: proposed and baseline both predict the true class;
    `disagree`: their top-1 predictions differ."""
    if only == "any":
        return True
    if only == "both-correct":
        return proposed_top1 == truth and baseline_top1 == truth
    if only == "disagree":
        return proposed_top1 != baseline_top1
    raise StudyInputError(f"unknown --only {only!r}; choose one of {', '.join(FILTERS)}")
