"""Train a baseline or VIB ResNet: `python -m models.train --help`.

Writes a run folder (config.json, metrics.csv, last.pt, best.pt). `--resume` continues it exactly:
every epoch reseeds torch/numpy/random from (seed, epoch) and shuffles with a sampler seeded the
same way, so a resumed CPU run ends with the same weights as an uninterrupted one.
Under `torchrun --nproc-per-node N -m models.train ...` it trains with DistributedDataParallel;
`--batch-size` stays the global batch.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import platform
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Sampler

from models.cli import DefaultsHelpFormatter, one_line
from fileio import copy_atomic, write_text_atomic
from models.checkpoint import (BEST_NAME, LAST_NAME, CheckpointError, CheckpointState, read_checkpoint,
                               save_checkpoint)
from models.data import BadImageError, add_data_arguments, build_datasets
from models.data.loading import DeviceBatches, make_train_loader
from models.diagnostics import DIAGNOSTIC_COLUMNS, DiagnosticsAccumulator, bottleneck_verdict
from models.distributed import Distributed, barrier, init_distributed, shutdown
from models.engine import evaluate, train_one_epoch
from models.factory import HEADS, build_model
from models.precision import PRECISIONS, resolve_precision
from models.resnet import ARCHS
from models.vib import EVAL_MODES, KL_REDUCTIONS, SIGMA_PARAMETRISATIONS

METRIC_COLUMNS = ("epoch", "lr", "beta", "loss", "ce", "kl", "sigma", "train_acc", "val_acc", "val_top5",
                  "val_loss", "val_kl", "seconds", *DIAGNOSTIC_COLUMNS)
RUNTIME_ARGS = {"out", "resume", "workers", "device", "precision", "progress", "threads", "eval_every",
                "compile"}  # may change on --resume
NOT_EVALUATED = {"top1": None, "top5": None, "loss": None, "kl": None}  # --eval-every skipped this epoch
CONFIG_NAME = "config.json"
METRICS_NAME = "metrics.csv"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m models.train",
        description="Train a baseline or VIB ResNet into a run folder (config.json, metrics.csv, last.pt, best.pt).",
        formatter_class=DefaultsHelpFormatter,
    )
    model = parser.add_argument_group("model")
    model.add_argument("--arch", choices=ARCHS, default="resnet50", help="torchvision ResNet")
    model.add_argument("--head", choices=HEADS, default="baseline", help="plain GAP + fc, or the VIB head")
    model.add_argument("--beta", type=float, default=0.1, help="VIB: weight of the KL term")
    model.add_argument("--beta-warmup-epochs", type=float, default=0.0,
                       help="VIB: ramp beta linearly from 0 over this many epochs (0: constant)")
    model.add_argument("--kl-reduction", choices=KL_REDUCTIONS, default="sum",
                       help="VIB: KL summed or averaged over the feature dimensions (then averaged over the batch)")
    model.add_argument("--samples", type=int, default=1, help="VIB: noise samples per training step")
    model.add_argument("--eval-mode", choices=EVAL_MODES, default="mu",
                       help="VIB: evaluate on fc(mu) or on the mean softmax over noise samples")
    model.add_argument("--eval-samples", type=int, default=12, help="VIB: noise samples for --eval-mode mean_softmax")
    model.add_argument("--attention-temperature", type=float, default=5.0,
                       help="VIB: initial temperature of the channel attention (learned)")
    model.add_argument("--sigma-init", type=float, default=1.0,
                       help="VIB: sigma at the start (the prior's scale; docs/model.md says why)")
    model.add_argument("--sigma-scale-init", type=float, default=1.0,
                       help="VIB: initial weight of the standardised attention context in sigma's softplus")
    model.add_argument("--sigma-parametrisation", choices=SIGMA_PARAMETRISATIONS, default="standardised",
                       help="VIB: 'legacy' is the first head (sigma = softplus(-5) at the start, for comparison)")
    model.add_argument("--weights", type=Path, default=None,
                       help="torchvision-format state dict to start from (all keys but fc.* must match)")
    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--epochs", type=int, default=100, help="training epochs")
    optim.add_argument("--batch-size", type=int, default=256, help="global batch (split over torchrun processes)")
    optim.add_argument("--lr", type=float, default=0.1, help="peak learning rate (SGD)")
    optim.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    optim.add_argument("--weight-decay", type=float, default=1e-4, help="L2 weight decay (not on the VIB variance parameters)")
    optim.add_argument("--warmup-epochs", type=float, default=None,
                       help="linear lr warm-up before the cosine decay (default: 5%% of --epochs)")
    run = parser.add_argument_group("run")
    run.add_argument("--out", type=Path, default=None,
                     help="run folder (default: runs/<data>-<arch>-<head>[-beta<beta>]-seed<seed>)")
    run.add_argument("--resume", action="store_true",
                     help="continue the run in --out from its last.pt (starts fresh when there is none)")
    run.add_argument("--seed", type=int, default=0, help="seed of the initial weights, data order and noise")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    run.add_argument("--precision", choices=PRECISIONS, default="auto",
                     help="auto: bf16 on CUDA and on CPUs with native bf16 (checked at run time), else fp32")
    run.add_argument("--threads", type=int, default=0,
                     help="CPU threads for PyTorch (0: its default, one per core); 1 is fastest on a busy machine")
    run.add_argument("--eval-every", type=int, default=1,
                     help="evaluate after every N-th epoch (and always after the last); skipped epochs leave the "
                          "val_* columns empty")
    run.add_argument("--compile", action="store_true",
                     help="torch.compile the training forward/backward (first steps compile for 1-3 min; "
                          "on CPU it needs a C compiler)")
    run.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bars")
    add_data_arguments(parser)
    return parser


def default_out(args: argparse.Namespace) -> Path:
    beta = f"-beta{args.beta:g}" if args.head == "vib" else ""
    return Path("runs") / f"{args.data}-{args.arch}-{args.head}{beta}-seed{args.seed}"


def plain(value):
    """Arguments as checkpoint-safe primitives (weights_only loading accepts no Path objects)."""
    return str(value) if isinstance(value, Path) else value


def model_options(args: argparse.Namespace) -> dict:
    if args.head != "vib":
        return {}
    return {"samples": args.samples, "eval_mode": args.eval_mode, "eval_samples": args.eval_samples,
            "kl_reduction": args.kl_reduction, "attention_temperature": args.attention_temperature,
            "sigma_parametrisation": args.sigma_parametrisation, "sigma_init": args.sigma_init,
            "sigma_scale_init": args.sigma_scale_init}


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7_919 + 12_345) % (2**31)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_states() -> dict:
    """torch/numpy/python RNG states as tensors and lists (loadable with weights_only=True)."""
    name, keys, position, has_gauss, cached = np.random.get_state()
    version, state, gauss = random.getstate()
    states = {"torch": torch.get_rng_state(),
              "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(position),
                        "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
              "python": {"version": version, "state": list(state), "gauss": gauss}}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    numpy_state = states["numpy"]
    np.random.set_state((numpy_state["name"], numpy_state["keys"].numpy().astype(np.uint32), numpy_state["pos"],
                         numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    python_state = states["python"]
    random.setstate((python_state["version"], tuple(python_state["state"]), python_state["gauss"]))
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up to the peak, then cosine decay to zero at the last step."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def make_optimizer(model: torch.nn.Module, args: argparse.Namespace) -> torch.optim.SGD:
    """SGD; the VIB variance parameters get no weight decay (the KL term already regularises them)."""
    variance = [p for n, p in model.named_parameters() if n.startswith("attention.")]
    others = [p for n, p in model.named_parameters() if not n.startswith("attention.")]
    groups = [{"params": others, "weight_decay": args.weight_decay}]
    if variance:
        groups.append({"params": variance, "weight_decay": 0.0})
    return torch.optim.SGD(groups, lr=args.lr, momentum=args.momentum)


class ShardSampler(Sampler[int]):
    """Eval indices rank, rank + world, ...: every image seen once over all processes, no padding."""

    def __init__(self, length: int, state: Distributed) -> None:
        self.indices = list(range(state.rank, length, state.world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def train_loader(dataset, args: argparse.Namespace, state: Distributed, device: torch.device) -> DataLoader:
    """The run's one loader (workers persist across epochs). Data order depends on (seed, epoch) and each
    image's augmentation on (seed, epoch, index), which is what makes --resume exact."""
    dataset.uint8 = True  # workers ship uint8 images; DeviceBatches normalises them on the device
    return make_train_loader(dataset, batch_size=args.batch_size // state.world_size, seed=args.seed,
                             workers=args.workers, rank=state.rank, world_size=state.world_size,
                             pin_memory=device.type == "cuda")


def eval_due(epoch: int, args: argparse.Namespace) -> bool:
    """--eval-every N: after epochs N, 2N, ... and always after the last one (epoch counts from 0)."""
    return (epoch + 1) % args.eval_every == 0 or epoch + 1 == args.epochs


def accelerate(model: torch.nn.Module, args: argparse.Namespace, device: torch.device) -> torch.nn.Module:
    """cuDNN autotuning on CUDA (fixed input sizes), and torch.compile with --compile."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if not args.compile:
        return model
    if device.type == "cpu" and not any(shutil.which(cc) for cc in ("cc", "gcc", "clang")):
        raise ValueError("--compile on CPU needs a C compiler (gcc or clang) on PATH; install one or drop --compile")
    return torch.compile(model)


def write_metrics(path: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def explicit_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict:
    return {k: v for k, v in vars(args).items() if v != parser.get_default(k)}


def merge_resumed_args(parser: argparse.ArgumentParser, args: argparse.Namespace, saved: dict, path: Path):
    """On --resume the saved configuration wins; an explicit conflicting option is an error."""
    for name, value in explicit_args(parser, args).items():
        if name not in RUNTIME_ARGS and name in saved and plain(value) != saved[name]:
            flag = "--" + name.replace("_", "-")
            raise CheckpointError(f"{path} was trained with {flag} {saved[name]}, not {plain(value)}; "
                                  f"drop {flag} to resume it, or choose another --out")
    merged = argparse.Namespace(**{**vars(args), **{k: v for k, v in saved.items() if k not in RUNTIME_ARGS}})
    if saved.get("head") == "vib" and "sigma_parametrisation" not in saved:  # a run from before the new head
        merged.sigma_parametrisation = "legacy"
    for name in ("data_root", "weights"):
        if getattr(merged, name, None) is not None:
            setattr(merged, name, Path(getattr(merged, name)))
    return merged


def environment(device: torch.device, precision_name: str, state: Distributed) -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "device": str(device), "precision": precision_name, "world_size": state.world_size,
            "threads": torch.get_num_threads(), "command": " ".join([Path(sys.executable).name, "-m", "models.train",
                                                                     *sys.argv[1:]])}


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict:
    """Train (or resume) the run described by `args`; returns the last metrics row."""
    state, device = init_distributed(args.device)
    try:
        return _run(args, parser, state, device)
    finally:
        shutdown(state)


def open_run(args, parser, state: Distributed) -> tuple[argparse.Namespace, Path, dict | None]:
    """(effective args, run folder, checkpoint to resume or None); refuses to overwrite a run."""
    out = Path(args.out or default_out(args))
    resumed = None
    if (out / LAST_NAME).exists():
        if not args.resume:
            raise CheckpointError(f"run folder {out} already has {LAST_NAME}; pass --resume to continue it, "
                                  "or choose another --out")
        resumed = read_checkpoint(out / LAST_NAME)
        args = merge_resumed_args(parser, args, resumed.args, out / LAST_NAME)
    if args.batch_size % state.world_size:
        raise ValueError(f"--batch-size {args.batch_size} is not divisible by the {state.world_size} processes")
    if args.epochs < 1:
        raise ValueError(f"--epochs must be >= 1, got {args.epochs}")
    if args.eval_every < 1:
        raise ValueError(f"--eval-every must be >= 1, got {args.eval_every} (the last epoch is always evaluated)")
    return args, out, resumed


def restore(resumed: CheckpointState, model, optimizer, scheduler, scaler, num_classes: int, path: Path) -> tuple[int, float, list]:
    """Load a checkpoint's training state; returns (epochs done, best accuracy, metric rows)."""
    if resumed.arch != model.arch or resumed.num_classes != num_classes:
        raise CheckpointError(f"{path} holds a {resumed.arch} model for {resumed.num_classes} classes, "
                              f"but the data now has {num_classes}; check --data-root")
    model.load_state_dict(resumed.model)
    optimizer.load_state_dict(resumed.optimizer)
    scheduler.load_state_dict(resumed.scheduler)
    if scaler is not None and resumed.scaler:
        scaler.load_state_dict(resumed.scaler)
    restore_rng_states(resumed.rng)
    return resumed.epoch, resumed.best_acc, list(resumed.metrics)


def metrics_row(epoch: int, train: dict, val: dict, diagnostics: dict | None = None) -> dict:
    """One metrics.csv row; `diagnostics` (VIB only) adds the bottleneck columns."""
    return {"epoch": epoch, "lr": train["lr"], "beta": train["beta"], "loss": train["loss"], "ce": train["ce"],
            "kl": train["kl"], "sigma": train["sigma"], "train_acc": train["acc"], "val_acc": val["top1"],
            "val_top5": val["top5"], "val_loss": val["loss"], "val_kl": val["kl"], "seconds": train["seconds"],
            **(diagnostics or {})}


def with_verdict(values: dict, initial_temperature: float) -> dict:
    """The bottleneck columns of one epoch (rank 0's share of the validation set), verdict included."""
    return {**values, "active": int(bottleneck_verdict(values, initial_temperature).active)}


def report_verdict(row: dict, initial_temperature: float) -> None:
    """The run's last word on the bottleneck; a warning on stderr when it ended inactive."""
    verdict = bottleneck_verdict(row, initial_temperature)
    print(verdict.describe(), flush=True)
    if not verdict.active:
        print("warning: the VIB bottleneck ended INACTIVE: this run is close to the baseline in disguise; "
              "see python -m models.inspect and docs/model.md", file=sys.stderr, flush=True)


def report_epoch(row: dict, epochs: int, vib: bool) -> None:
    kl = (f" kl {row['kl']:.1f} sigma p50 {row['sigma_p50']:.3f} acc mu/z {row['val_acc_mu']:.3f}/"
          f"{row['val_acc_sampled']:.3f}" if vib and 'sigma_p50' in row else "")
    val = "" if row["val_acc"] is None else f" val {row['val_acc']:.3f} top5 {row['val_top5']:.3f}"
    print(f"epoch {row['epoch']}/{epochs}: loss {row['loss']:.3f} (ce {row['ce']:.3f}{kl}) "
          f"train {row['train_acc']:.3f}{val} lr {row['lr']:.4f} {row['seconds']:.0f}s", flush=True)


def _run(args, parser, state: Distributed, device: torch.device) -> dict:
    args, out, resumed = open_run(args, parser, state)
    if resumed is not None and resumed.epoch >= args.epochs:
        if state.is_main:
            print(f"{out} is already complete ({resumed.epoch}/{args.epochs} epochs); nothing to do")
        return resumed.metrics[-1] if resumed.metrics else {}
    datasets = build_datasets(args, progress=args.progress and state.is_main)
    num_classes = len(datasets.class_names)
    precision = resolve_precision(args.precision, device)
    seed_everything(args.seed)
    model = build_model(args.arch, num_classes, args.head, weights=args.weights, **model_options(args)).to(device)
    if precision.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, args)
    loader = train_loader(datasets.train, args, state, device)
    steps_per_epoch = len(loader)
    warmup_epochs = args.warmup_epochs if args.warmup_epochs is not None else round(0.05 * args.epochs)
    warmup_steps, total_steps = round(warmup_epochs * steps_per_epoch), args.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, warmup_steps, total_steps))
    scaler = torch.amp.GradScaler(device.type) if precision.needs_scaler else None
    start_epoch, best_acc, rows = 0, -1.0, []
    if resumed is not None:
        start_epoch, best_acc, rows = restore(resumed, model, optimizer, scheduler, scaler, num_classes,
                                              out / LAST_NAME)
    trained = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if state.enabled else model
    trained = accelerate(trained, args, device)
    val_loader = DataLoader(datasets.val, batch_size=max(1, args.batch_size // state.world_size),
                            sampler=ShardSampler(len(datasets.val), state), num_workers=args.workers,
                            pin_memory=device.type == "cuda")
    vib = args.head == "vib"
    config = {"args": {k: plain(v) for k, v in vars(args).items()}, "data": datasets.options,
              "arch": args.arch, "head": args.head, "options": dict(model.options),
              "beta": args.beta if vib else None, "class_names": datasets.class_names,
              "class_labels": datasets.class_labels, "skipped_images": datasets.skipped,
              "environment": environment(device, precision.name, state)}
    if state.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / CONFIG_NAME, json.dumps(config, indent=2) + "\n")
        what = f"{args.head} {args.arch}" + (f", beta {args.beta:g}" if vib else "")
        print(f"{what}: {datasets.description}; {device}, {precision.name}, world size {state.world_size}; "
              f"epochs {start_epoch + 1}-{args.epochs} -> {out}", flush=True)
    barrier(state)

    started = time.perf_counter()
    for epoch in range(start_epoch, args.epochs):
        seed_everything(epoch_seed(args.seed, epoch))
        loader.sampler.set_epoch(epoch)
        train_metrics = train_one_epoch(
            trained, DeviceBatches(loader, device), optimizer, scheduler,
            device=device, epoch=epoch, epochs=args.epochs, beta=args.beta if vib else 0.0,
            beta_warmup_epochs=args.beta_warmup_epochs, precision=precision, scaler=scaler, dist_state=state,
            progress=args.progress)
        evaluated = eval_due(epoch, args)
        accumulator = DiagnosticsAccumulator(model) if vib and evaluated and state.is_main else None
        val_metrics = evaluate(model, val_loader, device=device, precision=precision, dist_state=state,
                               progress=args.progress, diagnostics=accumulator) if evaluated else NOT_EVALUATED
        diagnostics = None if accumulator is None else with_verdict(accumulator.result(), args.attention_temperature)
        rows.append(metrics_row(epoch + 1, train_metrics, val_metrics, diagnostics))
        improved = rows[-1]["val_acc"] is not None and rows[-1]["val_acc"] > best_acc
        best_acc = max(best_acc, rows[-1]["val_acc"]) if improved else best_acc
        if state.is_main:
            save_checkpoint(CheckpointState(
                model=model.state_dict(), optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                scaler=scaler.state_dict() if scaler else None, epoch=epoch + 1, epochs=args.epochs,
                args=config["args"], arch=args.arch, head=args.head, num_classes=num_classes,
                class_names=datasets.class_names, class_labels=datasets.class_labels, options=config["options"],
                beta=config["beta"], data=datasets.options, rng=rng_states(), best_acc=best_acc, metrics=rows,
            ), out / LAST_NAME)
            if improved:
                copy_atomic(out / LAST_NAME, out / BEST_NAME)
            write_metrics(out / METRICS_NAME, rows)
            report_epoch(rows[-1], args.epochs, vib)
        barrier(state)
    if state.is_main:
        minutes = (time.perf_counter() - started) / 60
        best_epoch = max((r for r in rows if r["val_acc"] is not None), key=lambda r: r["val_acc"])["epoch"]
        print(f"done in {minutes:.1f} min: val top-1 {rows[-1]['val_acc']:.3f} (best {best_acc:.3f} at epoch "
              f"{best_epoch}), top-5 {rows[-1]['val_top5']:.3f}; run folder {out}", flush=True)
        if vib and "sigma_p50" in rows[-1]:
            report_verdict(rows[-1], args.attention_temperature)
    return rows[-1]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        run(args, parser)
    except KeyboardInterrupt:
        print("interrupted; continue with the same command plus --resume", file=sys.stderr)
        return 130
    except (CheckpointError, BadImageError, ValueError, FloatingPointError, OSError) as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
