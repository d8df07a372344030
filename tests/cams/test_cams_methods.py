"""CAM and Grad-CAM against independent implementations (torchcam, pytorch-grad-cam), and the
base class's target handling."""

from __future__ import annotations

import pytest
import torch
import torchvision
from pytorch_grad_cam import GradCAM as ReferenceGradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn
from torchcam.methods import CAM as ReferenceCAM

from cams.base import CamMethod
from cams.cam import CAM, class_activation_map
from cams.gradcam import GradCAM
from cams.methods import METHODS, make_method
from cams.render import postprocess
from models import build_model

SIZE = 96  # 3 x 3 feature maps on a ResNet


@pytest.fixture(scope="module", params=["baseline", "vib"])
def model(request) -> nn.Module:
    torch.manual_seed(0)
    net = build_model("resnet18", 5, request.param).eval()
    with torch.no_grad():  # spread the fc weights so maps of different classes differ clearly
        net.fc.weight.normal_(0, 1)
    return net


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


def test_cam_equals_torchcam(model, images):
    classes = [0, 3, 1, 4]
    ours = class_activation_map(model, images, classes)
    with ReferenceCAM(
        model, target_layer="features", fc_layer="fc", input_shape=(3, SIZE, SIZE)
    ) as extractor:
        with torch.no_grad():
            model(images)
        # torchcam 0.5's CAM applies no ReLU; normalized=False keeps its maps raw like ours.
        reference = extractor(class_idx=classes, normalized=False)[0]
    assert ours.shape == (4, 3, 3)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)


def test_cam_mean_plus_bias_is_the_logit(model, images):
    """CAM is a spatial decomposition of the score: mean over positions + bias = logit."""
    batch = CAM(model)(images, [2, 2, 0, 1])
    logits = model(images).detach()
    expected = logits.gather(1, batch.classes[:, None])[:, 0] - model.fc.bias[batch.classes].detach()
    torch.testing.assert_close(batch.maps.mean((1, 2)), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batch.logits, logits, atol=1e-5, rtol=1e-5)


def test_gradcam_equals_pytorch_grad_cam(model, images):
    classes = [4, 0, 2, 2]
    with ReferenceGradCAM(model=model, target_layers=[model.features]) as reference:
        expected = reference(input_tensor=images, targets=[ClassifierOutputTarget(c) for c in classes])
    ours = postprocess(GradCAM(model).maps(images, classes), (SIZE, SIZE))
    assert ours.shape == expected.shape == (4, SIZE, SIZE)
    torch.testing.assert_close(ours, torch.from_numpy(expected), atol=1e-5, rtol=1e-5)


def test_gradcam_is_cam_up_to_scale_for_a_gap_linear_head(model, images):
    classes = [1, 2, 3, 4]
    cam, grad = CAM(model).maps(images, classes), GradCAM(model).maps(images, classes)
    torch.testing.assert_close(grad * (cam.shape[1] * cam.shape[2]), cam, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_target_truth_and_predicted(model, images, name):
    method = make_method(name, model)
    labels = torch.tensor([3, 3, 0, 1])
    truth = method(images, labels)
    assert truth.classes.tolist() == labels.tolist()
    predicted = method(images, target="predicted")
    assert predicted.classes.tolist() == model(images).argmax(1).tolist()
    torch.testing.assert_close(predicted.maps, method.maps(images, predicted.classes))


@pytest.mark.parametrize("name", sorted(METHODS))
def test_from_features_explains_the_true_class_by_default(model, images, name):
    """cams.explain shares one backbone pass between methods through `from_features`; like a call on
    images, it must explain the labels when no target is named (what a study package records)."""
    method = make_method(name, model)
    labels = torch.tensor([3, 3, 0, 1])
    with torch.no_grad():
        features = model.features(images)
    shared = method.from_features(features, labels)
    assert shared.classes.tolist() == labels.tolist()
    torch.testing.assert_close(shared.maps, method(images, labels).maps)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_one_backbone_pass_per_batch(model, images, name):
    calls = []
    handle = model.features.register_forward_hook(lambda *_: calls.append(1))
    try:
        make_method(name, model)(images, [0, 1, 2, 3])
    finally:
        handle.remove()
    assert len(calls) == 1


@pytest.mark.parametrize(
    "classes, message",
    [
        ([0, 1], "one target class per image"),  # fewer targets than images
        ([0, 1, 2, 3, 4], "one target class per image"),  # more (pytorch-grad-cam would ignore the extra)
        ([[0, 1], [2, 3]], "one target class per image"),
        ([0, 1, 2, 5], r"lie in \[0, 4\]"),
        ([0, -1, 2, 3], r"lie in \[0, 4\]"),
    ],
)
def test_mismatched_targets_fail_loudly(model, images, classes, message):
    for cls in METHODS.values():
        with pytest.raises(ValueError, match=message):
            cls(model)(images, classes)
        with pytest.raises(ValueError, match=message):
            cls(model).maps(images, classes)


def test_bad_calls_name_the_problem(model, images):
    with pytest.raises(ValueError, match="needs the labels"):
        CAM(model)(images)
    with pytest.raises(ValueError, match="unknown target"):
        CAM(model)(images, [0, 0, 0, 0], target="best")
    with pytest.raises(ValueError, match="B x 3 x H x W"):
        CAM(model)(images[0], [0])
    with pytest.raises(ValueError, match="unknown CAM method"):
        make_method("scorecam", model)
    with pytest.raises(TypeError, match=r"\.features"):
        CAM(torchvision.models.resnet18(num_classes=3))  # a plain torchvision net has no .features
    assert issubclass(CAM, CamMethod) and issubclass(GradCAM, CamMethod)
