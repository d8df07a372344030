"""`train_one_epoch` and `evaluate`: plain loops, one place for the loss (CE + beta * KL)."""
from __future__ import annotations

import time
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from models.diagnostics import DiagnosticsAccumulator
from models.distributed import Distributed, all_reduce_sum
from models.precision import Precision
from models.vib import VIBOutput


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside DistributedDataParallel (or the model itself)."""
    return model.module if hasattr(model, "module") else model


def beta_at(beta: float, warmup_epochs: float, epoch: int, step: int, steps: int) -> float:
    """beta ramps linearly from 0 to `beta` over the first `warmup_epochs` (0: constant)."""
    if warmup_epochs <= 0:
        return beta
    return beta * min(1.0, (epoch + (step + 1) / steps) / warmup_epochs)


def vib_loss(output: Tensor | VIBOutput, labels: Tensor, beta: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(loss, CE, mean KL, probabilities) for a baseline logits tensor or a VIB training output.

    CE is averaged over the noise samples and the batch; KL (per image, per the model's
    kl_reduction) is averaged over the batch; loss = CE + beta * KL."""
    if isinstance(output, VIBOutput):
        logits, kl = output.logits.float(), output.kl.mean()
    else:
        logits, kl = output.float().unsqueeze(0), torch.zeros((), device=labels.device)
    samples = logits.shape[0]
    ce = F.cross_entropy(logits.flatten(0, 1), labels.repeat(samples))
    return ce + beta * kl, ce, kl, logits.softmax(-1).mean(0)


class RunningMean:
    """Sums weighted by batch size, summed over processes at the end of an epoch."""

    def __init__(self, *names: str) -> None:
        self.totals = dict.fromkeys(names, 0.0)
        self.count = 0

    def add(self, count: int, **values: float) -> None:
        self.count += count
        for name, value in values.items():
            self.totals[name] += value * count

    def local(self) -> dict[str, float]:
        return {name: total / max(self.count, 1) for name, total in self.totals.items()}

    def reduced(self, state: Distributed, device: torch.device) -> dict[str, float]:
        summed = all_reduce_sum([*self.totals.values(), float(self.count)], state, device)
        return {name: total / max(summed[-1], 1.0) for name, total in zip(self.totals, summed)}


def train_one_epoch(
    model: nn.Module,
    loader: Iterable,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    *,
    device: torch.device,
    epoch: int,
    epochs: int,
    beta: float = 0.0,
    beta_warmup_epochs: float = 0.0,
    precision: Precision | None = None,
    scaler: torch.amp.GradScaler | None = None,
    dist_state: Distributed = Distributed(),
    progress: bool = True,
) -> dict[str, float]:
    """One pass over `loader`, stepping the (per-step) scheduler; returns averaged metrics."""
    model.train()
    precision = precision or Precision(None, device.type, False)
    steps = len(loader)
    meter = RunningMean("loss", "ce", "kl", "acc", "sigma")
    started = time.perf_counter()
    bar = tqdm(loader, total=steps, desc=f"epoch {epoch + 1}/{epochs} train", unit="batch", leave=False,
               disable=not (progress and dist_state.is_main), dynamic_ncols=True)
    current_beta, lr = beta, optimizer.param_groups[0]["lr"]
    for step, (images, labels) in enumerate(bar):
        images = images.to(device, non_blocking=True)
        if precision.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        labels = labels.to(device, non_blocking=True)
        current_beta = beta_at(beta, beta_warmup_epochs, epoch, step, steps)
        with precision.autocast():
            output = model(images)
        loss, ce, kl, probs = vib_loss(output, labels, current_beta)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}; "
                                     "lower --lr or --beta, or use --precision fp32")
        optimizer.zero_grad(set_to_none=True)
        lr = optimizer.param_groups[0]["lr"]
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        scheduler.step()
        sigma = output.sigma.mean().item() if isinstance(output, VIBOutput) else 0.0
        accuracy = (probs.argmax(-1) == labels).float().mean().item()
        meter.add(len(labels), loss=loss.item(), ce=ce.item(), kl=kl.item(), acc=accuracy, sigma=sigma)
        running = meter.local()
        bar.set_postfix(loss=f"{running['loss']:.3f}", acc=f"{running['acc']:.3f}")
    bar.close()
    metrics = meter.reduced(dist_state, device)
    metrics["beta"] = current_beta
    metrics["lr"] = lr
    metrics["seconds"] = time.perf_counter() - started
    return metrics


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable,
    *,
    device: torch.device,
    precision: Precision | None = None,
    dist_state: Distributed = Distributed(),
    progress: bool = True,
    desc: str = "val",
    diagnostics: DiagnosticsAccumulator | None = None,
) -> dict[str, float]:
    """Top-1/top-5 accuracy, CE and mean KL (VIB) over `loader` (each process sees its own shard).

    `diagnostics` (VIB only) is fed each batch's feature maps, mu and sigma from this same pass."""
    model = unwrap(model).eval()
    precision = precision or Precision(None, device.type, False)
    meter = RunningMean("top1", "top5", "loss", "kl")
    bar = tqdm(loader, desc=desc, unit="batch", leave=False,
               disable=not (progress and dist_state.is_main), dynamic_ncols=True)
    for images, labels in bar:
        images = images.to(device, non_blocking=True)
        if precision.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        labels = labels.to(device, non_blocking=True)
        with precision.autocast():
            if diagnostics is None:
                prediction = model.predict(images)
            else:
                prediction = model.predict(images, observer=lambda maps, mu, sigma, labels=labels:
                                           diagnostics.add(maps, mu, sigma, labels))
        probs = prediction.probs.float()
        top = probs.topk(min(5, probs.shape[1]), dim=1).indices
        meter.add(
            len(labels),
            top1=(top[:, 0] == labels).float().mean().item(),
            top5=(top == labels[:, None]).any(1).float().mean().item(),
            loss=F.nll_loss(probs.clamp_min(1e-12).log(), labels).item(),
            kl=0.0 if prediction.kl is None else prediction.kl.float().mean().item(),
        )
    bar.close()
    return meter.reduced(dist_state, device)
