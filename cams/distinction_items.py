"""Items of a distinction study (HIVE's task, docs/study-package.md): per item and method, the maps of
the method's own model for its top-k classes, each with its class label and rank, in a seeded random
order, and the index of the rank-1 candidate (the prediction).

Everything goes through the same path as a pairwise study: `cams.explain.explain` for the raw maps
(one call per rank, with explicit classes), `cams.render` for heatmaps and overlays, content-hash
names in the `PackageFolder`. Attention checks need ground-truth masks: the answer's map is the
labelled object's mask and the other maps are flat, so a rater who looks cannot miss it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image, ImageFilter
from torch.utils.data import Dataset

from cams.loading import LoadedMethod, StudyInputError
from cams.package_writer import PackageFolder
from cams.render import encode_png, normalize_maps, overlay, pil_to_uint8, render_overlays
from cams.study_batches import (
    Explained,
    check_samples,
    explain_on_cpu,
    item_id,
    model_inputs,
    top_predictions,
)
from models.data import Sample
from survey.package import CamsCandidate, CamsItem, CatchTrial

CHECK_KIND = "on-object"


def distinction_instructions(k: int) -> str:
    return (
        f"Each screen shows a photo and {k} coloured maps of it. A computer model looked at the photo and "
        f"found {k} kinds of scene most likely; each map shows, for one of them (named under the map), "
        "where the model saw evidence for it: red marks strong evidence, blue none.\n\n"
        "Pick **the map of the kind of scene the model actually chose**, and say how sure you are "
        "(1 = just guessing, 5 = certain). One click on a number under a map answers."
    )


def on_object_heatmap(mask: Image.Image) -> torch.Tensor:
    """An attention check's answer map (H x W in [0, 1]): the labelled object's mask, softened by a Gaussian
    blur (sigma = side / 16) so it looks like a CAM on the object (hot inside, a warm rim), not a cut-out
    that could be mistaken for the photo's own colours."""
    radius = max(1.0, mask.size[0] / 16)
    blurred = np.asarray(mask.convert("L").filter(ImageFilter.GaussianBlur(radius)), dtype=np.float32)
    return normalize_maps(torch.from_numpy(blurred)[None])[0]


def ranked_classes(probs: torch.Tensor, k: int) -> torch.Tensor:
    """B x k class indices by decreasing probability; ties keep the lower index first, as argmax does,
    so rank 1 is always the class `target="predicted"` explains."""
    return torch.argsort(probs, dim=1, descending=True, stable=True)[:, :k]


def explain_top_k(loaded: list[LoadedMethod], samples: list[Sample], first: Explained, k: int,
                  device: str) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Raw maps (B x k x h x w) and classes (B x k) of each method's top-k classes, in rank order.
    `first` is the batch explained with `target="predicted"` (rank 1); ranks 2..k are explained with
    explicit classes through the same `explain`."""
    ranked = {name: ranked_classes(first.probs[name], k) for name in first.probs}
    for name, classes in ranked.items():
        if not torch.equal(classes[:, 0], first.classes[name]):  # a broken tie rule would mislabel the answer
            raise AssertionError(f"{name}: rank 1 differs from the predicted class")
    maps = {name: [first.maps[name]] for name in ranked}
    images, labels = model_inputs(samples, device)
    for r in range(1, k):
        result = explain_on_cpu(loaded, images, labels, "predicted",
                                classes={name: ranked[name][:, r] for name in ranked})
        for name in ranked:
            maps[name].append(result.maps[name])
    return {name: torch.stack(listed, 1) for name, listed in maps.items()}, ranked


class DistinctionWriter:
    """Renders and stores distinction items (`add` for regular items, `add_checks` for attention checks),
    and builds their manifest entries and `cams` section entries. Same interface as the pairwise
    `ItemWriter` (`items`, `extra`)."""

    def __init__(self, package: PackageFolder, study: str, loaded: list[LoadedMethod], class_labels: list[str],
                 encoder: ThreadPoolExecutor, *, k: int, seed: int, device: str) -> None:
        self.package, self.study, self.loaded = package, study, loaded
        self.class_labels, self.encoder = class_labels, encoder
        self.k, self.device = k, device
        self.order_rng = np.random.default_rng([seed, 3])  # candidate order, drawn item by item
        self.items: list[dict] = []
        self.extra: dict[str, CamsItem] = {}

    def _entry(self, sample: Sample, image_png: bytes, mask_png: bytes | None, probs: dict[str, torch.Tensor],
               ranked: dict[str, torch.Tensor], map_pngs: dict[str, list[bytes]],
               heatmaps: dict[str, list[np.ndarray]] | None, check: bool) -> None:
        """One item from its files: `map_pngs[method][r]` / `heatmaps[method][r]` in rank order."""
        entry_id = item_id(self.study, sample.id, "check" if check else "item")
        candidates, answer, extra = {}, {}, {}
        for name, pngs in map_pngs.items():
            order = self.order_rng.permutation(self.k).tolist()  # list position p shows rank order[p] + 1
            candidates[name] = [
                {"label": self.class_labels[int(ranked[name][r])], "map": self.package.write("maps", pngs[r], ".png"),
                 "rank": r + 1}
                for r in order
            ]
            answer[name] = order.index(0)
            extra[name] = tuple(
                CamsCandidate(int(ranked[name][r]),
                              None if heatmaps is None else self.package.write_npy("heatmaps", heatmaps[name][r]))
                for r in order
            )
        entry: dict = {
            "id": entry_id,
            "label": self.class_labels[sample.label],
            "image": self.package.write("images", image_png, ".png"),
            "candidates": candidates,
            "answer": answer,
        }
        if mask_png is not None:
            entry["mask"] = self.package.write("masks", mask_png, ".png")
        if heatmaps is not None:  # the answer's (rank-1) heatmap: what cams.metrics scores, like a pairwise map
            entry["heatmaps"] = {name: extra[name][answer[name]].heatmap for name in extra}
        entry["predictions"] = {name: top_predictions(p, self.class_labels) for name, p in probs.items()}
        entry["attention_check"] = check
        self.items.append(entry)
        self.extra[entry_id] = CamsItem(
            sample=sample.id,
            label_index=int(sample.label),
            targets={name: int(ranked[name][0]) for name in ranked},
            check=CatchTrial(None, CHECK_KIND) if check else None,
            candidates=extra,
        )

    def _common(self, samples: list[Sample]) -> tuple[torch.Tensor, list[bytes], list[bytes | None]]:
        pixels = pil_to_uint8([s.image for s in samples])
        images = list(self.encoder.map(encode_png, pixels.numpy()))
        masks = list(self.encoder.map(
            lambda s: None if s.mask is None else encode_png(np.asarray(s.mask.convert("L"))), samples))
        return pixels, images, masks

    def add(self, samples: list[Sample], result: Explained) -> None:
        """Regular items for `samples` (a batch); `result` explains them with `target="predicted"`."""
        raw, ranked = explain_top_k(self.loaded, samples, result, self.k, self.device)
        pixels, images, masks = self._common(samples)
        pngs: dict[str, list[list[bytes]]] = {}
        heats: dict[str, list[list[np.ndarray]]] = {}
        for name, maps in raw.items():
            per_rank = [render_overlays(maps[:, r], pixels) for r in range(self.k)]
            encoded = [list(self.encoder.map(encode_png, over.numpy())) for _, over in per_rank]
            pngs[name] = [[encoded[r][j] for r in range(self.k)] for j in range(len(samples))]
            heats[name] = [[per_rank[r][0][j].numpy().astype(np.float16) for r in range(self.k)]
                           for j in range(len(samples))]
        for j, sample in enumerate(samples):
            self._entry(sample, images[j], masks[j], {n: p[j] for n, p in result.probs.items()},
                        {n: r[j] for n, r in ranked.items()}, {n: v[j] for n, v in pngs.items()},
                        {n: v[j] for n, v in heats.items()}, check=False)

    def add_checks(self, samples: list[Sample], result: Explained) -> None:
        """Attention checks: the model's real top-k labels and ranks, but the answer's map is the labelled
        object's ground-truth mask (`on_object_heatmap`) and every other map is flat. No heatmaps (nothing
        to score)."""
        missing = [s.id for s in samples if s.mask is None]
        if missing:
            raise StudyInputError(
                f"--attention-checks with --task distinction needs ground-truth masks (the answer's map is the "
                f"labelled object's mask, the others flat), but sample {missing[0]!r} has none; "
                "leave --attention-checks out for this data"
            )
        ranked = {name: ranked_classes(probs, self.k) for name, probs in result.probs.items()}
        pixels, images, masks = self._common(samples)
        on_object = torch.stack([on_object_heatmap(s.mask) for s in samples])
        answer_pngs = list(self.encoder.map(encode_png, overlay(pixels, on_object).numpy()))
        flat_pngs = list(self.encoder.map(encode_png, overlay(pixels, torch.zeros_like(on_object)).numpy()))
        for j, sample in enumerate(samples):
            pngs = {m.name: [answer_pngs[j]] + [flat_pngs[j]] * (self.k - 1) for m in self.loaded}
            self._entry(sample, images[j], masks[j], {n: p[j] for n, p in result.probs.items()},
                        {n: r[j] for n, r in ranked.items()}, pngs, None, check=True)


def add_distinction_checks(loaded: list[LoadedMethod], val: Dataset, taken: set[int], writer: DistinctionWriter,
                           count: int, *, seed: int, batch_size: int, workers: int, device: str) -> None:
    """`count` attention checks, on samples outside the study where possible and preferably ones every
    model classifies correctly (then the answer's label is the labelled object's class)."""
    samples = check_samples(loaded, val, taken, count, rng=np.random.default_rng([seed, 1]),
                            batch_size=batch_size, workers=workers, device=device, target="predicted")
    images, labels = model_inputs(samples, device)
    writer.add_checks(samples, explain_on_cpu(loaded, images, labels, "predicted"))
