"""Mixed precision: bf16 autocast on CPUs that have native bf16 (AVX-512-BF16/AMX), AMP on CUDA.

On CPUs without native bf16, bf16 is emulated and slower than fp32, so `auto` stays in fp32 there.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

PRECISIONS = ("auto", "fp32", "bf16")


def cpu_has_native_bf16() -> bool:
    """Checked at run time: the same code runs on laptops, servers and CI machines."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


@dataclass(frozen=True)
class Precision:
    """How to run the forward pass: autocast dtype (None = fp32), loss scaling, memory format."""

    dtype: torch.dtype | None
    device_type: str
    channels_last: bool

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    @property
    def needs_scaler(self) -> bool:
        return self.dtype == torch.float16

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)


def resolve_precision(choice: str, device: torch.device) -> Precision:
    """`auto`: CUDA -> bf16 (fp16 with loss scaling on GPUs without bf16); CPU -> bf16 if native, else fp32."""
    if choice not in PRECISIONS:
        raise ValueError(f"unknown --precision {choice!r}; choose one of {', '.join(PRECISIONS)}")
    if device.type == "cuda":
        if choice == "fp32":
            return Precision(None, "cuda", True)
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return Precision(dtype if choice == "auto" else torch.bfloat16, "cuda", True)
    if choice == "bf16" or (choice == "auto" and device.type == "cpu" and cpu_has_native_bf16()):
        return Precision(torch.bfloat16, device.type, device.type == "cpu")
    return Precision(None, device.type, False)
