"""Is the VIB bottleneck doing anything? Diagnostics of sigma, the attention and the KL, and a verdict.

`bottleneck_diagnostics` runs the VIB head over (part of) a loader and returns the numbers that
metrics.csv records every epoch; `bottleneck_verdict` turns them into active / inactive under the
thresholds below (docs/model.md, "Is the bottleneck active?"). Why these numbers: a head whose sigma
sits at a tiny constant, or does not depend on the image, or whose noise is negligible next to how
much mu varies between images, restricts no information, whatever beta says.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from models.precision import Precision

#: metrics.csv columns written for VIB runs (empty for the baseline).
DIAGNOSTIC_COLUMNS = ("sigma_p10", "sigma_p50", "sigma_p90", "sigma_cv", "sigma_to_mu_spread", "attn_entropy",
                      "attn_temperature", "kl_mu", "kl_sigma", "val_acc_mu", "val_acc_sampled", "active")
#: At most this many validation images per epoch: the diagnostics are quantiles, not a second evaluation.
MAX_IMAGES = 1024
#: Attention matrices (B x C x C) are built this many images at a time (C = 2048 for ResNet-50).
ATTENTION_CHUNK = 4

# The verdict's thresholds (docs/model.md explains each).
MIN_SIGMA_P50 = 0.1          # median sigma, in units of the prior's standard deviation
MIN_SIGMA_CV = 0.05          # median over channels of std_images(sigma_c) / mean_images(sigma_c)
MIN_SIGMA_TO_MU_SPREAD = 0.1  # median over channels of mean_images(sigma_c) / std_images(mu_c)
MIN_TEMPERATURE_SHIFT = 0.01  # |log(t / t0)|: the attention's temperature moved from its start


def _quantiles(values: Tensor, qs: tuple[float, ...]) -> list[float]:
    flat = values.flatten().double()
    if flat.numel() > 4_000_000:  # torch.quantile's limit is 16M; a strided subsample is plenty
        flat = flat[:: math.ceil(flat.numel() / 4_000_000)]
    return torch.quantile(flat, torch.tensor(qs, dtype=torch.float64)).tolist()


def row_entropy(attention: Tensor) -> Tensor:
    """Entropy of each softmax row divided by log(C): 1 is uniform, 0 is one-hot."""
    return -(attention * attention.clamp_min(1e-12).log()).sum(-1) / math.log(attention.shape[-1])


class DiagnosticsAccumulator:
    """Collects mu, sigma, attention entropy and both accuracies batch by batch, up to `max_images`.

    `evaluate` feeds it from the pass it already makes (VIBClassifier.predict's observer), so the
    per-epoch diagnostics cost no second forward pass; `bottleneck_diagnostics` drives it alone."""

    def __init__(self, model: nn.Module, max_images: int = MAX_IMAGES, seed: int = 0) -> None:
        self.model, self.max_images = model, max_images
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        self.mus: list[Tensor] = []
        self.sigmas: list[Tensor] = []
        self.entropies: list[Tensor] = []
        self.correct_mu = self.correct_sampled = self.seen = 0

    @property
    def full(self) -> bool:
        return self.seen >= self.max_images

    @torch.no_grad()
    def add(self, feature_maps: Tensor, mu: Tensor, sigma: Tensor, labels: Tensor) -> None:
        keep = min(len(labels), self.max_images - self.seen)
        if keep <= 0:
            return
        maps, labels = feature_maps[:keep], labels[:keep]
        mu, sigma = mu[:keep].float(), sigma[:keep].float()
        eps = torch.randn(mu.shape, generator=self.generator).to(mu.device)
        with torch.autocast(mu.device.type, enabled=False):
            self.correct_mu += (self.model.fc(mu).argmax(-1) == labels).sum().item()
            self.correct_sampled += (self.model.fc(mu + sigma * eps).argmax(-1) == labels).sum().item()
            for start in range(0, keep, ATTENTION_CHUNK):
                attention = self.model.attention.attention(maps[start:start + ATTENTION_CHUNK].float())
                self.entropies.append(row_entropy(attention).mean(1).cpu())
        self.mus.append(mu.cpu())
        self.sigmas.append(sigma.cpu())
        self.seen += keep

    def result(self) -> dict[str, float]:
        if not self.seen:
            raise ValueError("no images reached the bottleneck diagnostics (empty validation set?)")
        mu, sigma = torch.cat(self.mus).double(), torch.cat(self.sigmas).double()
        p10, p50, p90 = _quantiles(sigma, (0.1, 0.5, 0.9))
        sigma_mean = sigma.mean(0)
        spread = sigma.std(0, correction=0)
        mu_spread = mu.std(0, correction=0)
        return {
            "sigma_p10": p10, "sigma_p50": p50, "sigma_p90": p90,
            "sigma_cv": (spread / sigma_mean.clamp_min(1e-12)).quantile(0.5).item(),
            "sigma_to_mu_spread": (sigma_mean / mu_spread.clamp_min(1e-12)).quantile(0.5).item(),
            "attn_entropy": torch.cat(self.entropies).mean().item(),
            "attn_temperature": self.model.attention.log_temperature.exp().item(),
            "kl_mu": (0.5 * mu.square()).mean().item(),
            "kl_sigma": (0.5 * (sigma.square() - 1.0) - sigma.log()).mean().item(),
            "val_acc_mu": self.correct_mu / self.seen,
            "val_acc_sampled": self.correct_sampled / self.seen,
        }


@torch.no_grad()
def bottleneck_diagnostics(
    model: nn.Module,
    loader: Iterable,
    *,
    device: torch.device,
    precision: Precision | None = None,
    max_images: int = MAX_IMAGES,
    seed: int = 0,
) -> dict[str, float]:
    """sigma quantiles and input dependence, attention entropy/temperature, KL per dimension (mu and
    sigma parts), and the accuracy of fc(mu) next to that of one sampled z = mu + sigma * eps.

    Runs in eval mode (BN statistics frozen) but through the training-time head."""
    model.eval()
    precision = precision or Precision(None, device.type, False)
    accumulator = DiagnosticsAccumulator(model, max_images, seed)
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        if precision.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with precision.autocast():
            maps = model.features(images)
        mu, sigma = model.posterior(maps)
        accumulator.add(maps, mu, sigma, labels)
        if accumulator.full:
            break
    return accumulator.result()


@dataclass(frozen=True)
class Verdict:
    """active, and one line per criterion saying whether it passed."""

    active: bool
    checks: tuple[tuple[bool, str], ...]

    def describe(self) -> str:
        word = "ACTIVE" if self.active else "INACTIVE"
        return f"bottleneck {word}: " + "; ".join(f"{'ok' if ok else 'FAIL'} {text}" for ok, text in self.checks)


def bottleneck_verdict(diagnostics: dict, initial_temperature: float) -> Verdict:
    """Active when sigma is large (p50 >= 0.1), input-dependent (cv >= 0.05), not negligible next to the
    spread of mu across images (>= 0.1), and the attention's temperature moved (>= 1 % in log)."""
    shift = abs(math.log(diagnostics["attn_temperature"] / initial_temperature))
    checks = (
        (diagnostics["sigma_p50"] >= MIN_SIGMA_P50, f"median sigma {diagnostics['sigma_p50']:.3g} (>= {MIN_SIGMA_P50})"),
        (diagnostics["sigma_cv"] >= MIN_SIGMA_CV,
         f"sigma varies across images {diagnostics['sigma_cv']:.3g} (cv >= {MIN_SIGMA_CV})"),
        (diagnostics["sigma_to_mu_spread"] >= MIN_SIGMA_TO_MU_SPREAD,
         f"sigma / spread of mu {diagnostics['sigma_to_mu_spread']:.3g} (>= {MIN_SIGMA_TO_MU_SPREAD})"),
        (shift >= MIN_TEMPERATURE_SHIFT,
         f"attention temperature {initial_temperature:g} -> {diagnostics['attn_temperature']:.4g} "
         f"(|log ratio| {shift:.3g} >= {MIN_TEMPERATURE_SHIFT})"),
    )
    return Verdict(all(ok for ok, _ in checks), checks)
