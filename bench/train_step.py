"""Seconds per training step and per eval forward, VIB against baseline, measured in the same run.

    .venv/bin/python bench/train_step.py [--arch resnet50 --image-size 128 --batch-size 8 --reps 15 --threads 1]
    .venv/bin/python bench/train_step.py --precision bf16    # bf16 autocast (fast only with native bf16)
    .venv/bin/python bench/train_step.py --attention-kernel sdpa   # PyTorch's fused attention instead
    .venv/bin/python bench/train_step.py --smoke             # a few seconds: does it still run?

Both models are timed alternately (the order flips every repetition) and compared by medians, so
load from other processes hits both alike. Each step is timed twice: wall clock, and CPU time of
this process (`time.process_time`), which other jobs on a shared machine do not inflate; with
`--threads 1` the CPU time is the cleanest measure of the work done.
The printout names the attention kernel the VIB branch used (models/channel_attention.py: `stored`
for training on CPUs, PyTorch's fused `sdpa` elsewhere).
Targets: training step <= 1.10x, eval forward <= 1.02x.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

import torch


from testing.benchmark import add_smoke_flag, print_header
from models import build_model
from models.channel_attention import KERNEL_ENV, KERNELS, context_kernel
from models.engine import vib_loss
from models.precision import resolve_precision

TRAIN_TARGET, EVAL_TARGET = 1.10, 1.02
SMOKE = ["--arch", "resnet18", "--image-size", "32", "--batch-size", "2", "--num-classes", "4",
         "--reps", "2", "--warmup", "1"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--num-classes", type=int, default=397, help="SUN397's class count")
    parser.add_argument("--reps", type=int, default=15, help="timed repetitions per model and measurement")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (0: PyTorch's default); "
                             "1 keeps timings clean on a shared machine")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="fp32",
                        help="autocast of the backbone for both models (the VIB branch picks its own kernel)")
    parser.add_argument("--attention-kernel", choices=("auto", *KERNELS), default="auto",
                        help="VIB attention kernel (models/channel_attention.py); auto: stored on CPUs, "
                             "sdpa elsewhere")
    add_smoke_flag(parser)
    return parser


def timed(step: Callable[[], None]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) for one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    step()
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.smoke:
        args = parser.parse_args([*SMOKE, *(argv if argv is not None else sys.argv[1:])])
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.attention_kernel != "auto":
        os.environ[KERNEL_ENV] = args.attention_kernel
    print_header("training step, VIB against baseline (bench/train_step.py)")
    device = torch.device("cpu")
    precision = resolve_precision(args.precision, device)
    torch.manual_seed(0)
    models = {head: build_model(args.arch, args.num_classes, head) for head in ("baseline", "vib")}
    optimizers = {h: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9) for h, m in models.items()}
    images = torch.randn(args.batch_size, 3, args.image_size, args.image_size)
    labels = torch.randint(0, args.num_classes, (args.batch_size,))
    if precision.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
        for model in models.values():
            model.to(memory_format=torch.channels_last)

    def train_step(head: str) -> Callable[[], None]:
        def step() -> None:
            model = models[head].train()
            with precision.autocast():
                output = model(images)
            loss = vib_loss(output, labels, beta=0.1)[0]
            optimizers[head].zero_grad(set_to_none=True)
            loss.backward()
            optimizers[head].step()
        return step

    def eval_forward(head: str) -> Callable[[], None]:
        def step() -> None:
            model = models[head].eval()
            with torch.no_grad(), precision.autocast():
                model(images)
        return step

    print(f"{args.arch}, {args.image_size} px, batch {args.batch_size}, {args.num_classes} classes, CPU, "
          f"{torch.get_num_threads()} threads, {precision.name}; {args.reps} alternating repetitions; "
          f"VIB attention kernel: {context_kernel(device)}")
    def head_only() -> Callable[[], None]:
        """The VIB branch by itself (attention, noise, fc, KL; forward and backward) on layer-4 maps."""
        vib = models["vib"].train()
        maps = vib.features(images).detach().requires_grad_(True)

        def step() -> None:
            mu, sigma = vib.posterior(maps)
            logits = vib.sample_logits(mu, sigma, 1)[0]
            loss = torch.nn.functional.cross_entropy(logits, labels) + 0.1 * vib.kl(mu, sigma).mean()
            loss.backward()
        return step

    results = {}
    for name, make in (("training step", train_step), ("eval forward", eval_forward)):
        for head in ("baseline", "vib"):
            for _ in range(args.warmup):
                make(head)()
        times: dict[str, list[tuple[float, float]]] = {"baseline": [], "vib": []}
        for rep in range(args.reps):
            order = ("baseline", "vib") if rep % 2 == 0 else ("vib", "baseline")
            for head in order:
                times[head].append(timed(make(head)))
        for clock, column in (("wall", 0), ("cpu", 1)):
            for statistic, reduce in (("median", statistics.median), ("min", min)):
                values = {head: reduce(t[column] for t in runs) for head, runs in times.items()}
                results[name, clock, statistic] = values["vib"] / values["baseline"]
                print(f"{name:14s} {clock:4s} {statistic:6s} baseline {values['baseline']:.3f} s  "
                      f"vib {values['vib']:.3f} s  ratio {results[name, clock, statistic]:.3f}")
        if name == "training step":
            baseline_cpu = statistics.median(t[1] for t in times["baseline"])
    head = head_only()
    for _ in range(args.warmup):
        head()
    head_cpu = statistics.median(timed(head)[1] for _ in range(args.reps))
    print(f"VIB branch alone (fwd+bwd) cpu median {head_cpu:.3f} s = {head_cpu / baseline_cpu:.3f} of a baseline step")
    for name, target in (("training step", TRAIN_TARGET), ("eval forward", EVAL_TARGET)):
        for clock in ("wall", "cpu"):
            ratio = results[name, clock, "median"]
            status = "ok" if ratio <= target else "ABOVE TARGET"
            print(f"{name} ({clock} time, median): VIB/baseline = {ratio:.3f}x (target <= {target:.2f}x) {status}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
