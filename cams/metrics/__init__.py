"""The automatic explanation metrics, as small objects in one registry (the way `cams.methods` holds the
CAM methods). `python -m cams.metrics PACKAGE` (`cams/metrics/__main__.py`) scores a study package.

Each metric knows its `name` (its metrics.csv column), its `title` (for tables), and whether higher is
better (`higher_is_better`, used by the one verdict, `cams.verdict`, and every table's arrow), and is
called like a function:

    from cams.metrics import METRICS
    METRICS["energy_in_mask"](heatmap, mask)             # a map metric: NaN when it needs a mask and has none
    METRICS["deletion_auc"](score, image, heatmap)       # a perturbation metric: score(batch) -> probabilities

Two kinds, because they need different inputs: a `MapMetric` looks at the heatmap (and the mask), a
`PerturbationMetric` at how the model's probability changes while pixels are perturbed in saliency
order; its `batch` / `area` halves let a scorer put every curve of a model into shared forward passes.
Definitions: `cams.metrics.maps`, `cams.metrics.perturbation`, docs/cams.md.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

import numpy as np
from torch import Tensor

from cams.metrics.maps import energy_in_mask, entropy, gini, pointing_game
from cams.metrics.perturbation import DEFAULT_STEPS, perturbation_auc, perturbation_batch


class Metric(ABC):
    """A named explanation metric with a direction."""

    name: ClassVar[str]
    title: ClassVar[str]
    higher_is_better: ClassVar[bool]

    @property
    def arrow(self) -> str:
        """↑ or ↓: which way is better, for table headers."""
        return "↑" if self.higher_is_better else "↓"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, higher_is_better={self.higher_is_better})"


class MapMetric(Metric):
    """A metric of one heatmap (H x W in [0, 1]); `needs_mask` ones score NaN for an item without a mask."""

    needs_mask: ClassVar[bool]

    def __call__(self, heatmap: np.ndarray, mask: np.ndarray | None = None) -> float:
        if self.needs_mask and mask is None:
            return float("nan")
        return self.measure(heatmap, mask)

    @abstractmethod
    def measure(self, heatmap: np.ndarray, mask: np.ndarray | None) -> float:
        """The value, given everything the metric needs."""


class PointingGame(MapMetric):
    name, title, higher_is_better, needs_mask = "pointing_game", "pointing game", True, True

    def measure(self, heatmap: np.ndarray, mask: np.ndarray | None) -> float:
        return pointing_game(heatmap, mask)


class EnergyInMask(MapMetric):
    name, title, higher_is_better, needs_mask = "energy_in_mask", "energy in mask", True, True

    def measure(self, heatmap: np.ndarray, mask: np.ndarray | None) -> float:
        return energy_in_mask(heatmap, mask)


class Gini(MapMetric):
    name, title, higher_is_better, needs_mask = "gini", "Gini", True, False

    def measure(self, heatmap: np.ndarray, mask: np.ndarray | None) -> float:
        return gini(heatmap)


class Entropy(MapMetric):
    name, title, higher_is_better, needs_mask = "entropy", "entropy", False, False

    def measure(self, heatmap: np.ndarray, mask: np.ndarray | None) -> float:
        return entropy(heatmap)


class PerturbationMetric(Metric):
    """Area under the explained class's probability while pixels are perturbed in saliency order."""

    mode: ClassVar[str]  # "deletion" or "insertion" (cams.metrics.perturbation)

    def batch(self, image: Tensor, heatmap: Tensor, steps: int = DEFAULT_STEPS, seed: int = 0
              ) -> tuple[Tensor, np.ndarray]:
        """The `steps + 1` perturbed copies of `image` (3 x H x W, normalised) and their pixel fractions."""
        return perturbation_batch(image, heatmap, self.mode, steps, seed)

    def area(self, probabilities: np.ndarray, fractions: np.ndarray) -> float:
        """The metric from the probabilities of `batch`'s images."""
        return perturbation_auc(probabilities, fractions)

    def __call__(self, score: Callable[[Tensor], Tensor], image: Tensor, heatmap: Tensor,
                 steps: int = DEFAULT_STEPS, seed: int = 0) -> float:
        """One image on its own: `score(batch)` returns the explained class's probability per image."""
        batch, fractions = self.batch(image, heatmap, steps, seed)
        return self.area(score(batch).detach().float().cpu().numpy(), fractions)


class DeletionAUC(PerturbationMetric):
    name, title, higher_is_better, mode = "deletion_auc", "deletion AUC", False, "deletion"


class InsertionAUC(PerturbationMetric):
    name, title, higher_is_better, mode = "insertion_auc", "insertion AUC", True, "insertion"


#: every metric by name, in metrics.csv's column order
METRICS: dict[str, Metric] = {
    metric.name: metric
    for metric in (PointingGame(), EnergyInMask(), DeletionAUC(), InsertionAUC(), Gini(), Entropy())
}
MAP_METRICS: tuple[MapMetric, ...] = tuple(m for m in METRICS.values() if isinstance(m, MapMetric))
PERTURBATION_METRICS: tuple[PerturbationMetric, ...] = tuple(
    m for m in METRICS.values() if isinstance(m, PerturbationMetric)
)
#: metrics.csv's columns, exactly (a contract: docs/cams.md)
COLUMNS: tuple[str, ...] = ("item", "method", *METRICS)


def get_metric(name: str) -> Metric:
    """The metric called `name`; an unknown name is an error listing the known ones."""
    try:
        return METRICS[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; choose one of {', '.join(METRICS)}") from None


__all__ = [
    "COLUMNS",
    "DEFAULT_STEPS",
    "MAP_METRICS",
    "METRICS",
    "PERTURBATION_METRICS",
    "MapMetric",
    "Metric",
    "PerturbationMetric",
    "get_metric",
]
