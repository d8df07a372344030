"""Simulated raters for distinction studies (HIVE's task), grounded in the maps.

A rater sees one method's maps for the model's top-k classes and picks the one of the predicted class.
These raters use the heuristic a person plausibly uses: *the model chose the class whose map lies on the
object*. For each candidate j of item i (one method, as the rater is assigned) let e_j be the energy in
mask of its heatmap (share of the map's mass on the item's labelled object, `cams.metrics.maps`), read
from the package's per-candidate heatmaps (`cams.items[...].candidates`, written by
``python -m cams.generate --task distinction``) and its masks. Rater r picks candidate j with probability

    P(j) = softmax_j( s_r * e_j + v_ij ),   s_r = sensitivity * exp(rater_sd * z_r),  z_r ~ N(0, 1),
                                            v_ij ~ N(0, item_sd^2), shared by every rater of the item,

so a method whose rank-1 maps lie on the object (and whose runner-up maps do not) is answered correctly
more often; s_r is how much a rater relies on the maps (some look harder), v_ij is how misleading a map
looks to everyone. Confidence rises with the margin m = P(chosen) - max over the others of P(j):
round(1 + 4 * max(m, 0) + N(0, 0.6^2)), clipped to 1..5 (a toss-up gives 1, "just guessing"; a clear
choice 5). Attention checks are answered right with probability ``attention_accuracy`` (confidence 5),
else a random other map (confidence 1-3).

Where the mask is the *labelled* object: when the model is wrong, its prediction's map need not lie on
it, and these raters then tend to pick the map of the true class: a wrong prediction is hard to tell
apart, as in HIVE.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from cams.metrics.maps import energy_in_mask
from survey.db import get_engine
from survey.distinction_service import next_trial, record_answer
from survey.package import CamsSection, PackageError, load_package, resolve_inside
from survey.service import StudyView, SurveyError, start_rater
from testing.reveal import reveal_distinction_trial

DEFAULT_DISTINCTION_SENSITIVITY = 10.0  # logit units per unit of energy in mask (0.1 more -> odds x 2.7)
CONFIDENCE_NOISE_SD = 0.6


@dataclass(frozen=True)
class CandidateEnergies:
    """Energy in mask of every candidate map of a package's regular items: (item, method) -> {rank: e}."""

    by_trial: dict[tuple[str, str], dict[int, float]]

    def screen(self, item: str, method: str, ranks: tuple[int, ...]) -> np.ndarray:
        """The energies in screen order (ranks as the trial shows them)."""
        found = self.by_trial.get((item, method))
        if found is None:
            raise SurveyError(f"item {item!r} / method {method!r} has no per-candidate heatmaps in the package")
        return np.array([found[rank] for rank in ranks])


def candidate_energies(root: Path) -> CandidateEnergies:
    """Reads the package at ``root`` (validated) and scores every candidate heatmap against the item's mask.
    Errors name what is missing and how to make it."""
    try:
        manifest = load_package(root)
        section = CamsSection.from_manifest(manifest, root)
    except PackageError as error:
        raise SurveyError(f"the study's package {root} is not readable: {error}") from None
    fix = "make the package with python -m cams.generate --task distinction (on data with masks)"
    if section is None:
        raise SurveyError(f"package {root} has no cams section with per-candidate heatmaps; {fix}")
    by_trial: dict[tuple[str, str], dict[int, float]] = {}
    for item in manifest["items"]:
        if item.get("attention_check"):
            continue
        entry = section.items[item["id"]]
        if "mask" not in item or entry.candidates is None:
            raise SurveyError(f"item {item['id']} of package {root} has no mask or no candidate heatmaps; {fix}")
        with Image.open(resolve_inside(root, item["mask"])) as image:
            mask = np.asarray(image.convert("L"))
        for method, listed in entry.candidates.items():
            energies = {}
            for candidate, shown in zip(listed, item["candidates"][method]):
                if candidate.heatmap is None:
                    raise SurveyError(f"item {item['id']} / {method}: a candidate has no heatmap; {fix}")
                heat = np.load(resolve_inside(root, candidate.heatmap), allow_pickle=False).astype(np.float32)
                energies[shown["rank"]] = energy_in_mask(heat, mask)
            by_trial[(item["id"], method)] = energies
    return CandidateEnergies(by_trial)


def choice_probabilities(energies: np.ndarray, skill: float, item_noise: np.ndarray) -> np.ndarray:
    """softmax(skill * e + v) over the candidates on screen."""
    logits = skill * energies + item_noise
    logits = logits - logits.max()
    weights = np.exp(logits)
    return weights / weights.sum()


def confidence_for(probabilities: np.ndarray, chosen: int, rng: np.random.Generator) -> int:
    """1..5, rising with the margin of the chosen map over the next most likely one."""
    others = np.delete(probabilities, chosen)
    margin = max(float(probabilities[chosen] - others.max()), 0.0)
    return int(np.clip(round(1 + 4 * margin + rng.normal(0, CONFIDENCE_NOISE_SD)), 1, 5))


def simulate_distinction(url: str | None, view: StudyView, ids: list[str], *, seed: int, rater_sd: float,
                         item_sd: float, attention_accuracy: float, sensitivity: float | None,
                         progress: bool) -> int:
    """Runs the raters ``ids`` to the end of the distinction study ``view``; returns the answers recorded."""
    engine = get_engine(url)
    energies = candidate_energies(view.package_root)  # a package without what we need fails before any answer
    rng = np.random.default_rng(seed)
    base = DEFAULT_DISTINCTION_SENSITIVITY if sensitivity is None else sensitivity
    skills = base * np.exp(rater_sd * rng.standard_normal(len(ids)))
    item_noise: dict[tuple[str, str], np.ndarray] = {}  # (item, method) -> v by rank, shared by every rater
    for rater in ids:
        start_rater(engine, view.name, rater)
    recorded = 0
    bar = tqdm(total=len(ids) * view.n_trials_per_rater, desc=f"simulated answers ({view.name})", unit="answer",
               disable=not progress)
    for skill, rater in zip(skills, ids):
        while (screen := next_trial(engine, view.name, rater)) is not None:
            truth = reveal_distinction_trial(engine, screen.token)
            k = len(truth.ranks)
            if truth.is_attention_check:
                if rng.random() < attention_accuracy:
                    choice, confidence = truth.answer_slot, 5
                else:
                    choice = int(rng.choice([s for s in range(k) if s != truth.answer_slot]))
                    confidence = int(rng.integers(1, 4))
            else:
                on_screen = energies.screen(truth.item, truth.method, truth.ranks)
                noise = item_noise.setdefault((truth.item, truth.method), rng.normal(0, item_sd, k))  # by rank
                probabilities = choice_probabilities(on_screen, skill, noise[np.array(truth.ranks) - 1])
                choice = int(rng.choice(k, p=probabilities))
                confidence = confidence_for(probabilities, choice, rng)
            result = record_answer(engine, view.name, rater, screen.token, choice, confidence)
            recorded += int(result.recorded)
            bar.update(1)
    bar.close()
    return recorded
