"""The attention context kernels against an independent float64 reference (softmax, then a product).

Both kernels are fp32 and must match the reference within fp32 rounding:

- forward (the context, hence sigma and the KL): rtol 1e-5;
- gradients of the feature maps and of mu: max error <= 1e-4 of the largest gradient (measured on
  layer-4-like and random-init ResNet-18 maps at t = 5 to 40: <= 3e-5 for `stored`, <= 8e-6 for `sdpa`);
- gradient of the log-temperature, a sum with much cancellation: <= 2e-4 relative at t <= 20 and
  2e-3 at t = 40 on these maps (measured on 2048-channel maps at t = 5 to 40: `stored` <= 4e-4,
  PyTorch's own fused fp32 `sdpa` <= 7e-4; float64 accumulation of the last sum barely helps: the
  rounding is in the fp32 gradient it sums).
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import models.channel_attention as channel_attention
from models import build_model
from models.channel_attention import attended_context, context_kernel

GRADIENT_TOLERANCE = 1e-4
TEMPERATURE_GRADIENT_TOLERANCE = 2e-4
# at t = 40 the cancellation is worse for both: on this test's maps sdpa is 1.3e-3 off, stored 6e-4
HOT_TEMPERATURE_GRADIENT_TOLERANCE = 2e-3


def reference_context(x: torch.Tensor, mu: torch.Tensor, log_temperature: torch.Tensor) -> torch.Tensor:
    """softmax(t x x^T) mu in float64, built the plain way."""
    x64 = x.double()
    attention = torch.softmax(log_temperature.double().exp() * x64 @ x64.transpose(1, 2), -1)
    return (attention @ mu.double()[..., None])[..., 0]


def layer4_like(batch: int, channels: int, positions: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Standardised channels and mu of post-ReLU maps, with a few dead (constant) channels."""
    generator = torch.Generator().manual_seed(seed)
    maps = torch.relu(torch.randn(batch, channels, positions, generator=generator)) * 3
    maps[:, :5] = 0.0  # dead channels standardise to zero and attend uniformly
    x = F.normalize(maps - maps.mean(2, keepdim=True), dim=2, eps=1e-6)
    return x, maps.mean(2)


def value_and_gradients(kernel: str | None, x, mu, log_temperature, weights):  # noqa: ANN001, ANN201
    x, mu = x.clone().requires_grad_(True), mu.clone().requires_grad_(True)
    log_temperature = log_temperature.clone().requires_grad_(True)
    if kernel is None:
        context = reference_context(x, mu, log_temperature)
    else:
        context = attended_context(x, mu, log_temperature, kernel)
    gradients = torch.autograd.grad((context * weights).sum(), [x, mu, log_temperature])
    return context.detach().double(), [g.double() for g in gradients]


@pytest.mark.parametrize("temperature", [5.0, 20.0, 40.0])
@pytest.mark.parametrize("kernel", ["sdpa", "stored"])
def test_kernel_matches_the_float64_reference(kernel: str, temperature: float, monkeypatch) -> None:
    # several row blocks, the last one short, as for ResNet-50's 2048 channels
    monkeypatch.setattr(channel_attention, "BLOCK_ELEMENTS", 300 * 128)
    x, mu = layer4_like(3, 300, 16, seed=int(temperature))
    log_temperature = torch.tensor(math.log(temperature))
    weights = torch.randn(3, 300, generator=torch.Generator().manual_seed(1))
    context, (grad_x, grad_mu, grad_t) = value_and_gradients(kernel, x, mu, log_temperature, weights)
    ref_context, (ref_x, ref_mu, ref_t) = value_and_gradients(None, x, mu, log_temperature, weights)

    torch.testing.assert_close(context, ref_context, rtol=1e-5, atol=1e-6)
    assert float((grad_x - ref_x).abs().max()) <= GRADIENT_TOLERANCE * float(ref_x.abs().max())
    assert float((grad_mu - ref_mu).abs().max()) <= GRADIENT_TOLERANCE * float(ref_mu.abs().max())
    bound = TEMPERATURE_GRADIENT_TOLERANCE if temperature <= 20 else HOT_TEMPERATURE_GRADIENT_TOLERANCE
    assert abs(float(grad_t - ref_t)) <= bound * abs(float(ref_t))


def test_stored_kernel_is_not_the_fused_one_in_disguise(monkeypatch) -> None:
    """Training with `stored` never calls PyTorch's fused attention, and still matches the reference."""
    def refuse(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("scaled_dot_product_attention called")

    monkeypatch.setattr(channel_attention.F, "scaled_dot_product_attention", refuse)
    x, mu = layer4_like(2, 256, 16, seed=3)
    log_temperature = torch.tensor(math.log(5.0))
    weights = torch.randn(2, 256, generator=torch.Generator().manual_seed(2))
    context, (grad_x, _, _) = value_and_gradients("stored", x, mu, log_temperature, weights)
    reference, (reference_x, _, _) = value_and_gradients(None, x, mu, log_temperature, weights)
    torch.testing.assert_close(context, reference, rtol=1e-5, atol=1e-6)
    assert float((grad_x - reference_x).abs().max()) <= GRADIENT_TOLERANCE * float(reference_x.abs().max())


def test_model_context_uses_the_chosen_kernel(monkeypatch) -> None:
    """Through ChannelAttentionSigma.context on real layer-4 maps: same context, gradients within bound."""
    torch.manual_seed(0)
    model = build_model("resnet18", 5, "vib").train()
    images = torch.randn(2, 3, 64, 64)
    weights = torch.randn(2, 512)
    results = {}
    for kernel in ("sdpa", "stored"):
        monkeypatch.setenv(channel_attention.KERNEL_ENV, kernel)
        assert context_kernel(torch.device("cpu")) == kernel
        model.zero_grad(set_to_none=True)
        maps = model.features(images)
        context = model.attention.context(maps, maps.mean((2, 3)))
        (context * weights).sum().backward()
        results[kernel] = (context.detach(), model.attention.log_temperature.grad.clone(),
                           model.features[-1][-1].conv2.weight.grad.clone())
    (exact_context, *exact), (fast_context, *fast) = results["sdpa"], results["stored"]
    torch.testing.assert_close(fast_context, exact_context, rtol=1e-5, atol=1e-6)
    (exact_t, exact_conv), (fast_t, fast_conv) = exact, fast
    assert abs(float(fast_t - exact_t)) <= TEMPERATURE_GRADIENT_TOLERANCE * abs(float(exact_t))
    assert float((fast_conv - exact_conv).abs().max()) <= GRADIENT_TOLERANCE * float(exact_conv.abs().max())


def test_kernel_choice_follows_the_cpu_and_the_override(monkeypatch) -> None:
    monkeypatch.delenv(channel_attention.KERNEL_ENV, raising=False)
    assert context_kernel(torch.device("cpu")) == "stored"  # every CPU, with or without native bf16
    assert context_kernel(torch.device("meta")) == "sdpa"  # GPUs and other devices keep the fused kernel
    monkeypatch.setenv(channel_attention.KERNEL_ENV, "sdpa")
    assert context_kernel(torch.device("cpu")) == "sdpa"
    monkeypatch.setenv(channel_attention.KERNEL_ENV, "stored")
    assert context_kernel(torch.device("meta")) == "stored"
    monkeypatch.setenv(channel_attention.KERNEL_ENV, "fast")
    with pytest.raises(ValueError, match="VIBCAM_ATTENTION_KERNEL='fast'"):
        context_kernel(torch.device("cpu"))


def test_without_gradients_no_attention_matrix_is_stored(monkeypatch) -> None:
    """predict() and evaluation run under no_grad: the fused fp32 kernel, nothing kept for a backward."""
    calls = []
    monkeypatch.setattr(channel_attention._StoredContext, "apply", lambda *a: calls.append(a))
    x, mu = layer4_like(2, 64, 16, seed=0)
    with torch.no_grad():
        context = attended_context(x, mu, torch.tensor(1.0, requires_grad=True), "stored")
    assert calls == [] and context.shape == (2, 64)


def test_above_the_maximum_temperature_training_falls_back_to_the_fp32_kernel(monkeypatch) -> None:
    """exp(-t) of a dead channel's row would near fp32's underflow: the fused kernel takes over."""
    calls = []
    original = channel_attention._StoredContext.apply
    monkeypatch.setattr(channel_attention._StoredContext, "apply", lambda *a: calls.append(a) or original(*a))
    x, mu = layer4_like(2, 64, 16, seed=4)
    weights = torch.randn(2, 64, generator=torch.Generator().manual_seed(3))
    hot = torch.tensor(math.log(channel_attention.MAX_TEMPERATURE * 1.5))
    _, gradients = value_and_gradients("stored", x, mu, hot, weights)
    assert calls == []
    _, reference = value_and_gradients(None, x, mu, hot, weights)
    grad_x, reference_x = gradients[0], reference[0]
    assert float((grad_x - reference_x).abs().max()) <= GRADIENT_TOLERANCE * float(reference_x.abs().max())
    value_and_gradients("stored", x, mu, torch.tensor(math.log(5.0)), weights)
    assert len(calls) == 1  # below it, the stored kernel


def test_a_batch_too_large_to_store_falls_back_to_the_fused_kernel(monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(channel_attention._StoredContext, "apply", lambda *a: calls.append(a))
    monkeypatch.setattr(channel_attention, "MAX_STORED_BYTES", 2 * 64 * 64 * 4 - 1)
    x, mu = layer4_like(2, 64, 16, seed=0)
    context = attended_context(x.requires_grad_(True), mu, torch.tensor(1.0), "stored")
    assert calls == [] and context.requires_grad
    attended_context(x[:1], mu[:1], torch.tensor(1.0), "stored")
    assert len(calls) == 1


def test_attention_buffers_are_reused_only_once_released() -> None:
    """The B x C x C buffer goes back to the spare list when its graph dies, never while in use."""
    x, mu = layer4_like(2, 64, 16, seed=0)
    log_temperature = torch.tensor(1.0, requires_grad=True)
    channel_attention._spare_attention.clear()
    first = attended_context(x, mu, log_temperature, "stored")
    second = attended_context(x, mu, log_temperature, "stored")
    held = [first.grad_fn.saved_tensors[3].data_ptr(), second.grad_fn.saved_tensors[3].data_ptr()]
    assert held[0] != held[1]  # both graphs alive: two buffers
    del first
    assert [b.data_ptr() for b in channel_attention._spare_attention] == [held[0]]
    third = attended_context(x, mu, log_temperature, "stored")
    assert third.grad_fn.saved_tensors[3].data_ptr() == held[0]  # reused
    third.sum().backward()
    second.sum().backward()
    torch.testing.assert_close(third.detach(), second.detach())
