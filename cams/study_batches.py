"""What both study tasks (pairwise, distinction) do with a batch of eval samples: explain it with every
method on the CPU, top predictions, stable item ids, and the samples of attention checks.

Split from `cams.package_builder` so that the pairwise builder and `cams.distinction_items` share one
copy without importing each other.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from cams.explain import explain
from cams.loading import LoadedMethod, StudyInputError
from cams.samples import iterate_samples
from models.data import Sample
from models.data.transforms import to_model_input

TOP_K = 3  # predictions recorded per item and method


@dataclass
class Explained:
    """One batch through every method, on the CPU: raw maps, explained classes and probabilities."""

    maps: dict[str, torch.Tensor]
    classes: dict[str, torch.Tensor]
    probs: dict[str, torch.Tensor]

    def rows(self, keep: list[int]) -> Explained:
        """The same for the images at positions `keep` only."""
        index = torch.tensor(keep)

        def take(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {name: tensor[index] for name, tensor in tensors.items()}

        return Explained(take(self.maps), take(self.classes), take(self.probs))


def explain_on_cpu(loaded: list[LoadedMethod], images: torch.Tensor, labels: torch.Tensor, target: str,
                   classes: dict[str, torch.Tensor] | None = None) -> Explained:
    batches = explain({m.name: m.method for m in loaded}, images, labels, target=target, classes=classes)
    return Explained(
        maps={name: b.maps.cpu() for name, b in batches.items()},
        classes={name: b.classes.cpu() for name, b in batches.items()},
        probs={name: b.logits.float().softmax(1).cpu() for name, b in batches.items()},
    )


def model_inputs(samples: list[Sample], device: str) -> tuple[torch.Tensor, torch.Tensor]:
    images = to_model_input([s.image for s in samples]).to(device)
    return images, torch.tensor([s.label for s in samples], device=device)


def top_predictions(probs: torch.Tensor, class_labels: list[str]) -> list[dict]:
    values, indices = probs.topk(min(TOP_K, probs.numel()))
    return [{"label": class_labels[int(i)], "p": round(float(v), 4)} for v, i in zip(values, indices)]


def item_id(study: str, sample_id: str, kind: str = "item") -> str:
    """A stable id that says nothing about any method: a hash of study, sample and item kind."""
    return "i-" + hashlib.sha256(f"{study}\0{sample_id}\0{kind}".encode()).hexdigest()[:10]


def check_samples(loaded: list[LoadedMethod], val: Dataset, taken: set[int], count: int, *,
                  rng: np.random.Generator, batch_size: int, workers: int, device: str, target: str) -> list[Sample]:
    """`count` samples for attention checks: from outside the study where the eval set allows, preferring
    ones every model classifies correctly (order otherwise from `rng`, which draws two permutations)."""
    outside = [i for i in rng.permutation(len(val)).tolist() if i not in taken]
    pool = outside + [i for i in rng.permutation(sorted(taken)).tolist()]
    chosen: list[tuple[Sample, bool]] = []
    for batch in iterate_samples(val, pool[: max(4 * count, 32)], batch_size, workers):
        result = explain_on_cpu(loaded, *model_inputs([s for _, s in batch], device), target)
        for j, (_, sample) in enumerate(batch):
            correct = all(int(result.probs[m.name][j].argmax()) == sample.label for m in loaded)
            chosen.append((sample, correct))
        if sum(c for _, c in chosen) >= count:
            break
    chosen.sort(key=lambda pair: not pair[1])  # correctly classified first, order otherwise kept
    samples = [s for s, _ in chosen[:count]]
    if len(samples) < count:
        raise StudyInputError(
            f"the eval set has only {len(samples)} images for {count} attention checks; "
            "lower --attention-checks"
        )
    return samples
