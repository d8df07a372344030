"""CAM computation and rendering against values worked out by hand (numpy loops, matplotlib, PIL).

The existing render tests use maps with negative values, so after ReLU every minimum is 0 and a
min-max that divides by the maximum instead of the range looks right; an all-positive map does not.
"""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cams.base import CamMethod, check_classes, select_targets
from cams.cam import CAM, class_activation_map
from cams.gradcam import GradCAM
from cams.render import (
    colorize,
    encode_png,
    lut_index,
    normalize_maps,
    overlay,
    pil_to_uint8,
    postprocess,
    render_overlays,
)


# ----------------------------------------------------------------------------------------- min-max
def test_all_positive_map_is_stretched_over_its_range() -> None:
    raw = torch.tensor([[[1.0, 2.0], [3.0, 5.0]]])
    expected = np.array([[0.0, 0.25], [0.5, 1.0]])  # (x - 1) / (5 - 1)
    assert postprocess(raw, (2, 2))[0].numpy() == pytest.approx(expected, abs=1e-7)
    assert normalize_maps(raw)[0].numpy() == pytest.approx(expected, abs=1e-7)
    assert raw.tolist() == [[[1.0, 2.0], [3.0, 5.0]]]  # the caller's maps are untouched


def test_each_map_is_normalised_on_its_own() -> None:
    raw = torch.tensor([[[10.0, 12.0], [14.0, 18.0]], [[-3.0, 0.5], [1.0, 2.0]]])
    heat = postprocess(raw, (2, 2)).numpy()
    assert heat[0] == pytest.approx(np.array([[0, 0.25], [0.5, 1.0]]), abs=1e-7)
    assert heat[1] == pytest.approx(np.array([[0, 0.25], [0.5, 1.0]]), abs=1e-7)  # ReLU, then (x-0)/2


def test_upsampling_is_bilinear_with_half_pixel_centres_by_hand() -> None:
    """2x2 -> 4x4 with align_corners=False: source coordinates -0.25, 0.25, 0.75, 1.25 (clamped)."""
    a, b, c, d = 2.0, 4.0, 6.0, 10.0
    raw = torch.tensor([[[a, b], [c, d]]])
    weights = np.array([[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])
    up = weights @ np.array([[a, b], [c, d]]) @ weights.T
    expected = (up - up.min()) / (up.max() - up.min())
    assert postprocess(raw, (4, 4))[0].numpy() == pytest.approx(expected, abs=1e-6)
    assert postprocess(raw, (4, 6)).shape == (1, 4, 6)


def test_constant_positive_and_nearly_constant_maps() -> None:
    heat = postprocess(torch.full((2, 3, 3), 7.0), (3, 3))
    assert torch.equal(heat, torch.zeros(2, 3, 3))
    tiny = torch.tensor([[[1.0, 1.0 + 1e-3]]])  # varies well above fp32 noise: still stretched
    assert postprocess(tiny, (1, 2))[0, 0].tolist() == pytest.approx([0.0, 1.0], abs=1e-4)
    noise = torch.tensor([[[1000.0, 1000.0 + 6e-5]]])  # one fp32 ulp at 1000: constant
    assert postprocess(noise, (1, 2))[0, 0].tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match=r"B x h x w.*\(2, 2\)"):
        postprocess(torch.ones(2, 2), (2, 2))


# ----------------------------------------------------------------------------------------- colours
def test_colours_and_overlay_match_matplotlib_jet_by_hand() -> None:
    heat = torch.tensor([[[0.0, 0.2], [0.5004, 1.0]]])
    index = np.round(heat.numpy() * 255).astype(int)
    assert lut_index(heat.clone()).tolist() == index.ravel().tolist() == [0, 51, 128, 255]
    jet = np.round(matplotlib.colormaps["jet"](np.linspace(0, 1, 256))[:, :3] * 255)
    assert colorize(heat).numpy().tolist() == jet[index].astype(np.uint8).tolist()
    image = torch.tensor([[[[10, 200, 30], [0, 0, 0]], [[255, 255, 255], [99, 1, 7]]]], dtype=torch.uint8)
    for alpha in (0.5, 0.3):
        expected = np.round((1 - alpha) * image.numpy() + alpha * jet[index]).clip(0, 255).astype(np.uint8)
        assert overlay(image, heat, alpha).numpy().tolist() == expected.tolist()
    with pytest.raises(ValueError, match="differ in size"):
        overlay(image, heat[:, :1])
    heatmaps, overlays = render_overlays(torch.tensor([[[1.0, 2.0], [3.0, 5.0]]]), image)
    assert heatmaps[0].numpy() == pytest.approx(np.array([[0.0, 0.25], [0.5, 1.0]]))
    assert overlays.dtype == torch.uint8 and torch.equal(overlays, overlay(image, heatmaps))


def test_png_bytes_round_trip_without_metadata() -> None:
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 13
    data = encode_png(torch.from_numpy(pixels))
    assert np.asarray(Image.open(io.BytesIO(data))).tolist() == pixels.tolist()
    chunks, at = [], 8
    while at < len(data):
        length = int.from_bytes(data[at:at + 4], "big")
        chunks.append(data[at + 4:at + 8].decode())
        at += 12 + length
    assert chunks == ["IHDR", "IDAT", "IEND"]
    grey = encode_png(np.zeros((4, 5), np.uint8))
    assert Image.open(io.BytesIO(grey)).mode == "L"
    for bad in (np.zeros((2, 2), np.float32), np.zeros((2, 2, 3, 1), np.uint8)):
        with pytest.raises(ValueError, match="uint8"):
            encode_png(bad)
    images = [Image.fromarray(pixels), Image.fromarray(pixels[..., 0])]
    stacked = pil_to_uint8(images)
    assert stacked.shape == (2, 2, 3, 3) and stacked[1, ..., 0].tolist() == pixels[..., 0].tolist()


# --------------------------------------------------------------------------------------------- CAM
class Handmade(nn.Module):
    """features = the image's first 3 channels as 3 x 2 x 2 'feature maps'; fc has known weights."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Identity()
        self.fc = nn.Linear(3, 4)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 2, -1], [0.5, 0.5, 0.5], [-1, 0, 3]]))
            self.fc.bias.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))


def _reference_cam(features: np.ndarray, weights: np.ndarray, classes: list[int]) -> np.ndarray:
    out = np.zeros((features.shape[0], features.shape[2], features.shape[3]))
    for b, c in enumerate(classes):
        for k in range(features.shape[1]):
            for y in range(features.shape[2]):
                for x in range(features.shape[3]):
                    out[b, y, x] += weights[c, k] * features[b, k, y, x]
    return out


@pytest.fixture()
def handmade() -> tuple[Handmade, torch.Tensor]:
    images = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2) - 5.0
    return Handmade().eval(), images


def test_cam_and_gradcam_equal_hand_loops(handmade) -> None:  # noqa: ANN001
    model, images = handmade
    weights = model.fc.weight.detach().numpy()
    for classes in ([1, 3], [0, 2]):
        expected = _reference_cam(images.numpy(), weights, classes)
        assert class_activation_map(model, images, classes).numpy() == pytest.approx(expected, abs=1e-5)
        assert CAM(model).maps(images, torch.tensor(classes)).numpy() == pytest.approx(expected, abs=1e-5)
        assert GradCAM(model).maps(images, classes).numpy() == pytest.approx(expected / 4, abs=1e-5)


def test_call_returns_eval_logits_and_the_explained_classes(handmade) -> None:  # noqa: ANN001
    model, images = handmade
    logits = images.mean((2, 3)) @ model.fc.weight.T + model.fc.bias
    batch = CAM(model)(images, [3, 0])
    assert batch.logits.numpy() == pytest.approx(logits.detach().numpy(), abs=1e-5)
    assert batch.classes.tolist() == [3, 0]
    assert batch.maps.mean((1, 2)).numpy() + model.fc.bias.detach().numpy()[[3, 0]] == pytest.approx(
        logits.detach().numpy()[[0, 1], [3, 0]], abs=1e-5)
    predicted = CAM(model)(images, target="predicted")
    assert predicted.classes.tolist() == logits.argmax(1).tolist()
    assert select_targets(logits, None, "predicted").tolist() == logits.argmax(1).tolist()
    assert repr(CAM(model)) == "CAM(model=Handmade)" and issubclass(GradCAM, CamMethod)


def test_class_bounds_and_errors(handmade) -> None:  # noqa: ANN001
    model, images = handmade
    assert check_classes([0, 3], 2, 4, torch.device("cpu")).tolist() == [0, 3]
    for bad in ([0, 4], [-1, 0]):
        with pytest.raises(ValueError, match=r"must lie in \[0, 3\]"):
            check_classes(bad, 2, 4, torch.device("cpu"))
    with pytest.raises(ValueError, match=r"one target class per image: got \(3,\) classes for a batch of 2"):
        CAM(model)(images, [0, 1, 2])
    with pytest.raises(ValueError, match="target 'truth' needs the labels"):
        CAM(model)(images)
    with pytest.raises(ValueError, match="unknown target 'best'; choose one of truth, predicted"):
        CAM(model)(images, [0, 1], target="best")
    with pytest.raises(ValueError, match="unknown target 'best'"):
        select_targets(torch.zeros(2, 4), [0, 1], "best")
    with pytest.raises(ValueError, match=r"B x 3 x H x W batch, got shape \(3, 2, 2\)"):
        CAM(model).maps(images[0], [0])
    with pytest.raises(TypeError, match="Sequential has no features or fc module"):
        CAM(nn.Sequential())
    flat = Handmade()
    flat.features = nn.Flatten()
    with pytest.raises(ValueError, match=r"B x C x h x w feature maps, got \(2, 12\)"):
        CAM(flat).maps(images, [0, 1])


# ------------------------------------------------------------ details found by mutation testing
def test_cam_of_low_precision_features_uses_weights_in_their_dtype() -> None:
    """Under bf16 autocast the feature maps are bf16 while fc stays fp32: the CAM must still work."""
    from cams.cam import cam_from_features

    torch.manual_seed(0)
    features, weight = torch.randn(2, 5, 3, 3), torch.randn(4, 5)
    exact = cam_from_features(features, weight, torch.tensor([1, 3]))
    low = cam_from_features(features.bfloat16(), weight, torch.tensor([1, 3]))
    assert low.dtype == torch.float32 and torch.allclose(low, exact, atol=0.1, rtol=0.05)


def test_out_of_range_values_are_clamped_to_the_colour_table_and_pixels() -> None:
    assert lut_index(torch.tensor([-0.5, 0.0, 1.0, 1.5])).tolist() == [0, 0, 255, 255]
    heat = torch.tensor([[[0.0, 1.0]]])
    image = torch.tensor([[[[250, 250, 250], [3, 3, 3]]]], dtype=torch.uint8)
    jet = np.round(matplotlib.colormaps["jet"](np.linspace(0, 1, 256))[:, :3] * 255)[[0, 255]]
    for alpha in (1.3, -0.4):  # extrapolating blends leave [0, 255]: clamp, never wrap around
        expected = np.clip(np.round((1 - alpha) * image.numpy()[0, 0] + alpha * jet), 0, 255)
        assert overlay(image, heat, alpha).numpy()[0, 0].tolist() == expected.astype(np.uint8).tolist()


def test_render_overlays_passes_its_alpha_on() -> None:
    raw = torch.tensor([[[1.0, 2.0], [3.0, 5.0]]])
    image = torch.full((1, 2, 2, 3), 100, dtype=torch.uint8)
    heat, blended = render_overlays(raw, image, alpha=0.25)
    assert torch.equal(blended, overlay(image, heat, 0.25)) and not torch.equal(blended, overlay(image, heat))


def test_png_bytes_are_zlib_level_6_so_content_names_stay_stable() -> None:
    pixels = (np.arange(32 * 32 * 3) % 251).astype(np.uint8).reshape(32, 32, 3)
    reference = io.BytesIO()
    Image.fromarray(pixels).save(reference, format="PNG", compress_level=6)
    assert encode_png(pixels) == reference.getvalue()
    assert encode_png(pixels, compress_level=1) != encode_png(pixels)


def test_labels_are_checked_before_the_forward_pass_and_only_for_truth(handmade) -> None:  # noqa: ANN001
    model, images = handmade
    calls = []
    model.features = nn.Sequential(nn.Identity())
    model.features.register_forward_hook(lambda *args: calls.append(1))
    with pytest.raises(ValueError, match=r"one target class per image"):
        CAM(model)(images, [0, 1, 2])
    assert calls == []  # refused before running the backbone
    predicted = CAM(model)(images, [0, 99], target="predicted")  # labels are not used for 'predicted'
    assert len(calls) == 1 and predicted.classes.tolist() == predicted.logits.argmax(1).tolist()


def test_target_messages_and_class_dtype() -> None:
    with pytest.raises(ValueError, match=r"^unknown target 'best'; choose one of truth, predicted$"):
        select_targets(torch.zeros(2, 4), [0, 1], "best")
    with pytest.raises(ValueError, match=r"^target 'truth' needs the labels of the images; pass labels or "
                                         r"use target='predicted'$"):
        select_targets(torch.zeros(2, 4), None, "truth")
    narrow = check_classes(torch.tensor([0, 3], dtype=torch.uint8), 2, 4, torch.device("cpu"))
    assert narrow.dtype == torch.long and narrow.tolist() == [0, 3]  # uint8 would index as a mask


def test_models_outside_the_cam_contract_are_refused_with_the_fix() -> None:
    from cams.base import check_cam_model

    with pytest.raises(TypeError) as missing:
        check_cam_model(nn.Sequential())
    assert str(missing.value) == (
        "Sequential has no features or fc module; CAM methods need a model with .features "
        "(images -> feature maps) and .fc (nn.Linear), as models.build_model makes")
    model = Handmade()
    model.fc = nn.Sequential(nn.Linear(3, 4))
    with pytest.raises(TypeError) as not_linear:
        check_cam_model(model)
    assert str(not_linear.value) == "model.fc must be an nn.Linear, got Sequential"
