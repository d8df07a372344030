"""Explanation metrics on maps whose answers are known, bootstrap CIs, and the sanity-check parts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from cams.cam import class_activation_map
from cams.metrics import METRICS
from cams.metrics.maps import energy_in_mask, entropy, gini, pointing_game
from cams.metrics.perturbation import blurred, perturbation_batch, saliency_order
from cams.sanity import cascading_randomizations, randomization_stages, spearman
from cams.stats import bootstrap_mean, paired_difference
from models import build_model


def square_mask(size: int = 32, low: int = 8, high: int = 20) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    mask[low:high, low:high] = 255
    return mask


def test_map_equal_to_mask_scores_perfectly():
    mask = square_mask()
    heat = mask.astype(np.float32) / 255
    assert pointing_game(heat, mask) == 1.0
    assert energy_in_mask(heat, mask) == pytest.approx(1.0)


def test_map_outside_mask_scores_zero():
    mask = square_mask()
    heat = 1.0 - mask.astype(np.float32) / 255
    assert pointing_game(heat, mask) == 0.0
    assert energy_in_mask(heat, mask) == pytest.approx(0.0)


def test_flat_map_scores_chance():
    mask = square_mask()
    area = (mask > 0).mean()
    for heat in (np.zeros((32, 32)), np.full((32, 32), 0.7)):
        assert pointing_game(heat, mask) == pytest.approx(area)
        assert energy_in_mask(heat, mask) == pytest.approx(area)
        assert gini(heat) == pytest.approx(0.0, abs=1e-12)
        assert entropy(heat) == pytest.approx(1.0)


def test_one_hot_map_is_maximally_sparse():
    heat = np.zeros((32, 32))
    heat[5, 7] = 1.0
    assert gini(heat) == pytest.approx(1 - 1 / heat.size)
    assert gini(heat) > 0.999
    assert entropy(heat) == pytest.approx(0.0, abs=1e-12)


def test_gini_matches_mean_absolute_difference_formula():
    values = np.random.default_rng(0).random(200)
    expected = np.abs(values[:, None] - values[None, :]).sum() / (2 * values.size**2 * values.mean())
    assert gini(values.reshape(10, 20)) == pytest.approx(expected)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in size"):
        pointing_game(np.zeros((4, 4)), np.zeros((5, 4), np.uint8))


def test_saliency_order_breaks_ties_randomly_but_reproducibly():
    flat = torch.zeros(8, 8)
    ranks = saliency_order(flat, seed=3)
    assert sorted(ranks.flatten().tolist()) == list(range(64))
    assert torch.equal(ranks, saliency_order(flat, seed=3))
    assert ranks[0].max() >= 8  # not raster order: the first row is not deleted first
    peaked = torch.zeros(8, 8)
    peaked[6, 2] = 1.0
    assert saliency_order(peaked)[6, 2] == 0


def test_perturbation_batch_endpoints():
    image = torch.randn(3, 16, 16, generator=torch.Generator().manual_seed(0))
    heat = torch.rand(16, 16, generator=torch.Generator().manual_seed(1))
    deletion, fractions = perturbation_batch(image, heat, "deletion", steps=4)
    assert deletion.shape == (5, 3, 16, 16) and fractions.tolist() == [0, 0.25, 0.5, 0.75, 1.0]
    assert torch.equal(deletion[0], image) and (deletion[-1] == 0).all()
    changed = (deletion != image[None]).any(1).flatten(1).sum(1).tolist()
    assert changed == sorted(changed) and changed[2] == 128
    top = heat >= heat.flatten().sort(descending=True).values[63]
    assert (deletion[2][:, top] == 0).all()  # the 64 most salient pixels go first
    insertion, _ = perturbation_batch(image, heat, "insertion", steps=4)
    assert torch.equal(insertion[0], blurred(image[None])[0]) and torch.equal(insertion[-1], image)


def test_deletion_and_insertion_reward_the_right_map():
    """A 'model' whose score is the brightness of a region: the map of that region must delete
    the score fastest and insert it fastest; the inverted map the slowest."""
    region = torch.zeros(16, 16, dtype=torch.bool)
    region[2:7, 9:14] = True
    image = torch.ones(3, 16, 16)

    def score(batch: torch.Tensor) -> torch.Tensor:
        return batch[:, :, region].mean((1, 2)).clamp(0, 1)

    good = region.float()
    bad = 1.0 - good
    deletion, insertion = METRICS["deletion_auc"], METRICS["insertion_auc"]
    del_good, ins_good = deletion(score, image, good, steps=32), insertion(score, image, good, steps=32)
    del_bad, ins_bad = deletion(score, image, bad, steps=32), insertion(score, image, bad, steps=32)
    assert del_good < 0.1 and del_bad > 0.8
    assert ins_good > ins_bad


def test_bootstrap_ci():
    values = np.random.default_rng(0).normal(2.0, 1.0, 100)
    est = bootstrap_mean(values, seed=1)
    assert est.low < est.mean < est.high and est.n == 100
    assert est.mean == pytest.approx(values.mean())
    assert 0.3 < est.high - est.low < 0.5  # about 2 * 1.96 / sqrt(100)
    assert bootstrap_mean(values, seed=1) == est
    assert bootstrap_mean([np.nan, 1.0, np.nan]).n == 1
    diff = paired_difference(values + 0.5, values)
    assert diff.mean == pytest.approx(0.5) and diff.low == pytest.approx(0.5)
    with pytest.raises(ValueError, match="equal lengths"):
        paired_difference([1.0], [1.0, 2.0])


def test_randomization_stages_run_top_down_on_a_copy():
    torch.manual_seed(0)
    model = build_model("resnet18", 3).eval()
    names = [name for name, _ in randomization_stages(model)]
    assert names == ["fc", "layer4", "layer3", "layer2", "layer1", "bn1", "conv1"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images = torch.randn(2, 3, 64, 64)
    original = class_activation_map(model, images, [0, 1])
    changed = []
    for name, randomized in cascading_randomizations(model, seed=0):
        changed.append(name)
        if name == "fc":
            assert not torch.equal(randomized.fc.weight, model.fc.weight)
            assert torch.equal(
                randomized.features.layer4[0].conv1.weight, model.features.layer4[0].conv1.weight
            )
        if name == "layer4":
            assert not torch.equal(
                randomized.features.layer4[0].conv1.weight, model.features.layer4[0].conv1.weight
            )
            assert not torch.allclose(class_activation_map(randomized, images, [0, 1]), original)
    assert changed == names
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_spearman_matches_scipy_and_handles_constants():
    rng = np.random.default_rng(0)
    a, b = rng.random((8, 8)), rng.random((8, 8))
    assert spearman(a, a) == pytest.approx(1.0)
    assert spearman(a, b) == pytest.approx(spearmanr(a.ravel(), b.ravel()).statistic)
    assert np.isnan(spearman(a, np.zeros((8, 8))))


def test_two_level_bootstrap_accounts_for_seed_spread():
    from cams.stats import two_level_bootstrap

    rng = np.random.default_rng(0)
    same = [rng.normal(0.0, 1.0, 50) for _ in range(3)]
    shifted = [g + offset for g, offset in zip(same, (-1.0, 0.0, 1.0))]  # seeds disagree
    flat = two_level_bootstrap(same)
    spread = two_level_bootstrap(shifted)
    assert flat.n == spread.n == 150 and spread.mean == pytest.approx(flat.mean)
    assert (spread.high - spread.low) > 2 * (flat.high - flat.low)
    pooled = bootstrap_mean(np.concatenate(shifted))
    assert (spread.high - spread.low) > (pooled.high - pooled.low)  # wider than ignoring the seeds
    assert two_level_bootstrap([np.array([np.nan])]).n == 0
