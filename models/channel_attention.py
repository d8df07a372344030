"""The attended context `c = softmax(t Xc Xc^T) mu` of the VIB head, in the fastest exact form.

Two kernels, both fp32, chosen at run time by `context_kernel`:

- `sdpa`: `scaled_dot_product_attention` with queries = keys = the standardised channels and values =
  mu (zero-padded to N columns, which its fused kernel needs). It never stores the B x C x C attention.
  Used on GPUs, and for every call without gradients (`predict`, evaluation), on any device.
- `stored`: training on CPUs. PyTorch's fused CPU backward recomputes the 2048 x 2048 energies and
  their exponentials and runs five 16-column GEMMs over them (2.9x its forward). Here the forward
  computes, row strip by row strip (each strip's energies stay in cache), the unnormalised weights
  S_ij = exp(E_ij - t) and keeps them (fp32, 4 bytes x C^2 per image: 16 MiB for ResNet-50; a batch
  that would need more than MAX_STORED_BYTES uses `sdpa`), with
  their row sums r and S mu (c = S mu / r). Two properties of E = t Xc Xc^T (unit-norm channels) make
  this cheap: each row peaks on its diagonal, E_ii = t, so the fixed shift t does softmax's
  max-subtraction without a pass for the maximum (a dead channel's row is exp(-t) throughout: safe in
  fp32 up to t ~ 80, and above MAX_TEMPERATURE training falls back to `sdpa`); and S is symmetric.
  The exponentials are exp2 of energies in log2 units (exp2 is ~3x faster than exp on a CPU; the
  shift rides in the energy GEMM as a constant column). The backward needs no exponentials: with
  p = g / r and q = p * c (g the gradient of c),

      dE_ij = S_ij p_i (mu_j - c_i)                    the gradient of the energies
      dX = t (dE + dE^T) X = t (S * M) X,   M_ij = p_i mu_j + mu_i p_j - q_i - q_j
      dmu = A^T g = S p                     (S symmetric)
      d log t = sum_ij dE_ij E_ij = (1/2) sum_i x_i . dX_i

  so each strip of S * M is formed in cache (four elementwise passes) and multiplied by X in one
  16-column GEMM: a quarter of the GEMM work of the four products dE X and dE^T X would take.
  Everything is fp32; tests/models/test_models_attention.py states the bounds against float64.
"""
from __future__ import annotations

import os
import weakref

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

KERNELS = ("sdpa", "stored")
KERNEL_ENV = "VIBCAM_ATTENTION_KERNEL"
BLOCK_ELEMENTS = 1 << 19  # rows per strip: 2 MiB of fp32 energies at full width (256 rows for C = 2048)
LOG2_E = 1.4426950408889634  # exp2 is ~3x faster than exp on CPUs (measured), so energies are in log2 units
MAX_TEMPERATURE = 60.0  # above it exp(-t) of a dead channel's row nears fp32's underflow: use sdpa
MAX_STORED_BYTES = 1 << 30  # S of a larger batch (> 64 images for ResNet-50) is not kept: use sdpa
SPARE_BUFFERS = 1  # with the one in use, two in all: a step overlaps the previous step's graph
_spare_attention: list[Tensor] = []


def context_kernel(device: torch.device) -> str:
    """`stored` for training on CPUs, `sdpa` elsewhere; VIBCAM_ATTENTION_KERNEL overrides it.

    Only where gradients are wanted: `attended_context` runs `sdpa` under no_grad whatever this says,
    since without a backward there is nothing to gain from storing S."""
    forced = os.environ.get(KERNEL_ENV, "")
    if forced:
        if forced not in KERNELS:
            raise ValueError(f"{KERNEL_ENV}={forced!r}: choose one of {', '.join(KERNELS)} (or unset it)")
        return forced
    return "stored" if device.type == "cpu" else "sdpa"


def attended_context(x: Tensor, mu: Tensor, log_temperature: Tensor, kernel: str | None = None) -> Tensor:
    """softmax(exp(log_temperature) x x^T) mu for standardised channels x (B x C x N), mu (B x C); fp32."""
    kernel = kernel or context_kernel(x.device)
    # channels_last maps (bf16 runs) flatten to channels with stride 1: the fused kernel would fall
    # back to its unfused path (0.58 s instead of 0.16 s for the branch at batch 8, measured)
    x = x.float().contiguous()
    inputs_need_grad = x.requires_grad or mu.requires_grad or log_temperature.requires_grad
    wants_grad = torch.is_grad_enabled() and inputs_need_grad
    too_hot = kernel == "stored" and float(log_temperature.detach().exp()) > MAX_TEMPERATURE
    too_big = x.shape[0] * x.shape[1] ** 2 * 4 > MAX_STORED_BYTES
    if kernel == "sdpa" or (kernel in KERNELS and (not wants_grad or too_hot or too_big)):
        return sdpa_context(x, mu, log_temperature)
    if kernel == "stored":
        return _StoredContext.apply(x, mu.float(), log_temperature)
    raise ValueError(f"unknown attention kernel {kernel!r}; choose one of {', '.join(KERNELS)}")


def sdpa_context(x: Tensor, mu: Tensor, log_temperature: Tensor) -> Tensor:
    """The fp32 reference: fused attention that never builds the B x C x C matrix."""
    queries = x.float().contiguous().unsqueeze(1)
    values = F.pad(mu.float()[:, None, :, None], (0, queries.shape[-1] - 1))
    context = F.scaled_dot_product_attention(queries * log_temperature.exp(), queries, values, scale=1.0)
    return context[:, 0, :, 0]


def _attention_buffer(shape: tuple[int, ...], device: torch.device) -> Tensor:
    """A B x C x C fp32 buffer, reused between steps: first touching a fresh one (128 MiB at batch 8)
    costs tens of ms of page faults, as much as the whole backward. Buffers come back to the spare list
    only when the autograd node that saved them is freed, so one is never reused while held."""
    for index, spare in enumerate(_spare_attention):
        if spare.shape == shape and spare.device == device:
            return _spare_attention.pop(index)
    return torch.empty(shape, device=device)


def _return_buffer(buffer: Tensor) -> None:
    _spare_attention.append(buffer)
    del _spare_attention[:-SPARE_BUFFERS]


def _row_blocks(channels: int) -> list[slice]:
    rows = max(1, BLOCK_ELEMENTS // channels)
    return [slice(start, min(start + rows, channels)) for start in range(0, channels, rows)]


class _StoredContext(torch.autograd.Function):
    """fp32 forward that keeps S = exp(E - t); the backward forms S * M strip by strip and runs one
    N-column GEMM per strip (module docstring)."""

    @staticmethod
    def forward(ctx, x: Tensor, mu: Tensor, log_temperature: Tensor) -> Tensor:  # noqa: ANN001
        batch, channels, _ = x.shape
        temperature = log_temperature.detach().exp()
        scale = temperature * LOG2_E
        queries = torch.cat([x * scale, (-scale).expand(batch, channels, 1)], 2)
        keys = torch.cat([x, x.new_ones(batch, channels, 1)], 2).transpose(1, 2).contiguous()
        storage = _attention_buffer((batch, channels, channels), x.device)
        weakref.finalize(ctx, _return_buffer, storage)
        row_sum, weighted = x.new_empty(batch, channels), x.new_empty(batch, channels)
        strips = _row_blocks(channels)
        log2_buffer = torch.empty(strips[0].stop * channels, device=x.device)
        for image in range(batch):
            for rows in strips:
                log2_s = log2_buffer[:(rows.stop - rows.start) * channels].view(-1, channels)
                torch.mm(queries[image, rows], keys[image], out=log2_s)
                s = torch.exp2(log2_s, out=storage[image, rows])
                torch.sum(s, 1, out=row_sum[image, rows])
                torch.mv(s, mu[image], out=weighted[image, rows])
        context = weighted / row_sum
        ctx.save_for_backward(x, mu, context, storage, row_sum)
        ctx.temperature = temperature
        return context

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, Tensor]:  # noqa: ANN001
        x, mu, context, storage, row_sum = ctx.saved_tensors
        batch, channels, _ = x.shape
        temperature = ctx.temperature
        p = grad.float() / row_sum  # dE_ij = S_ij p_i (mu_j - c_i), so dE + dE^T = S * M with
        minus_q = -p * context      # M_ij = p_i mu_j + mu_i p_j - q_i - q_j, q = p * c
        grad_x, grad_mu = torch.empty_like(x), torch.empty_like(mu)
        strips = _row_blocks(channels)
        weights = torch.empty(strips[0].stop * channels, device=x.device)
        for image in range(batch):
            for rows in strips:
                s = storage[image, rows]
                torch.mv(s, p[image], out=grad_mu[image, rows])  # dmu = S^T p = S p (S is symmetric)
                w = weights[:(rows.stop - rows.start) * channels].view(-1, channels)
                torch.add(minus_q[image, rows, None], minus_q[image, None, :], out=w)
                w.addcmul_(p[image, rows, None], mu[image, None, :])
                w.addcmul_(mu[image, rows, None], p[image, None, :])
                w.mul_(s)
                torch.mm(w, x[image], out=grad_x[image, rows])
        grad_log_temperature = None
        if ctx.needs_input_grad[2]:
            # d log t = sum_ij dE_ij E_ij = (t / 2) sum_i x_i . ((dE + dE^T) X)_i: a sum with much
            # cancellation, so it is accumulated in float64
            grad_log_temperature = (0.5 * temperature * (x.double() * grad_x.double()).sum()).float()
            grad_log_temperature = grad_log_temperature.reshape(temperature.shape)
        return grad_x.mul_(temperature), grad_mu, grad_log_temperature
