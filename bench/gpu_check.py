"""The GPU parts of bench/gpu_check.sh: model throughput on in-memory tensors, and nvJPEG decoding.

    .venv/bin/python bench/gpu_check.py models [--arch resnet50 --size 224 --batch-size 256 --budget-s 140]
    .venv/bin/python bench/gpu_check.py decode --data DIR [--images 512]

`models`: training img/s of the baseline and the VIB ResNet in bf16 autocast + channels_last, eager
and torch.compile'd, on one fixed batch already on the device (no input pipeline), and the
VIB/baseline ratio. Compilation time is reported separately and not counted in img/s. Compiled runs
that would overrun --budget-s are skipped and say so.
`decode`: decoded + randomly cropped 224 px images/s with torchvision's GPU JPEG decoder (nvJPEG),
to decide whether GPU decoding would beat the CPU workers (it is not wired into training).
Both print one JSON object per measurement (and write them to --json), for the summary table.
`--device cpu` with small sizes runs the same code on a CPU, to check the script itself.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch


from models import build_model
from models.engine import vib_loss
from models.precision import resolve_precision

from testing.benchmark import add_smoke_flag, print_header


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("what", choices=("models", "decode"), nargs="?", default="models")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--num-classes", type=int, default=397)
    parser.add_argument("--precision", choices=("bf16", "fp32"), default="bf16",
                        help="bf16 autocast + channels_last, or fp32 (for the script check on CPUs without bf16)")
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per model")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation happens here)")
    parser.add_argument("--budget-s", type=float, default=140.0,
                        help="skip a compiled run that would end after this many seconds of the check")
    parser.add_argument("--data", type=Path, default=None, help="decode: a folder of JPEGs (searched recursively)")
    parser.add_argument("--images", type=int, default=512, help="decode: JPEGs to decode per pass")
    parser.add_argument("--json", type=Path, default=None, help="append the measurements here (JSON lines)")
    add_smoke_flag(parser)
    return parser


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def report(record: dict, path: Path | None) -> None:
    line = json.dumps(record)
    print(line, flush=True)
    if path is not None:
        with open(path, "a", encoding="utf-8") as stream:
            stream.write(line + "\n")


def train_rate(args: argparse.Namespace, head: str, compiled: bool, device: torch.device) -> dict:
    """img/s of full training steps (forward, CE + beta KL, backward, SGD) on one resident batch."""
    precision = resolve_precision(args.precision, device)
    torch.manual_seed(0)
    model = build_model(args.arch, args.num_classes, head).to(device, memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images = torch.randn(args.batch_size, 3, args.size, args.size, device=device)
    images = images.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, args.num_classes, (args.batch_size,), device=device)
    step_model = torch.compile(model) if compiled else model

    def step() -> None:
        with precision.autocast():
            output = step_model(images)
        loss = vib_loss(output, labels, beta=0.01)[0]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    started = time.perf_counter()
    for _ in range(args.warmup):
        step()
    synchronize(device)
    warmup_s = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    synchronize(device)
    seconds = time.perf_counter() - started
    return {"measure": "train", "arch": args.arch, "head": head, "mode": "compiled" if compiled else "eager",
            "precision": precision.name, "batch": args.batch_size, "size": args.size,
            "img_s": args.steps * args.batch_size / seconds, "warmup_s": round(warmup_s, 1)}


def models_check(args: argparse.Namespace, device: torch.device) -> None:
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    started = time.perf_counter()
    rates: dict[tuple[str, str], float] = {}
    compile_s = 60.0  # expected warm-up of a compiled run until one has been measured
    for compiled in (False, True):
        for head in ("baseline", "vib"):
            elapsed = time.perf_counter() - started
            mode = "compiled" if compiled else "eager"
            if compiled and elapsed + compile_s > args.budget_s:
                report({"measure": "train", "head": head, "mode": mode,
                        "skipped": f"--budget-s {args.budget_s:g} ({elapsed:.0f} s used, compiling takes ~{compile_s:.0f} s)"},
                       args.json)
                continue
            record = train_rate(args, head, compiled, device)
            if compiled:
                compile_s = record["warmup_s"]
            rates[head, mode] = record["img_s"]
            if head == "vib" and ("baseline", mode) in rates:
                record["vib_over_baseline"] = record["img_s"] / rates["baseline", mode]
            report(record, args.json)
            torch.compiler.reset()


def decode_check(args: argparse.Namespace, device: torch.device) -> None:
    import torchvision.transforms.v2.functional as F2
    from torchvision.io import ImageReadMode, decode_jpeg, read_file

    from models.data.transforms import TrainCrop

    if args.data is None:
        raise SystemExit("error: decode needs --data DIR (a folder of JPEGs)")
    files = sorted(args.data.rglob("*.jpg"))[: args.images]
    if not files:
        raise SystemExit(f"error: no .jpg files under {args.data}")
    encoded = [read_file(str(f)) for f in files]
    crop = TrainCrop(args.size)

    def one_pass() -> None:
        for start in range(0, len(encoded), 128):
            decoded = decode_jpeg(encoded[start:start + 128], mode=ImageReadMode.RGB, device=device)
            crops = []
            for image in decoded:
                top, left, height, width = crop.box(image.shape[2], image.shape[1])
                crops.append(F2.resized_crop(image, top, left, height, width, [args.size] * 2, antialias=True))
            torch.stack(crops).float().div_(255)
        synchronize(device)

    one_pass()  # warm-up: nvJPEG handles, allocator
    started = time.perf_counter()
    passes = 3
    for _ in range(passes):
        one_pass()
    rate = passes * len(encoded) / (time.perf_counter() - started)
    report({"measure": "gpu_decode", "device": str(device), "images": len(encoded), "img_s": rate}, args.json)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.smoke:  # the eager models check on a CPU at toy size; compiled runs are skipped (no budget)
        args.what, args.device, args.arch, args.size, args.batch_size = "models", "cpu", "resnet18", 32, 4
        args.num_classes, args.precision, args.steps, args.warmup, args.budget_s = 10, "fp32", 2, 1, 0.0
    print_header("GPU check, Python part (bench/gpu_check.py)")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: no GPU visible; use --device cpu (with small sizes) to test the script itself")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else torch.backends.cpu.get_cpu_capability()
    print(f"{args.what} on {device} ({name}), torch {torch.__version__}", flush=True)
    (models_check if args.what == "models" else decode_check)(args, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
