"""The attended context `c = softmax(t Xc Xc^T) mu` of the VIB head, in the fastest exact-enough form.

Two kernels, chosen at run time by `context_kernel`:

- `sdpa` (fp32): `scaled_dot_product_attention` with queries = keys = the standardised channels and
  values = mu (zero-padded to N columns, which its fused CPU kernel needs). It never stores the
  B x C x C attention and is the reference: fp32 all the way. Used on GPUs and on CPUs without
  native bf16, where it was measured fastest (docs/benchmarks.md).
- `bf16-backward`: on CPUs with native bf16 (AVX-512-BF16/AMX) the fused kernel's backward costs
  2.9x its forward (it recomputes the energies and runs five 16-column GEMMs over the 2048 x 2048
  matrix). Here the forward computes the softmax in fp32 row block by row block (each block stays in
  cache), takes `A mu` in fp32, and keeps A in bf16 (2 bytes x C^2 per image: 8 MiB for ResNet-50).
  The backward is then two batched bf16 GEMMs over A and no exponentials:

      dE X   = g * (A (mu' * X)) - g * c' * (A X)          (rows: the query side)
      dE^T X = mu' * (A^T (g * X)) - A^T (g * c' * X)      (columns: the key side)
      dX = t (dE X + dE^T X),  dmu = A^T g,  d log t = sum_i g_i dc_i/dlog t (taken in the forward)

  with dE = A * g_i (mu_j - c_i) the gradient of the energies, and mu' = mu - m, c' = c - m for the
  per-image mean m of mu (rows of A sum to 1, so the centring changes nothing exactly, but it keeps
  the bf16 products small where they are subtracted). The two products that are subtracted are
  dominated by each channel's weight on itself, A_ii, so A is stored with a zero diagonal and A_ii
  is added back in fp32: without that, rounding both products to bf16 cost up to 4 % of the largest
  gradient at t = 20; with it, < 1 %. Forward values (c, hence sigma and the KL) are fp32-exact;
  gradients carry bf16 rounding (tests/models/test_models_attention.py states the bound).
"""
from __future__ import annotations

import functools
import os
import weakref

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from models.precision import cpu_has_native_bf16

KERNELS = ("sdpa", "bf16-backward")
KERNEL_ENV = "VIBCAM_ATTENTION_KERNEL"
BLOCK_ELEMENTS = 1 << 19  # 2 MiB of fp32 energies per row block (fastest of 1, 2, 4 MiB, measured)
SPARE_BUFFERS = 1  # with the one in use, two in all: a step overlaps the previous step's graph
_spare_attention: list[Tensor] = []


@functools.cache
def _native_bf16() -> bool:
    return cpu_has_native_bf16()


def context_kernel(device: torch.device) -> str:
    """`bf16-backward` on CPUs with native bf16, else `sdpa`; VIBCAM_ATTENTION_KERNEL=sdpa forces fp32.

    Only where gradients are wanted: `attended_context` runs `sdpa` under no_grad whatever this says,
    since without a backward there is nothing to gain from storing A."""
    forced = os.environ.get(KERNEL_ENV, "")
    if forced:
        if forced not in KERNELS:
            raise ValueError(f"{KERNEL_ENV}={forced!r}: choose one of {', '.join(KERNELS)} (or unset it)")
        return forced
    return "bf16-backward" if device.type == "cpu" and _native_bf16() else "sdpa"


def attended_context(x: Tensor, mu: Tensor, log_temperature: Tensor, kernel: str | None = None) -> Tensor:
    """softmax(exp(log_temperature) x x^T) mu for standardised channels x (B x C x N), mu (B x C); fp32."""
    kernel = kernel or context_kernel(x.device)
    # channels_last maps (bf16 runs) flatten to channels with stride 1: the fused kernel would fall
    # back to its unfused path (0.58 s instead of 0.16 s for the branch at batch 8, measured)
    x = x.float().contiguous()
    inputs_need_grad = x.requires_grad or mu.requires_grad or log_temperature.requires_grad
    wants_grad = torch.is_grad_enabled() and inputs_need_grad
    if kernel == "sdpa" or (kernel in KERNELS and not wants_grad):
        return sdpa_context(x, mu, log_temperature)
    if kernel == "bf16-backward":
        return _Bf16BackwardContext.apply(x, mu.float(), log_temperature)
    raise ValueError(f"unknown attention kernel {kernel!r}; choose one of {', '.join(KERNELS)}")


def sdpa_context(x: Tensor, mu: Tensor, log_temperature: Tensor) -> Tensor:
    """The fp32 reference: fused attention that never builds the B x C x C matrix."""
    queries = x.float().contiguous().unsqueeze(1)
    values = F.pad(mu.float()[:, None, :, None], (0, queries.shape[-1] - 1))
    context = F.scaled_dot_product_attention(queries * log_temperature.exp(), queries, values, scale=1.0)
    return context[:, 0, :, 0]


def _attention_buffer(shape: tuple[int, ...], device: torch.device) -> Tensor:
    """A B x C x C bf16 buffer, reused between steps: first touching a fresh 64 MiB one cost ~75 ms of
    page faults (loaded machine), as much as the whole backward. Buffers come back to the spare list
    only when the autograd node that saved them is freed, so one is never reused while held."""
    for index, spare in enumerate(_spare_attention):
        if spare.shape == shape and spare.device == device:
            return _spare_attention.pop(index)
    return torch.empty(shape, dtype=torch.bfloat16, device=device)


def _return_buffer(buffer: Tensor) -> None:
    _spare_attention.append(buffer)
    del _spare_attention[:-SPARE_BUFFERS]


def _row_blocks(channels: int) -> list[slice]:
    rows = max(1, BLOCK_ELEMENTS // channels)
    return [slice(start, min(start + rows, channels)) for start in range(0, channels, rows)]


class _Bf16BackwardContext(torch.autograd.Function):
    """fp32 forward that keeps A in bf16; the backward is two bf16 GEMMs over A (module docstring)."""

    @staticmethod
    def forward(ctx, x: Tensor, mu: Tensor, log_temperature: Tensor) -> Tensor:  # noqa: ANN001
        batch, channels, _ = x.shape
        temperature = log_temperature.detach().exp()
        queries, keys = x * temperature, x.transpose(1, 2).contiguous()
        attention = _attention_buffer((batch, channels, channels), x.device)
        weakref.finalize(ctx, _return_buffer, attention)
        context = torch.empty(batch, channels, device=x.device)
        diagonal = torch.empty(batch, channels, device=x.device)
        # d c_i / d log t = sum_j A_ij E_ij mu_j - c_i sum_j A_ij E_ij: a sum with much cancellation,
        # so it is taken here in fp32 (bf16 products in the backward were 5-13 % off on real maps)
        weighted_mu, weighted_energy = torch.empty_like(context), torch.empty_like(context)
        temperature_grad = ctx.needs_input_grad[2]
        blocks = _row_blocks(channels)
        energies = torch.empty(blocks[0].stop, channels, device=x.device)  # reused: no page faults
        probabilities = torch.empty_like(energies)
        for image in range(batch):
            for rows in blocks:
                size = rows.stop - rows.start
                torch.mm(queries[image, rows], keys[image], out=energies[:size])
                torch.ops.aten._softmax.out(energies[:size], -1, False, out=probabilities[:size])
                torch.mv(probabilities[:size], mu[image], out=context[image, rows])
                attention[image, rows] = probabilities[:size]
                diagonal[image, rows] = probabilities[:size].diagonal(offset=rows.start)
                if temperature_grad:
                    weighted = energies[:size].mul_(probabilities[:size])
                    torch.mv(weighted, mu[image], out=weighted_mu[image, rows])
                    torch.sum(weighted, 1, out=weighted_energy[image, rows])
        attention.diagonal(dim1=1, dim2=2).zero_()  # each channel's own weight lives in `diagonal` (fp32)
        context_by_log_temperature = weighted_mu - context * weighted_energy if temperature_grad else None
        ctx.save_for_backward(x, mu, context, attention, diagonal, context_by_log_temperature)
        ctx.temperature = temperature
        return context

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, Tensor]:  # noqa: ANN001
        x, mu, context, attention, diagonal, context_by_log_temperature = ctx.saved_tensors
        temperature = ctx.temperature
        n = x.shape[2]
        grad = grad.float()
        centre = mu.mean(1, keepdim=True)
        mu_c, context_c = mu - centre, context - centre
        x_c = x - x.mean(1, keepdim=True)
        left = torch.cat([mu_c[..., None] * x_c, x_c], 2)
        right = torch.cat([grad[..., None] * x, (grad * context_c)[..., None] * x, grad[..., None]], 2)
        # off-diagonal part in bf16, each channel's own weight added in fp32 (see the module docstring)
        by_rows = torch.bmm(attention, left.to(torch.bfloat16)).float() + diagonal[..., None] * left
        by_columns = torch.bmm(right.to(torch.bfloat16).transpose(1, 2), attention).float().transpose(1, 2)
        by_columns += diagonal[..., None] * right
        query_side = grad[..., None] * (by_rows[..., :n] - context_c[..., None] * by_rows[..., n:])
        key_side = mu_c[..., None] * by_columns[..., :n] - by_columns[..., n:2 * n]
        grad_x = temperature * (query_side + key_side)
        grad_log_temperature = None
        if context_by_log_temperature is not None:
            grad_log_temperature = (grad * context_by_log_temperature).sum().reshape(temperature.shape)
        return grad_x, by_columns[..., 2 * n], grad_log_temperature
