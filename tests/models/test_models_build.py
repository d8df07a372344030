"""build_model: shapes, the CAM contract, the VIB head (eval path, KL, attention entropy), weights."""
from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from models import build_model
from models.checkpoint import CheckpointError
from models.vib import ChannelAttentionSigma, VIBClassifier, VIBOutput, gaussian_kl

CHANNELS = {"resnet18": 512, "resnet34": 512, "resnet50": 2048}


@pytest.mark.parametrize("arch", sorted(CHANNELS))
@pytest.mark.parametrize("head", ["baseline", "vib"])
def test_shapes_and_cam_contract(arch: str, head: str) -> None:
    torch.manual_seed(0)
    model = build_model(arch, 7, head).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        maps = model.features(x)
        logits = model(x)
        assert maps.shape == (2, CHANNELS[arch], 2, 2)
        assert isinstance(model.fc, nn.Linear) and model.fc.in_features == CHANNELS[arch]
        assert logits.shape == (2, 7)
        assert torch.equal(logits, model.fc(model.features(x).mean((2, 3))))


def test_eval_forward_never_runs_the_attention_branch(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = build_model("resnet18", 5, "vib")
    calls = []
    model.attention.register_forward_hook(lambda *_: calls.append(1))
    x = torch.randn(2, 3, 32, 32)
    model.train()
    assert isinstance(model(x), VIBOutput) and calls == [1]  # the hook does see training calls
    model.eval()

    def fail(*_args, **_kwargs):
        raise AssertionError("attention ran in eval mode")

    monkeypatch.setattr(model.attention, "forward", fail)
    monkeypatch.setattr(model.attention, "attention", fail)
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == (2, 5) and calls == [1]


def test_vib_training_output_has_one_logit_set_per_sample() -> None:
    torch.manual_seed(0)
    model = build_model("resnet18", 4, "vib", samples=3).train()
    output = model(torch.randn(5, 3, 32, 32))
    assert output.logits.shape == (3, 5, 4)
    assert output.kl.shape == (5,) and output.sigma.shape == (5, 512)
    assert not torch.equal(output.logits[0], output.logits[1])  # independent noise per sample


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_kl_matches_torch_distributions(reduction: str) -> None:
    generator = torch.Generator().manual_seed(1)
    mu = torch.randn(6, 33, generator=generator, dtype=torch.float64) * 3
    sigma = torch.rand(6, 33, generator=generator, dtype=torch.float64) * 2 + 1e-3
    reference = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, sigma), torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(sigma)))
    expected = reference.sum(1) if reduction == "sum" else reference.mean(1)
    torch.testing.assert_close(gaussian_kl(mu, sigma, reduction), expected, rtol=1e-10, atol=1e-10)


def test_training_kl_is_the_kl_of_the_posterior() -> None:
    torch.manual_seed(0)
    model = build_model("resnet18", 3, "vib").train()
    x = torch.randn(2, 3, 32, 32)
    torch.manual_seed(5)
    output = model(x)
    mu, sigma = model.posterior(model.features(x))
    reference = torch.distributions.kl_divergence(torch.distributions.Normal(mu, sigma),
                                                  torch.distributions.Normal(0.0, 1.0)).sum(1)
    torch.testing.assert_close(output.kl, reference, rtol=1e-4, atol=1e-3)


def test_legacy_sigma_starts_small_whatever_the_activations() -> None:
    torch.manual_seed(0)
    model = build_model("resnet18", 3, "vib", sigma_parametrisation="legacy")
    maps = torch.rand(3, 512, 4, 4) * 1000
    _, sigma = model.posterior(maps)
    torch.testing.assert_close(sigma, torch.full_like(sigma, math.log1p(math.exp(-5.0))))


def attention_gradients(model: torch.nn.Module) -> tuple[float, float]:
    """|d loss / d log_temperature| and the norm of d loss / d scale for one CE + beta * KL step."""
    torch.manual_seed(1)
    model.train()
    output = model(torch.randn(4, 3, 64, 64))
    loss = torch.nn.functional.cross_entropy(output.logits[0], torch.tensor([0, 1, 2, 0])) + 1e-3 * output.kl.mean()
    loss.backward()
    return abs(model.attention.log_temperature.grad.item()), model.attention.scale.grad.norm().item()


def test_new_head_gives_the_attention_gradient_from_the_first_step_and_legacy_did_not() -> None:
    torch.manual_seed(0)
    temperature_grad, scale_grad = attention_gradients(build_model("resnet18", 3, "vib"))
    assert temperature_grad > 1e-6 and scale_grad > 1e-6
    torch.manual_seed(0)
    temperature_grad, scale_grad = attention_gradients(build_model("resnet18", 3, "vib", sigma_parametrisation="legacy"))
    assert temperature_grad == 0.0 and scale_grad > 0  # legacy: only scale moves, the attention is cut off


def test_new_sigma_starts_near_sigma_init_and_depends_on_the_input() -> None:
    torch.manual_seed(0)
    model = build_model("resnet18", 3, "vib", sigma_init=0.7, sigma_scale_init=0.5)
    maps = torch.rand(6, 512, 4, 4) * torch.linspace(1, 100, 6)[:, None, None, None]
    mu = maps.mean((2, 3))
    sigma = model.attention(maps, mu)
    context = model.attention.context(maps, mu)
    u = (context - context.mean(1, keepdim=True)) / context.std(1, correction=0, keepdim=True)
    torch.testing.assert_close(sigma, torch.nn.functional.softplus(0.5 * u + math.log(math.expm1(0.7))),
                               rtol=1e-4, atol=1e-5)
    assert abs(sigma.median().item() - 0.7) < 0.1
    assert (sigma.std(0) / sigma.mean(0)).median() > 0.05  # differs between images for the same channel
    with pytest.raises(ValueError, match="sigma_init"):
        build_model("resnet18", 3, "vib", sigma_init=0.0)
    with pytest.raises(ValueError, match="sigma_parametrisation"):
        build_model("resnet18", 3, "vib", sigma_parametrisation="nope")


def normalised_entropy(attention: torch.Tensor) -> float:
    entropy = -(attention * attention.clamp_min(1e-30).log()).sum(-1)
    return float((entropy / math.log(attention.shape[-1])).mean())


def test_attention_does_not_collapse_on_large_activations() -> None:
    """The naive energy X X^T / sqrt(HW) turns one-hot on big layer-4 maps; ours must not."""
    torch.manual_seed(0)
    model = build_model("resnet18", 3, "vib").eval()
    with torch.no_grad():
        maps = model.features(torch.randn(4, 3, 128, 128)) * 50  # a trained layer 4 can be this large
        ours = model.attention.attention(maps)
        flat = maps.flatten(2)
        naive = torch.softmax(flat @ flat.transpose(1, 2) / math.sqrt(flat.shape[2]), -1)
    assert normalised_entropy(naive) < 0.1  # the failure the pilot saw, reproduced
    assert normalised_entropy(ours) > 0.5
    assert float(ours.max(-1).values.mean()) < 0.2
    torch.testing.assert_close(ours.sum(-1), torch.ones(4, 512))


def test_predict_modes() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 3, 32, 32)
    mu_model = build_model("resnet18", 4, "vib").eval()
    prediction = mu_model.predict(x)
    torch.testing.assert_close(prediction.probs, mu_model(x).softmax(-1))
    assert prediction.kl.shape == (3,)
    sampled = build_model("resnet18", 4, "vib", eval_mode="mean_softmax", eval_samples=5).eval()
    probs = sampled.predict(x).probs
    torch.testing.assert_close(probs.sum(-1), torch.ones(3))


def test_seeded_builds_are_identical() -> None:
    torch.manual_seed(3)
    first = build_model("resnet18", 4, "vib").state_dict()
    torch.manual_seed(3)
    second = build_model("resnet18", 4, "vib").state_dict()
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("resnet101", 3)
    with pytest.raises(ValueError, match="unknown head"):
        build_model("resnet18", 3, "gaussian")
    with pytest.raises(ValueError, match="takes no options"):
        build_model("resnet18", 3, samples=2)
    with pytest.raises(ValueError, match="kl_reduction"):
        build_model("resnet18", 3, "vib", kl_reduction="max")


def test_local_torchvision_weights_load_strictly_except_fc(tmp_path) -> None:
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    model = build_model("resnet18", 9, "vib", weights=path)
    for name, tensor in reference.state_dict().items():
        if not name.startswith("fc."):
            assert torch.equal(model.state_dict()[f"features.{name}"], tensor), name
    assert model.fc.out_features == 9

    torch.save(torchvision.models.resnet50(weights=None).state_dict(), tmp_path / "resnet50.pth")
    with pytest.raises(CheckpointError, match="do not fit resnet18"):
        build_model("resnet18", 9, weights=tmp_path / "resnet50.pth")
    partial = {k: v for k, v in reference.state_dict().items() if k != "layer4.1.bn2.weight"}
    torch.save(partial, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match="1 missing keys"):
        build_model("resnet18", 9, weights=tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match="not found"):
        build_model("resnet18", 9, weights=tmp_path / "absent.pth")


def test_fused_context_equals_the_explicit_attention_product(monkeypatch) -> None:
    """The fused kernel against the explicit product; both kernels against float64 in test_models_attention."""
    monkeypatch.setenv("VIBCAM_ATTENTION_KERNEL", "sdpa")
    torch.manual_seed(0)
    model = build_model("resnet18", 3, "vib")
    with torch.no_grad():
        model.attention.log_temperature.fill_(math.log(12.0))
    maps = torch.rand(3, 512, 4, 4, requires_grad=True) * 7
    mu = maps.mean((2, 3))
    fused = model.attention.context(maps, mu)
    explicit = torch.bmm(model.attention.attention(maps), mu.unsqueeze(2)).squeeze(2)
    torch.testing.assert_close(fused, explicit, rtol=1e-4, atol=1e-4)
    fused_grad = torch.autograd.grad(fused.square().sum(), [maps, model.attention.log_temperature])
    explicit_grad = torch.autograd.grad(explicit.square().sum(), [maps, model.attention.log_temperature])
    for ours, reference in zip(fused_grad, explicit_grad):
        torch.testing.assert_close(ours, reference, rtol=1e-3, atol=1e-3)


# --------------------------------------------------------------- VIB options: defaults, round trip, validation
VIB_DEFAULTS = {"samples": 1, "eval_mode": "mu", "eval_samples": 12, "kl_reduction": "sum",
                "attention_temperature": 5.0, "sigma_offset": 5.0, "sigma_parametrisation": "standardised",
                "sigma_init": 1.0, "sigma_scale_init": 1.0}


def identity_vib(**options) -> VIBClassifier:
    """A VIB head whose 'features' are the identity: the input is the feature map (C = 6, K = 4)."""
    return VIBClassifier("resnet18", nn.Sequential(nn.Identity()), nn.Linear(6, 4), **options)


def test_vib_defaults_are_the_documented_ones_and_behave_so() -> None:
    """docs/model.md: one sample, t = 5, sigma_init = 1, scale = 1, eval on mu, KL summed."""
    torch.manual_seed(0)
    model = identity_vib()
    assert model.arch == "resnet18" and model.head == "vib"
    assert model.options == VIB_DEFAULTS  # what a checkpoint stores and rebuilds the model from
    maps = torch.randn(3, 6, 4, 4)
    assert model.train()(maps).logits.shape == (1, 3, 4)
    assert model.attention.log_temperature.exp().item() == pytest.approx(5.0)
    mu, sigma = model.posterior(maps)
    context = model.attention.context(maps, mu)
    u = (context - context.mean(1, keepdim=True)) / context.std(1, correction=0, keepdim=True)
    torch.testing.assert_close(sigma, F.softplus(u + math.log(math.e - 1.0)), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(model.kl(mu, sigma), gaussian_kl(mu, sigma, "sum"))
    # the module's own defaults are the same: the head built alone gives the same sigma
    alone = ChannelAttentionSigma(6)
    assert alone.parametrisation == "standardised" and alone.log_temperature.exp().item() == pytest.approx(5.0)
    torch.testing.assert_close(alone(maps, mu), sigma)
    legacy = ChannelAttentionSigma(6, parametrisation="legacy")  # sigma_offset 5: softplus(-5) everywhere
    torch.testing.assert_close(legacy(maps, mu), torch.full((3, 6), math.log1p(math.exp(-5.0))))


def test_vib_options_round_trip_through_build_model_and_reach_the_head() -> None:
    """A checkpoint rebuilds the model with build_model(**model.options): every key must be accepted."""
    options = {"samples": 3, "eval_mode": "mean_softmax", "eval_samples": 7, "kl_reduction": "mean",
               "attention_temperature": 3.0, "sigma_offset": 2.0, "sigma_parametrisation": "legacy",
               "sigma_init": 0.7, "sigma_scale_init": 0.5}
    model = build_model("resnet18", 4, "vib", **options)
    assert model.options == options
    rebuilt = build_model("resnet18", 4, "vib", **model.options)
    assert rebuilt.options == options
    assert rebuilt.attention.log_temperature.exp().item() == pytest.approx(3.0)
    maps = torch.rand(2, 512, 2, 2)
    _, sigma = rebuilt.posterior(maps)  # legacy at the start: softplus(0 - sigma_offset)
    torch.testing.assert_close(sigma, torch.full_like(sigma, math.log1p(math.exp(-2.0))))
    standardised = build_model("resnet18", 4, "vib", sigma_init=0.7, sigma_scale_init=0.5)
    torch.testing.assert_close(standardised.attention.scale, torch.full((512,), 0.5))
    torch.testing.assert_close(F.softplus(standardised.attention.bias), torch.full((512,), 0.7))


@pytest.mark.parametrize(("options", "message"), [
    ({"samples": 0}, "samples and eval_samples must be >= 1, got 0 and 12"),
    ({"eval_samples": 0}, "samples and eval_samples must be >= 1, got 1 and 0"),
    ({"eval_mode": "median"}, "unknown eval_mode 'median'; choose one of mu, mean_softmax"),
    ({"kl_reduction": "max"}, "unknown kl_reduction 'max'; choose one of sum, mean"),
    ({"attention_temperature": 0.0}, "attention_temperature must be > 0, got 0.0"),
    ({"attention_temperature": -1.0}, "attention_temperature must be > 0, got -1.0"),
    ({"sigma_parametrisation": "nope"}, "unknown sigma_parametrisation 'nope'; choose one of standardised, legacy"),
    ({"sigma_init": 0.0}, "sigma_init must be > 0, got 0.0"),
])
def test_each_bad_vib_option_is_refused_with_its_message(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        identity_vib(**options)


def test_the_smallest_valid_options_are_accepted() -> None:
    model = identity_vib(samples=1, eval_samples=1, eval_mode="mean_softmax", attention_temperature=0.5)
    assert model.attention.log_temperature.exp().item() == pytest.approx(0.5)
    assert model.eval().predict(torch.randn(2, 6, 3, 3)).probs.shape == (2, 4)


def hand_context(maps: torch.Tensor, temperature: float) -> torch.Tensor:
    """ctx = softmax(t Xc Xc^T) mu with Xc as in docs/model.md, written out with plain torch."""
    x = maps.flatten(2)
    centred = x - x.mean(2, keepdim=True)
    xc = centred / centred.norm(dim=2, keepdim=True).clamp_min(1e-6)
    attention = torch.softmax(temperature * xc @ xc.transpose(1, 2), -1)
    return (attention @ x.mean(2).unsqueeze(2)).squeeze(2)


def test_legacy_sigma_is_softplus_of_scale_times_context_plus_bias_minus_offset() -> None:
    """Old checkpoints keep their formula once scale and bias have been trained away from 0."""
    torch.manual_seed(0)
    model = identity_vib(sigma_parametrisation="legacy", sigma_offset=2.0, attention_temperature=4.0)
    with torch.no_grad():
        model.attention.scale.copy_(torch.linspace(0.5, 2.0, 6))
        model.attention.bias.copy_(torch.linspace(-1.0, 3.0, 6))
    maps = torch.randn(3, 6, 4, 4) + 2.0
    _, sigma = model.posterior(maps)
    expected = F.softplus(model.attention.scale * hand_context(maps, 4.0) + model.attention.bias - 2.0)
    torch.testing.assert_close(sigma, expected, rtol=1e-5, atol=1e-6)


def test_channels_are_standardised_as_documented_at_any_scale() -> None:
    """Xc = (X - mean) / max(||X - mean||, 1e-6): zero mean and unit norm for small activations too;
    a channel constant up to float noise (spread < 1e-6) stays ~0 instead of becoming a full channel."""
    torch.manual_seed(0)
    maps = torch.randn(2, 6, 4, 4) * 0.01  # norms ~0.04, far below 1
    maps[:, 5] = 3.0 + 0.0 * maps[:, 5]
    maps[:, 4] = torch.randn(2, 4, 4) * 1e-9  # spread ~4e-9
    xc = identity_vib().attention.standardised(maps)
    torch.testing.assert_close(xc.mean(2), torch.zeros(2, 6), rtol=0, atol=1e-6)
    torch.testing.assert_close(xc[:, :4].norm(dim=2), torch.ones(2, 4))
    assert xc[:, 5].abs().max() == 0.0 and xc[:, 4].norm(dim=1).max() < 1e-2
    centred = maps.flatten(2) - maps.flatten(2).mean(2, keepdim=True)
    torch.testing.assert_close(xc, centred / centred.norm(dim=2, keepdim=True).clamp_min(1e-6))


def test_all_zero_feature_maps_give_sigma_init_not_nan() -> None:
    """Dead layer-4 activations: the context is 0 everywhere, u = 0, sigma = softplus(bias) = sigma_init."""
    model = identity_vib(sigma_init=0.7)
    mu, sigma = model.posterior(torch.zeros(2, 6, 3, 3))
    torch.testing.assert_close(sigma, torch.full((2, 6), 0.7))
    assert torch.isfinite(model.kl(mu, sigma)).all()
