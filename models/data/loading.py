"""DataLoaders that keep a GPU fed: workers sized to the cores, kept alive, seeded per image.

Workers are started once per run (`persistent_workers`) instead of once per epoch: at 15 workers
each importing torch, that is ~10-30 s saved per epoch. Because a persistent worker's random state
would otherwise carry over from epoch to epoch (and depend on which worker got which batch), every
training item's augmentation is seeded from (seed, epoch, index) alone: the crops and flips of an
epoch are the same for any number of workers, and `--resume` stays exact.
"""
from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from models.data.transforms import normalise_batch

PREFETCH_BATCHES = 2        # batches in flight per worker (float batches of 256 at 224 px are 154 MB)
MAX_WORKERS = 32            # more worker processes than this only cost memory
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def available_cores() -> int:
    """CPU cores this process may use: its affinity mask, capped by a cgroup (container) CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def choose_workers(cores: int, processes: int = 1, gpu: bool = True) -> int:
    """Loader workers per training process.

    With a GPU the CPU only feeds it: all cores of this process's share but one (which runs the
    training loop and the CUDA launches). On CPU the cores also do the training maths, so a quarter
    of the share (at least 1, at most 4) decodes while the rest computes."""
    share = max(1, cores // max(1, processes))
    if gpu:
        return max(1, min(share - 1, MAX_WORKERS))
    return max(1, min(share // 4, 4))


def workers_option(value: str) -> int:
    """argparse type of --workers: a count, or `auto` (`choose_workers` for this machine and process)."""
    if value == "auto":
        processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        return choose_workers(available_cores(), processes, torch.cuda.is_available())
    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number or 'auto', got {value!r}") from None
    if count < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {count}")
    return count



def item_seed(seed: int, epoch: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


class EpochSampler(Sampler[tuple[int, int]]):
    """A DistributedSampler's indices as (epoch, index) pairs, so the dataset can seed each item."""

    def __init__(self, sampler: DistributedSampler) -> None:
        self.sampler = sampler
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.sampler.set_epoch(epoch)

    def __iter__(self):
        return ((self.epoch, index) for index in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


class SeededItems(Dataset):
    """`dataset[(epoch, index)]` = `dataset[index]` with torch's RNG seeded from (seed, epoch, index).

    The caller's RNG state is restored afterwards (with 0 workers the main process's stream, which
    drives the VIB noise, must not depend on the augmentation)."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(item_seed(self.seed, epoch, index))
            return self.dataset[index]


def make_train_loader(dataset: Dataset, *, batch_size: int, seed: int, workers: int, rank: int = 0,
                      world_size: int = 1, pin_memory: bool = False) -> DataLoader:
    """The run's one training loader; call `loader.sampler.set_epoch(epoch)` before each epoch."""
    shuffler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
    sampler = EpochSampler(shuffler)
    extra = {"persistent_workers": True, "prefetch_factor": PREFETCH_BATCHES} if workers > 0 else {}
    return DataLoader(SeededItems(dataset, seed), batch_size=batch_size, sampler=sampler, num_workers=workers,
                      drop_last=len(sampler) > batch_size, pin_memory=pin_memory,
                      generator=torch.Generator().manual_seed(seed), **extra)


class DeviceBatches:
    """A loader's batches moved to `device`, uint8 images normalised there (see `SceneDataset.uint8`)."""

    def __init__(self, loader: DataLoader, device: torch.device) -> None:
        self.loader = loader
        self.device = device

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for images, labels in self.loader:
            images = images.to(self.device, non_blocking=True)
            yield (normalise_batch(images) if images.dtype == torch.uint8 else images), labels
