"""`cams.explain.explain`: one backbone pass per model, then every method on the same feature maps, giving
exactly the maps each method gives alone (and torchcam's CAM)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchcam.methods import CAM as ReferenceCAM

from cams.cam import CAM
from cams.explain import explain
from cams.gradcam import GradCAM
from models import build_model

SIZE = 96


def spread_model(head: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    net = build_model("resnet18", 5, head).eval()
    with torch.no_grad():
        net.fc.weight.normal_(0, 1)
    return net


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    return {"vib": spread_model("vib", 0), "baseline": spread_model("baseline", 1)}


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


def count_backbone_passes(models: dict[str, nn.Module]) -> tuple[dict[str, list[int]], list]:
    calls: dict[str, list[int]] = {name: [] for name in models}
    handles = [m.features.register_forward_hook(lambda *_, n=name: calls[n].append(1)) for name, m in models.items()]
    return calls, handles


@pytest.mark.parametrize("target", ["truth", "predicted"])
def test_every_method_as_alone_with_one_backbone_pass_per_model(models, images, target):
    methods = {
        "vib": CAM(models["vib"]),
        "vib-gradcam": GradCAM(models["vib"]),
        "baseline": CAM(models["baseline"]),
    }
    labels = [0, 3, 1, 4]
    calls, handles = count_backbone_passes(models)
    try:
        together = explain(methods, images, labels, target=target)
    finally:
        for handle in handles:
            handle.remove()
    assert {name: len(c) for name, c in calls.items()} == {"vib": 1, "baseline": 1}
    assert list(together) == list(methods)  # the caller's order
    for name, method in methods.items():
        alone = method(images, labels, target=target)
        torch.testing.assert_close(together[name].maps, alone.maps, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(together[name].logits, alone.logits, atol=1e-5, rtol=1e-5)
        assert torch.equal(together[name].classes, alone.classes)
        torch.testing.assert_close(together[name].logits, models[name.split("-")[0]](images), atol=1e-4, rtol=1e-4)
    if target == "truth":
        assert together["vib"].classes.tolist() == labels


def test_cam_through_explain_equals_torchcam(models, images):
    classes = [2, 0, 4, 1]
    model = models["baseline"]
    ours = explain({"cam": CAM(model)}, images, classes={"cam": classes})["cam"].maps
    with ReferenceCAM(model, target_layer="features", fc_layer="fc", input_shape=(3, SIZE, SIZE)) as extractor:
        with torch.no_grad():
            model(images)
        reference = extractor(class_idx=classes, normalized=False)[0]
    # fp32 sums over 512 channels in a different order: equal to 1e-5 of the maps' own scale
    torch.testing.assert_close(ours, reference, atol=1e-5 * float(reference.abs().max()), rtol=1e-5)


def test_explicit_classes_override_the_target_per_method(models, images):
    model = models["vib"]
    methods = {"a": CAM(model), "b": CAM(model)}
    result = explain(methods, images, [0, 0, 0, 0], classes={"b": [4, 3, 2, 1]})
    assert result["a"].classes.tolist() == [0, 0, 0, 0] and result["b"].classes.tolist() == [4, 3, 2, 1]
    torch.testing.assert_close(result["b"].maps, CAM(model).maps(images, [4, 3, 2, 1]), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(result["a"].maps, result["b"].maps)


def test_mismatches_fail_loudly(models, images):
    methods = {"cam": CAM(models["vib"])}
    with pytest.raises(ValueError, match="one target class per image"):
        explain(methods, images, classes={"cam": [0, 1]})
    with pytest.raises(ValueError, match="needs the labels"):
        explain(methods, images)
    with pytest.raises(ValueError, match="B x 3 x H x W"):
        explain(methods, images[0])
