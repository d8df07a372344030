"""Synthetic scenes rendered per minute, against decoding the same scenes from PNG files.

    .venv/bin/python bench/synthetic_scenes.py [--count 300 --image-size 64 --rounds 5]

Replaces a wall-clock test (tests/models/test_models_data.py) that flaked on a busy machine: the
claim "thousands a minute on 2 cores" is a speed figure, so it is measured here, by CPU time of this
process (`time.process_time`, which other jobs do not inflate) and as a ratio to a baseline timed
in the same run: PIL decoding the very same scenes from PNG bytes, which is what a dataset on disk
costs. Rendering and decoding alternate round by round; medians are reported.
"""
from __future__ import annotations

import argparse
import io
import statistics
import time

import torch
from PIL import Image


from testing.benchmark import add_smoke_flag, print_header
from models.data.synthetic import SyntheticScenes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--count", type=int, default=300, help="scenes per round")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    add_smoke_flag(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.count, args.rounds = 10, 1
    torch.set_num_threads(1)
    print_header("synthetic scenes against PNG decoding (bench/synthetic_scenes.py)")
    scenes = SyntheticScenes(args.num_classes, args.image_size, args.count, seed=0, split="train")
    pngs = []
    for index in range(args.count):
        buffer = io.BytesIO()
        scenes.load(index).image.save(buffer, format="PNG")
        pngs.append(buffer.getvalue())

    def render() -> None:
        for index in range(args.count):
            scenes.load(index)

    def decode() -> None:
        for data in pngs:
            Image.open(io.BytesIO(data)).convert("RGB").load()

    cpu: dict[str, list[float]] = {"render": [], "decode": []}
    for round_ in range(args.rounds):
        for name, work in (("render", render), ("decode", decode))[:: 1 if round_ % 2 else -1]:
            started = time.process_time()
            work()
            cpu[name].append(time.process_time() - started)
    render_s, decode_s = statistics.median(cpu["render"]), statistics.median(cpu["decode"])
    print(f"CPU capability: {torch.backends.cpu.get_cpu_capability()}, 1 thread, {args.image_size} px, "
          f"{args.count} scenes x {args.rounds} rounds (CPU time, medians)")
    print(f"synthetic render: {args.count / render_s * 60:,.0f} scenes/min of CPU")
    print(f"PNG decode (baseline): {args.count / decode_s * 60:,.0f} images/min of CPU")
    print(f"render / decode time ratio: {render_s / decode_s:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
