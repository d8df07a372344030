"""The attention context kernels against an independent float64 reference (softmax, then a product).

`bf16-backward` (used for training on CPUs with native bf16) must give the fp32 forward and gradients
within a stated bound on every CPU (bf16 is emulated where it is not native: slower, same numbers):

- forward (the context, hence sigma and the KL): fp32-exact, rtol 1e-5;
- gradients of the feature maps and of mu: max error <= 2 % of the largest gradient on these maps
  (bf16 rounding: on 40 random-init ResNet-18 layer-4 batches at t = 5 and 20 the feature-map
  gradient was off by a median 0.75 %, 90th percentile 1.4 %, worst 2.3 % (one batch) of its largest
  value; mu's <= 0.4 %);
- gradient of the log-temperature: <= 2e-4 relative (taken in fp32 in the forward; measured <= 1.5e-4
  at t = 5 to 40).
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import models.channel_attention as channel_attention
from models import build_model
from models.channel_attention import attended_context, context_kernel

GRADIENT_TOLERANCE = 0.02
TEMPERATURE_GRADIENT_TOLERANCE = 2e-4


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


@pytest.mark.parametrize("temperature", [5.0, 20.0])
@pytest.mark.parametrize("kernel", ["sdpa", "bf16-backward"])
def test_kernel_matches_the_float64_reference(kernel: str, temperature: float, monkeypatch) -> None:
    # several row blocks, the last one short, as for ResNet-50's 2048 channels
    monkeypatch.setattr(channel_attention, "BLOCK_ELEMENTS", 300 * 128)
    x, mu = layer4_like(3, 300, 16, seed=int(temperature))
    log_temperature = torch.tensor(math.log(temperature))
    weights = torch.randn(3, 300, generator=torch.Generator().manual_seed(1))
    context, (grad_x, grad_mu, grad_t) = value_and_gradients(kernel, x, mu, log_temperature, weights)
    ref_context, (ref_x, ref_mu, ref_t) = value_and_gradients(None, x, mu, log_temperature, weights)

    torch.testing.assert_close(context, ref_context, rtol=1e-5, atol=1e-6)
    tolerance = 1e-4 if kernel == "sdpa" else GRADIENT_TOLERANCE
    assert float((grad_x - ref_x).abs().max()) <= tolerance * float(ref_x.abs().max())
    assert float((grad_mu - ref_mu).abs().max()) <= tolerance * float(ref_mu.abs().max())
    assert abs(float(grad_t - ref_t)) <= TEMPERATURE_GRADIENT_TOLERANCE * abs(float(ref_t))


def test_bf16_backward_is_not_the_reference_in_disguise() -> None:
    """The bound above is met by a bf16 computation, not by an fp32 one: the gradients differ."""
    x, mu = layer4_like(2, 256, 16, seed=3)
    log_temperature = torch.tensor(math.log(5.0))
    weights = torch.randn(2, 256, generator=torch.Generator().manual_seed(2))
    _, fast = value_and_gradients("bf16-backward", x, mu, log_temperature, weights)
    _, exact = value_and_gradients("sdpa", x, mu, log_temperature, weights)
    assert float((fast[0] - exact[0]).abs().max()) > 1e-4 * float(exact[0].abs().max())


def test_model_context_uses_the_chosen_kernel(monkeypatch) -> None:
    """Through ChannelAttentionSigma.context on real layer-4 maps: same context, gradients within bound."""
    torch.manual_seed(0)
    model = build_model("resnet18", 5, "vib").train()
    images = torch.randn(2, 3, 64, 64)
    weights = torch.randn(2, 512)
    results = {}
    for kernel in ("sdpa", "bf16-backward"):
        monkeypatch.setenv(channel_attention.KERNEL_ENV, kernel)
        assert context_kernel(torch.device("cpu")) == kernel
        model.zero_grad(set_to_none=True)
        maps = model.features(images)
        context = model.attention.context(maps, maps.mean((2, 3)))
        (context * weights).sum().backward()
        results[kernel] = (context.detach(), model.attention.log_temperature.grad.clone(),
                           model.features[-1][-1].conv2.weight.grad.clone())
    (exact_context, *exact), (fast_context, *fast) = results["sdpa"], results["bf16-backward"]
    torch.testing.assert_close(fast_context, exact_context, rtol=1e-5, atol=1e-6)
    (exact_t, exact_conv), (fast_t, fast_conv) = exact, fast
    assert abs(float(fast_t - exact_t)) <= TEMPERATURE_GRADIENT_TOLERANCE * abs(float(exact_t))
    assert float((fast_conv - exact_conv).abs().max()) <= GRADIENT_TOLERANCE * float(exact_conv.abs().max())


def test_kernel_choice_follows_the_cpu_and_the_override(monkeypatch) -> None:
    monkeypatch.delenv(channel_attention.KERNEL_ENV, raising=False)
    monkeypatch.setattr(channel_attention, "_native_bf16", lambda: True)
    assert context_kernel(torch.device("cpu")) == "bf16-backward"
    assert context_kernel(torch.device("meta")) == "sdpa"  # GPUs and other devices keep the fused kernel
    monkeypatch.setattr(channel_attention, "_native_bf16", lambda: False)
    assert context_kernel(torch.device("cpu")) == "sdpa"
    monkeypatch.setenv(channel_attention.KERNEL_ENV, "bf16-backward")
    assert context_kernel(torch.device("cpu")) == "bf16-backward"
    monkeypatch.setenv(channel_attention.KERNEL_ENV, "fast")
    with pytest.raises(ValueError, match="VIBCAM_ATTENTION_KERNEL='fast'"):
        context_kernel(torch.device("cpu"))


def test_without_gradients_no_attention_matrix_is_stored(monkeypatch) -> None:
    """predict() and evaluation run under no_grad: the fused fp32 kernel, nothing kept for a backward."""
    calls = []
    monkeypatch.setattr(channel_attention._Bf16BackwardContext, "apply", lambda *a: calls.append(a))
    x, mu = layer4_like(2, 64, 16, seed=0)
    with torch.no_grad():
        context = attended_context(x, mu, torch.tensor(1.0, requires_grad=True), "bf16-backward")
    assert calls == [] and context.shape == (2, 64)


def test_above_the_maximum_temperature_training_falls_back_to_the_fp32_kernel(monkeypatch) -> None:
    """exp(-t) of a dead channel's row would near fp32's underflow: the exact kernel takes over."""
    calls = []
    original = channel_attention._Bf16BackwardContext.apply
    monkeypatch.setattr(channel_attention._Bf16BackwardContext, "apply", lambda *a: calls.append(a) or original(*a))
    x, mu = layer4_like(2, 64, 16, seed=4)
    weights = torch.randn(2, 64, generator=torch.Generator().manual_seed(3))
    hot = torch.tensor(math.log(channel_attention.MAX_TEMPERATURE * 1.5))
    context, gradients = value_and_gradients("bf16-backward", x, mu, hot, weights)
    assert calls == []
    _, reference = value_and_gradients(None, x, mu, hot, weights)
    assert float((gradients[0] - reference[0]).abs().max()) <= 1e-4 * float(reference[0].abs().max())
    value_and_gradients("bf16-backward", x, mu, torch.tensor(math.log(5.0)), weights)
    assert len(calls) == 1  # below it, the bf16 kernel


def test_attention_buffers_are_reused_only_once_released() -> None:
    """The B x C x C buffer goes back to the spare list when its graph dies, never while in use."""
    x, mu = layer4_like(2, 64, 16, seed=0)
    log_temperature = torch.tensor(1.0, requires_grad=True)
    channel_attention._spare_attention.clear()
    first = attended_context(x, mu, log_temperature, "bf16-backward")
    second = attended_context(x, mu, log_temperature, "bf16-backward")
    held = [first.grad_fn.saved_tensors[3].data_ptr(), second.grad_fn.saved_tensors[3].data_ptr()]
    assert held[0] != held[1]  # both graphs alive: two buffers
    del first
    assert [b.data_ptr() for b in channel_attention._spare_attention] == [held[0]]
    third = attended_context(x, mu, log_temperature, "bf16-backward")
    assert third.grad_fn.saved_tensors[3].data_ptr() == held[0]  # reused
    third.sum().backward()
    second.sum().backward()
    torch.testing.assert_close(third.detach(), second.detach())
