"""CAM throughput: our batched pipeline against forward-only, torchcam's CAM and pytorch-grad-cam.

    .venv/bin/python bench/cam_throughput.py [--size 224] [--batch 32] [--rounds 7]

Same model (an untrained ResNet-18 from models.build_model, eval mode; weights do not change the
cost) and the same images for every contender, measured in one run, interleaved round by round,
median images/s reported. Endpoints:

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

Precision: fp32 everywhere unless the CPU has native bf16 (checked at run time, never assumed)
and --precision auto/bf16 asks for it; the printout says which precision each figure used.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cams.cam import CAM
from cams.gradcam import GradCAM
from cams.render import encode_png, postprocess, render_overlays
from models import build_model


def cpu_has_native_bf16() -> bool:
    """True only when this CPU runs bf16 matmuls natively (AVX-512 BF16 or AMX), checked now."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:
        return False


def measure(fn: Callable[[], object], images: int, rounds: int) -> list[float]:
    """Images per second of `fn` over `rounds` timed calls."""
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        rates.append(images / (time.perf_counter() - start))
    return rates


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
        help="auto: bf16 autocast + channels_last only on CPUs with native bf16",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (0: PyTorch's default). On a shared machine 1 avoids the OpenMP "
        "barrier waits that make every small op cost a scheduler time slice",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    native_bf16 = cpu_has_native_bf16()
    use_bf16 = args.precision == "bf16" or (args.precision == "auto" and native_bf16)
    if use_bf16 and not native_bf16:
        print("note: this CPU has no native bf16; bf16 autocast will be emulated and slow")
    precision = "bf16 autocast + channels_last" if use_bf16 else "fp32"

    torch.manual_seed(0)
    model = build_model(args.arch, 10, "baseline").eval()
    x = torch.randn(args.batch, 3, args.size, args.size)
    if use_bf16:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    labels = torch.arange(args.batch) % 10
    pixels = torch.randint(0, 256, (args.batch, args.size, args.size, 3), dtype=torch.uint8)
    size = (args.size, args.size)
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if use_bf16 else nullcontext

    from pytorch_grad_cam import GradCAM as ReferenceGradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    from torchcam.methods import CAM as ReferenceCAM

    ours_cam, ours_grad = CAM(model), GradCAM(model)
    targets = [ClassifierOutputTarget(int(c)) for c in labels]

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
        with ReferenceCAM(model, target_layer="features", fc_layer="fc", input_shape=(3, *size)) as extractor:
            with torch.no_grad(), autocast():
                model(x)
            maps = extractor(class_idx=labels.tolist(), normalized=True)[0]
        return F.interpolate(maps[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]

    def ours_gradcam_map():
        with autocast():
            batch = ours_grad(x, labels)
        return postprocess(batch.maps, size)

    def reference_gradcam_map():
        # hooks live only inside the call, like torchcam's, so they never slow the other contenders
        with ReferenceGradCAM(model=model, target_layers=[model.features]) as reference, autocast():
            return reference(input_tensor=x, targets=targets)

    def ours_png():
        _, overlays = ours_render()
        return [encode_png(o) for o in overlays.numpy()]

    contenders = {
        "forward only": forward_only,
        "ours: CAM + render (overlays)": ours_render,
        "ours: CAM map": ours_map,
        "torchcam CAM map": torchcam_map,
        "ours: Grad-CAM map": ours_gradcam_map,
        "pytorch-grad-cam GradCAM map": reference_gradcam_map,
        "ours: CAM + render + PNG": ours_png,
    }
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    for fn in contenders.values():
        fn()  # warm-up
    order = list(contenders)
    shuffler = random.Random(0)
    for _ in range(args.rounds):  # interleaved in a new order each round, so load spikes hit all alike
        shuffler.shuffle(order)
        for name in order:
            rates[name] += measure(contenders[name], args.batch, 1)
    median = {name: statistics.median(values) for name, values in rates.items()}

    print(
        f"{args.arch}, {args.batch} images of {args.size}x{args.size} px, {torch.get_num_threads()} threads, "
        f"precision {precision} (native bf16 on this CPU: {native_bf16}); median of {args.rounds} rounds"
    )
    print(f"{'contender':34s} {'images/s':>9s}")
    for name, value in median.items():
        print(f"{name:34s} {value:9.1f}")
    ratios = [
        (
            "CAM + render vs forward only",
            median["ours: CAM + render (overlays)"] / median["forward only"],
            0.9,
        ),
        ("ours CAM vs torchcam CAM", median["ours: CAM map"] / median["torchcam CAM map"], 1.0),
        (
            "ours Grad-CAM vs pytorch-grad-cam",
            median["ours: Grad-CAM map"] / median["pytorch-grad-cam GradCAM map"],
            3.0,
        ),
        (
            "ours CAM vs pytorch-grad-cam",
            median["ours: CAM map"] / median["pytorch-grad-cam GradCAM map"],
            3.0,
        ),
    ]
    print()
    for name, ratio, target in ratios:
        print(f"{name:38s} {ratio:6.2f}x  (target >= {target:g}x: {'met' if ratio >= target else 'NOT met'})")
    print(
        f"(PNG encoding, information only: CAM + render + PNG at "
        f"{median['ours: CAM + render + PNG'] / median['forward only']:.2f}x forward only)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
