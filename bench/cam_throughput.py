"""CAM throughput: our batched pipeline against forward-only, torchcam's CAM and pytorch-grad-cam.

    .venv/bin/python bench/cam_throughput.py [--size 224] [--batch 32] [--rounds 7]

Same model (an untrained ResNet-18 from models.build_model, eval mode; weights do not change the
cost) and the same images for every contender, measured in one run, interleaved round by round,
median images/s reported by the wall clock and by CPU time (cleaner on a shared machine). Endpoints:

- forward only:          model(x)
- ours, CAM + render:    one forward, CAM, ReLU, bilinear upsample, min-max, jet LUT, alpha overlay
                         (uint8 overlays ready for PNG encoding; target >= 0.9 x forward only)
- ours, CAM map:         one forward, CAM, ReLU, upsample, min-max (normalised image-size maps)
- torchcam CAM:          model(x) with torchcam's hook, CAM(normalized=True), F.interpolate to the
                         image size (the same endpoint; target: ours >= 1.0x)
- ours, Grad-CAM map:    Grad-CAM (gradient through the head only) + the same post-processing
- pytorch-grad-cam:      GradCAM(target_layers=[model.features]) -> normalised image-size maps
                         (target: ours >= 3x)
- ours, to PNG:          CAM + render + PNG encoding of every overlay (information only)

Precision: every contender runs in fp32. Where bf16 is used (--precision auto on a CPU with native
bf16, checked at run time; or --precision bf16), our pipeline, forward only and torchcam run in bf16
autocast + channels_last *as well*, and both figures are reported. pytorch-grad-cam supports fp32 only
(its numpy post-processing refuses bf16), so it is compared like with like against our fp32 figure, and
separately against our bf16 figure ("each at its best").

    .venv/bin/python bench/cam_throughput.py --smoke      # a few seconds: does it still run?
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext

import torch
import torch.nn.functional as F


from testing.benchmark import add_smoke_flag, print_header
from cams.cam import CAM
from cams.gradcam import GradCAM
from cams.render import encode_png, postprocess, render_overlays
from models import build_model
from models.precision import cpu_has_native_bf16

SMOKE = ["--size", "32", "--batch", "2", "--rounds", "1", "--threads", "1"]


def measure(fn: Callable[[], object], images: int) -> tuple[float, float]:
    """Images per second of one call of `fn`: by the wall clock, and by this process's CPU time.

    On a shared machine other jobs stretch the wall clock, not the CPU time; with --threads 1 the CPU
    time is the cleaner measure of the work (pytorch-grad-cam's numpy/cv2 threads are counted too)."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return images / (time.perf_counter() - wall), images / max(time.process_time() - cpu, 1e-9)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--size", type=int, default=224, help="image side in pixels")
    parser.add_argument("--batch", type=int, default=32, help="images per batch")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per contender (median reported)")
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="auto: also bf16 autocast + channels_last, only on CPUs with native bf16; fp32 figures always",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (0: PyTorch's default). On a shared machine 1 avoids the OpenMP "
        "barrier waits that make every small op cost a scheduler time slice",
    )
    add_smoke_flag(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args = parser.parse_args([*SMOKE, *(argv if argv is not None else sys.argv[1:])])
    if args.threads:
        torch.set_num_threads(args.threads)
    print_header("CAM throughput (bench/cam_throughput.py)")

    native_bf16 = cpu_has_native_bf16()
    use_bf16 = args.precision == "bf16" or (args.precision == "auto" and native_bf16)
    if use_bf16 and not native_bf16:
        print("note: this CPU has no native bf16; bf16 autocast will be emulated and slow")
    precisions = ["fp32", "bf16"] if use_bf16 else ["fp32"]

    torch.manual_seed(0)
    model = build_model(args.arch, 10, "baseline").eval()
    x = torch.randn(args.batch, 3, args.size, args.size)
    if use_bf16:  # channels_last for both precisions, so fp32 and bf16 figures share the model and input
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    labels = torch.arange(args.batch) % 10
    pixels = torch.randint(0, 256, (args.batch, args.size, args.size, 3), dtype=torch.uint8)
    size = (args.size, args.size)

    from pytorch_grad_cam import GradCAM as ReferenceGradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    from torchcam.methods import CAM as ReferenceCAM

    ours_cam, ours_grad = CAM(model), GradCAM(model)
    targets = [ClassifierOutputTarget(int(c)) for c in labels]

    def contenders_in(precision: str) -> dict[str, Callable[[], object]]:
        """Our pipeline, forward only and torchcam, run under `precision`'s autocast."""

        def autocast():
            return torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()

        def forward_only():
            with torch.inference_mode(), autocast():
                return model(x)

        def ours_render():
            with autocast():
                batch = ours_cam(x, labels)
            return render_overlays(batch.maps, pixels)

        def ours_map():
            with autocast():
                batch = ours_cam(x, labels)
            return postprocess(batch.maps, size)

        def torchcam_map():
            hooks = ReferenceCAM(model, target_layer="features", fc_layer="fc", input_shape=(3, *size))
            with hooks as extractor:
                with torch.no_grad(), autocast():
                    model(x)
                maps = extractor(class_idx=labels.tolist(), normalized=True)[0]
            return F.interpolate(maps[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]

        def ours_gradcam_map():
            with autocast():
                batch = ours_grad(x, labels)
            return postprocess(batch.maps, size)

        def ours_png():
            _, overlays = ours_render()
            return [encode_png(o) for o in overlays.numpy()]

        named = {
            "forward only": forward_only,
            "ours: CAM + render (overlays)": ours_render,
            "ours: CAM map": ours_map,
            "torchcam CAM map": torchcam_map,
            "ours: Grad-CAM map": ours_gradcam_map,
            "ours: CAM + render + PNG": ours_png,
        }
        return {f"{name} [{precision}]": fn for name, fn in named.items()}

    def reference_gradcam_map():
        # fp32 only (the library's own limit); hooks live only inside the call, like torchcam's
        with ReferenceGradCAM(model=model, target_layers=[model.features]) as reference:
            return reference(input_tensor=x, targets=targets)

    contenders: dict[str, Callable[[], object]] = {}
    for precision in precisions:
        contenders.update(contenders_in(precision))
    contenders["pytorch-grad-cam GradCAM map [fp32]"] = reference_gradcam_map
    rates: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
    for fn in contenders.values():
        fn()  # warm-up
    order = list(contenders)
    shuffler = random.Random(0)
    for _ in range(args.rounds):  # interleaved in a new order each round, so load spikes hit all alike
        shuffler.shuffle(order)
        for name in order:
            rates[name].append(measure(contenders[name], args.batch))
    medians = {clock: {name: statistics.median(r[column] for r in values) for name, values in rates.items()}
               for column, clock in enumerate(("wall", "cpu"))}

    print(
        f"{args.arch}, {args.batch} images of {args.size}x{args.size} px, {torch.get_num_threads()} threads, "
        f"precisions {' and '.join(precisions)}{' (bf16 = autocast + channels_last)' if use_bf16 else ''}; "
        f"median of {args.rounds} rounds"
    )
    print(f"{'contender':42s} {'images/s (wall)':>16s} {'images/s (CPU time)':>20s}")
    for name in contenders:
        print(f"{name:42s} {medians['wall'][name]:16.1f} {medians['cpu'][name]:20.1f}")
    for clock in ("wall", "cpu"):
        median = medians[clock]
        reference = median["pytorch-grad-cam GradCAM map [fp32]"]
        ratios = []
        for p in precisions:
            ratios += [
                (f"CAM + render vs forward only [{p}]",
                 median[f"ours: CAM + render (overlays) [{p}]"] / median[f"forward only [{p}]"], 0.9),
                (f"ours CAM vs torchcam CAM [{p}]",
                 median[f"ours: CAM map [{p}]"] / median[f"torchcam CAM map [{p}]"], 1.0),
            ]
        ratios += [
            ("ours Grad-CAM vs pytorch-grad-cam [fp32]",
             median["ours: Grad-CAM map [fp32]"] / reference, 3.0),
            ("ours CAM vs pytorch-grad-cam [fp32]", median["ours: CAM map [fp32]"] / reference, 3.0),
        ]
        print(f"\nratios by {'the wall clock' if clock == 'wall' else 'CPU time'}:")
        for name, ratio, target in ratios:
            verdict = "met" if ratio >= target else "NOT met"
            print(f"{name:48s} {ratio:6.2f}x  (target >= {target:g}x: {verdict})")
        if use_bf16:
            best = median["ours: Grad-CAM map [bf16]"] / reference
            print(f"{'ours Grad-CAM [bf16] vs pytorch-grad-cam [fp32]':48s} "
                  f"{best:6.2f}x  (each at its best; information only)")
        for p in precisions:
            png = median[f"ours: CAM + render + PNG [{p}]"] / median[f"forward only [{p}]"]
            print(f"(PNG encoding, information only: CAM + render + PNG at {png:.2f}x forward only [{p}])")
    return 0


if __name__ == "__main__":
    sys.exit(main())
