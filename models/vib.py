"""The VIB head of the paper: mu = GAP(F), sigma from a channel self-attention, z = mu + sigma * eps.

Exact formulas and the reasons behind them are in docs/model.md. In short, for feature maps F
(B x C x h x w, flattened to X: B x C x N):

    Xc = standardise each channel of X over its N positions (subtract mean, divide by L2 norm)
    A  = softmax(t * Xc Xc^T)             channel x channel attention, t = exp(log_temperature)
    c  = A mu                              equals GAP(A X): the attended context of each channel
    u  = c standardised over the C channels of each image (zero mean, unit variance)
    sigma = softplus(scale * u + bias)     scale starts at `sigma_scale_init`, bias at softplus^-1(sigma_init)

The correlation energies lie in [-t, t] whatever the size of the layer-4 activations, so the softmax
cannot collapse to one-hot because activations grow. sigma starts at the prior's scale (sigma_init = 1)
and depends on the input from the first step (scale != 0), so the attention, its temperature included,
gets gradient at once and the KL does not have to drag sigma up from ~0 at a rate of lr * beta.

`sigma_parametrisation="legacy"` keeps the first version, softplus(scale * c + bias - sigma_offset)
with scale = bias = 0 at the start (sigma = 0.0067 everywhere, zero gradient to the attention), so
checkpoints written before the change load and behave as they did.

In eval mode `forward` never touches the attention branch: logits are `fc(mu)`, like the baseline.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.channel_attention import attended_context
from models.resnet import CamClassifier, Prediction

KL_REDUCTIONS = ("sum", "mean")
EVAL_MODES = ("mu", "mean_softmax")
SIGMA_PARAMETRISATIONS = ("standardised", "legacy")
SIGMA_FLOOR = 1e-6
CONTEXT_EPS = 1e-8  # relative to the mean square of the context


def inverse_softplus(value: float) -> float:
    """x with softplus(x) = value (value > 0)."""
    if value <= 0:
        raise ValueError(f"sigma_init must be > 0, got {value}")
    return value + math.log(-math.expm1(-value))


class VIBOutput(NamedTuple):
    """Training-mode output: logits for every noise sample (S x B x K), KL per image (B), sigma."""

    logits: Tensor
    kl: Tensor
    sigma: Tensor


def gaussian_kl(mu: Tensor, sigma: Tensor, reduction: str = "sum") -> Tensor:
    """KL(N(mu, diag sigma^2) || N(0, I)) per image, summed or averaged over the C dimensions."""
    per_dim = 0.5 * (mu.square() + sigma.square() - 1.0) - sigma.log()
    if reduction == "sum":
        return per_dim.sum(1)
    if reduction == "mean":
        return per_dim.mean(1)
    raise ValueError(f"unknown kl_reduction {reduction!r}; choose one of {', '.join(KL_REDUCTIONS)}")


class ChannelAttentionSigma(nn.Module):
    """sigma from a DANet-style channel x channel self-attention over the feature maps."""

    def __init__(self, channels: int, temperature: float = 5.0, sigma_offset: float = 5.0, *,
                 parametrisation: str = "standardised", sigma_init: float = 1.0, scale_init: float = 1.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"attention_temperature must be > 0, got {temperature}")
        if parametrisation not in SIGMA_PARAMETRISATIONS:
            raise ValueError(f"unknown sigma_parametrisation {parametrisation!r}; "
                             f"choose one of {', '.join(SIGMA_PARAMETRISATIONS)}")
        self.log_temperature = nn.Parameter(torch.tensor(math.log(temperature)))
        self.parametrisation = parametrisation
        self.sigma_offset = sigma_offset
        if parametrisation == "legacy":
            self.scale = nn.Parameter(torch.zeros(channels))
            self.bias = nn.Parameter(torch.zeros(channels))
        else:
            self.scale = nn.Parameter(torch.full((channels,), float(scale_init)))
            self.bias = nn.Parameter(torch.full((channels,), inverse_softplus(sigma_init)))

    def standardised(self, feature_maps: Tensor) -> Tensor:
        """B x C x N channels with zero mean and unit L2 norm over the N positions (fp32)."""
        x = feature_maps.float().flatten(2)
        return F.normalize(x - x.mean(2, keepdim=True), dim=2, eps=1e-6)

    def attention(self, feature_maps: Tensor) -> Tensor:
        """Row-stochastic B x C x C matrix: how much each channel attends to every channel.

        For inspection and tests; `forward` computes the same thing without materialising it."""
        x = self.standardised(feature_maps)
        return torch.softmax(torch.bmm(x * self.log_temperature.exp(), x.transpose(1, 2)), -1)

    def context(self, feature_maps: Tensor, mu: Tensor) -> Tensor:
        """A mu (B x C) without building A in fp32: queries = keys = standardised channels, values = mu.

        models.channel_attention picks the kernel: fused fp32 attention (GPUs, CPUs without native
        bf16) or, for training on CPUs with native bf16, an fp32 forward whose backward runs in bf16."""
        return attended_context(self.standardised(feature_maps), mu, self.log_temperature)

    def pre_activation(self, context: Tensor) -> Tensor:
        """The argument of softplus: per-channel affine map of the (standardised) context."""
        if self.parametrisation == "legacy":
            return self.scale * context + self.bias - self.sigma_offset
        centred = context - context.mean(1, keepdim=True)  # relative eps: u does not depend on the scale of F
        floor = CONTEXT_EPS * context.square().mean(1, keepdim=True) + 1e-20
        spread = (centred.square().mean(1, keepdim=True) + floor).sqrt()
        return self.scale * (centred / spread) + self.bias

    def forward(self, feature_maps: Tensor, mu: Tensor) -> Tensor:
        with torch.autocast(feature_maps.device.type, enabled=False):  # softmax and log sigma want fp32
            context = self.context(feature_maps.float(), mu.float())
            return F.softplus(self.pre_activation(context)).clamp_min(SIGMA_FLOOR)


class VIBClassifier(CamClassifier):
    """ResNet + VIB head. Eval-mode logits are fc(GAP(F)), exactly like the baseline (CAM contract)."""

    head = "vib"

    def __init__(
        self,
        arch: str,
        features: nn.Sequential,
        fc: nn.Linear,
        *,
        samples: int = 1,
        eval_mode: str = "mu",
        eval_samples: int = 12,
        kl_reduction: str = "sum",
        attention_temperature: float = 5.0,
        sigma_offset: float = 5.0,
        sigma_parametrisation: str = "standardised",
        sigma_init: float = 1.0,
        sigma_scale_init: float = 1.0,
    ) -> None:
        super().__init__(arch, features, fc)
        if samples < 1 or eval_samples < 1:
            raise ValueError(f"samples and eval_samples must be >= 1, got {samples} and {eval_samples}")
        if eval_mode not in EVAL_MODES:
            raise ValueError(f"unknown eval_mode {eval_mode!r}; choose one of {', '.join(EVAL_MODES)}")
        if kl_reduction not in KL_REDUCTIONS:
            raise ValueError(f"unknown kl_reduction {kl_reduction!r}; choose one of {', '.join(KL_REDUCTIONS)}")
        self.attention = ChannelAttentionSigma(fc.in_features, attention_temperature, sigma_offset,
                                               parametrisation=sigma_parametrisation, sigma_init=sigma_init,
                                               scale_init=sigma_scale_init)
        self.options = {
            "samples": samples,
            "eval_mode": eval_mode,
            "eval_samples": eval_samples,
            "kl_reduction": kl_reduction,
            "attention_temperature": attention_temperature,
            "sigma_offset": sigma_offset,
            "sigma_parametrisation": sigma_parametrisation,
            "sigma_init": sigma_init,
            "sigma_scale_init": sigma_scale_init,
        }

    def posterior(self, feature_maps: Tensor) -> tuple[Tensor, Tensor]:
        """(mu, sigma) of p(z|x); runs the attention branch."""
        mu = feature_maps.mean((2, 3))
        return mu, self.attention(feature_maps, mu)

    def kl(self, mu: Tensor, sigma: Tensor) -> Tensor:
        return gaussian_kl(mu.float(), sigma, self.options["kl_reduction"])

    def sample_logits(self, mu: Tensor, sigma: Tensor, samples: int) -> Tensor:
        """Logits of z = mu + sigma * eps for `samples` independent eps (S x B x K)."""
        eps = torch.randn((samples, *mu.shape), device=mu.device, dtype=sigma.dtype)
        return self.fc((mu.float().unsqueeze(0) + sigma.unsqueeze(0) * eps).to(mu.dtype))

    def forward(self, x: Tensor) -> Tensor | VIBOutput:  # type: ignore[override]
        feature_maps = self.features(x)
        if not self.training:
            return self.fc(feature_maps.mean((2, 3)))
        mu, sigma = self.posterior(feature_maps)
        return VIBOutput(self.sample_logits(mu, sigma, self.options["samples"]), self.kl(mu, sigma), sigma)

    @torch.no_grad()
    def predict(self, x: Tensor, observer: Callable[[Tensor, Tensor, Tensor], None] | None = None) -> Prediction:
        """Probabilities per `eval_mode` ("mu": softmax(fc(mu)); "mean_softmax": mean over samples)
        and the KL per image. Unlike `forward`, this runs the attention branch (it needs sigma).
        `observer(feature_maps, mu, sigma)` sees the batch (the bottleneck diagnostics use it)."""
        feature_maps = self.features(x)
        mu, sigma = self.posterior(feature_maps)
        if observer is not None:
            observer(feature_maps, mu, sigma)
        if self.options["eval_mode"] == "mean_softmax":
            probs = self.sample_logits(mu, sigma, self.options["eval_samples"]).float().softmax(-1).mean(0)
        else:
            probs = self.fc(mu).float().softmax(-1)
        return Prediction(probs, self.kl(mu, sigma))
