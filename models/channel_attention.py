"""The attended context `c = softmax(t Xc Xc^T) mu` of the VIB head, in the fastest exact-enough form.

Two kernels, chosen at run time by `context_kernel`:

- `sdpa` (fp32): `scaled_dot_product_attention` with queries = keys = the standardised channels and
  values = mu (zero-padded to N columns, which its fused CPU kernel needs). It never stores the
  B x C x C attention and is the reference: fp32 all the way. Used on GPUs and on CPUs without
  native bf16, where it was measured fastest (docs/benchmarks.md).
- `bf16-backward`: on CPUs with native bf16 (AVX-512-BF16/AMX) the fused kernel's backward costs
  2.9x its forward (it recomputes the energies and runs five 16-column GEMMs over the 2048 x 2048
  matrix). Here the forward computes, row strip by row strip (each strip stays in cache), the
  unnormalised weights S_ij = exp(E_ij - t) in fp32 and keeps S in bf16 (2 bytes x C^2 per image:
  8 MiB for ResNet-50). The rows of E = t Xc Xc^T peak at E_ii = t (unit-norm channels), so the fixed
  shift t does softmax's max-subtraction without a pass for the maximum, and S is symmetric; the
  exponentials are exp2 of energies taken in log2 units (exp2 is ~3x faster than exp on a CPU, and
  the shift rides in the GEMM as an extra column). Row sums r_i and S mu are fp32, so the forward
  (c = S mu / r, hence sigma and the KL) is fp32-exact. With A = S / r and S symmetric, the backward
  is a single batched bf16 GEMM over S, with no exponentials:

      A (mu' * X), A X                     (rows: the query side)       = (S [mu' * X, X]) / r
      A^T (g * X), A^T (g * c' * X), A^T g (columns: the key side, dmu) = S ([g * X, g * c' * X, g] / r)
      dX = t (dE X + dE^T X) from those,  d log t = sum_i g_i dc_i/dlog t (taken in the forward)

  with dE = A * g_i (mu_j - c_i) the gradient of the energies, and mu' = mu - m, c' = c - m for the
  per-image mean m of mu (rows of A sum to 1, so the centring changes nothing exactly, but it keeps
  the bf16 products small where they are subtracted). The two products that are subtracted are
  dominated by each channel's weight on itself, S_ii, so S is stored with a zero diagonal and S_ii
  is added back in fp32: without that, rounding both products to bf16 cost up to 4 % of the largest
  gradient at t = 20; with it, < 1 %. Gradients carry bf16 rounding
  (tests/models/test_models_attention.py states the bound). Above t = MAX_TEMPERATURE a dead
  channel's weights exp(-t) near fp32's underflow, so training falls back to `sdpa` there.
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
BLOCK_ELEMENTS = 1 << 19  # rows per strip: 2 MiB of fp32 energies at full width (256 rows for C = 2048)
LOG2_E = 1.4426950408889634  # exp2 is ~3x faster than exp on CPUs (measured), so energies are in log2 units
MAX_TEMPERATURE = 60.0  # above it exp(-t) of a dead channel's row nears fp32's underflow: use sdpa
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
    too_hot = kernel == "bf16-backward" and float(log_temperature.detach().exp()) > MAX_TEMPERATURE
    if kernel == "sdpa" or (kernel in KERNELS and (not wants_grad or too_hot)):
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
    """fp32 forward that keeps S in bf16; the backward is one bf16 GEMM over S (module docstring)."""

    @staticmethod
    def forward(ctx, x: Tensor, mu: Tensor, log_temperature: Tensor) -> Tensor:  # noqa: ANN001
        batch, channels, _ = x.shape
        temperature = log_temperature.detach().exp()
        scale = temperature * LOG2_E
        # log2 S = scale * (x_i . x_j - 1): one GEMM with a constant column appended (K = n + 1)
        queries = torch.cat([x * scale, (-scale).expand(batch, channels, 1)], 2)
        keys = torch.cat([x, x.new_ones(batch, channels, 1)], 2).transpose(1, 2).contiguous()
        storage = _attention_buffer((batch, channels, channels), x.device)
        weakref.finalize(ctx, _return_buffer, storage)
        row_sum, weighted = x.new_zeros(batch, channels), x.new_zeros(batch, channels)
        temperature_grad = ctx.needs_input_grad[2]
        # d c_i / d log t = sum_j A_ij E_ij mu_j - c_i sum_j A_ij E_ij: much cancellation, so it is
        # taken here in fp32 (bf16 products in the backward were 5-13 % off on real maps). The shift
        # of E (its constant column) cancels out of it, so log2 S stands in for E up to the factor.
        energy_mu, energy_sum = x.new_zeros(batch, channels), x.new_zeros(batch, channels)
        strips = _row_blocks(channels)
        log2_buffer = torch.empty(strips[0].stop * channels, device=x.device)
        exp_buffer = torch.empty_like(log2_buffer)
        for image in range(batch):
            for rows in strips:
                size = rows.stop - rows.start
                log2_s = log2_buffer[:size * channels].view(size, channels)
                s = exp_buffer[:size * channels].view(size, channels)
                torch.mm(queries[image, rows], keys[image], out=log2_s)
                torch.exp2(log2_s, out=s)
                torch.sum(s, 1, out=row_sum[image, rows])
                torch.mv(s, mu[image], out=weighted[image, rows])
                if temperature_grad:
                    product = log2_s.mul_(s)
                    torch.sum(product, 1, out=energy_sum[image, rows])
                    torch.mv(product, mu[image], out=energy_mu[image, rows])
                storage[image, rows] = s
        diagonal = torch.exp2(scale * (x.square().sum(2) - 1))  # S_ii, kept in fp32 (see the docstring)
        storage.diagonal(dim1=1, dim2=2).zero_()
        context = weighted / row_sum
        context_by_log_temperature = None
        if temperature_grad:
            context_by_log_temperature = (energy_mu - context * energy_sum) / (row_sum * LOG2_E)
        ctx.save_for_backward(x, mu, context, storage, diagonal, row_sum, context_by_log_temperature)
        ctx.temperature = temperature
        return context

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, Tensor]:  # noqa: ANN001
        x, mu, context, storage, diagonal, row_sum, context_by_log_temperature = ctx.saved_tensors
        temperature = ctx.temperature
        n = x.shape[2]
        # (B x columns x C) layout throughout: the GEMM writes it, and the elementwise work stays contiguous
        grad = grad.float()[:, None]
        centre = mu.mean(1, keepdim=True)
        mu_c, context_c = (mu - centre)[:, None], (context - centre)[:, None]
        x_t = x.transpose(1, 2)
        x_c = x_t - x_t.mean(2, keepdim=True)
        columns = torch.cat([mu_c * x_c, x_c, grad * x_t, (grad * context_c) * x_t, grad], 1)
        columns[:, 2 * n:] /= row_sum[:, None]
        # A = S / rowsum with S symmetric, so A @ left and A^T @ right are one product with S: off the
        # diagonal in bf16, each channel's own weight S_ii added in fp32 (see the module docstring)
        product = torch.bmm(columns.to(torch.bfloat16), storage).float().addcmul_(diagonal[:, None], columns)
        by_rows, by_columns = product[:, :2 * n].div_(row_sum[:, None]), product[:, 2 * n:]
        query_side = grad * (by_rows[:, :n] - context_c * by_rows[:, n:])
        key_side = mu_c * by_columns[:, :n] - by_columns[:, n:2 * n]
        grad_x = (temperature * (query_side + key_side)).transpose(1, 2)
        grad = grad[:, 0]
        grad_log_temperature = None
        if context_by_log_temperature is not None:
            grad_log_temperature = (grad * context_by_log_temperature).sum().reshape(temperature.shape)
        return grad_x, by_columns[:, 2 * n], grad_log_temperature

