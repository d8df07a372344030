"""Make a study package: CAM pairs of chosen eval samples, blinded, for the survey.

    python -m cams.generate --proposed runs/vib --baseline runs/base \\
        --classes waiting_room,television_studio --per-class 3 --only both-correct --out studies/demo

See docs/cams.md for every option and docs/study-package.md for the manifest. The pipeline is
batched end to end: load a batch of samples, one forward pass per model, raw maps for every
method, the shared post-processing (`cams.render`), then PNG encoding and content-hash names.
"""

from __future__ import annotations

import argparse
import hashlib
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from cams.base import TARGETS, select_targets
from cams.loading import (
    LoadedMethod,
    StudyInputError,
    check_comparable,
    distinct_models,
    load_methods,
    parse_method_spec,
)
from cams.package_writer import PackageFolder, check_destination
from cams.render import encode_png, pil_to_uint8, postprocess, render_overlays
from cams.selection import (
    FILTERS,
    SelectionPlan,
    passes_filter,
    plan_by_class,
    plan_by_ids,
    plan_random,
    read_ids,
    resolve_classes,
)
from models.checkpoint import CheckpointError
from models.data import OPTION_NAMES, BadImageError, Sample, add_data_arguments, build_datasets
from models.data.transforms import to_model_input
from survey.package import SCHEMA, PackageError

DEFAULT_QUESTION = "Which map better shows what makes this image a {label}?"
DEFAULT_INSTRUCTIONS = (
    "Each screen shows a photo and two coloured maps of it. Red marks where a computer model looked "
    "when it decided what the photo shows; blue marks what it ignored.\n\n"
    "Pick the map that better shows **what makes the photo the named kind of scene**. There are no "
    "right or wrong answers, except on a few check screens where one map is plainly wrong."
)
TOP_K = 3
UNSET = object()  # marks data options the user did not give (they then come from the checkpoint)


# --------------------------------------------------------------------------------------- parsing
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cams.generate",
        description="Precompute CAMs of two (or more) checkpoints for chosen samples and write a blinded "
        "study package (manifest.json + images) for the survey.",
        epilog="Data options you do not give are taken from the proposed checkpoint's recorded data options, "
        "so the eval set is rebuilt exactly as it was in training. See docs/cams.md.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    models = parser.add_argument_group("methods")
    models.add_argument(
        "--proposed",
        required=True,
        metavar="[NAME=]RUN_OR_CKPT[:gradcam]",
        help="the proposed model (run folder or .pt); named 'vib' for a VIB checkpoint, "
        "else 'proposed', unless NAME= is given",
    )
    models.add_argument(
        "--baseline",
        required=True,
        metavar="[NAME=]RUN_OR_CKPT[:gradcam]",
        help="the baseline model; named 'baseline' unless NAME= is given",
    )
    models.add_argument(
        "--method",
        action="append",
        default=[],
        metavar="NAME=RUN_OR_CKPT[:gradcam]",
        help="one more method to show (repeatable); ':gradcam' uses Grad-CAM instead of CAM",
    )
    add_data_arguments(parser)
    pick = parser.add_argument_group("selection (exactly one of --classes, --ids, --random)")
    how = pick.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--classes", help="comma-separated class keys or labels, e.g. waiting_room,television_studio"
    )
    how.add_argument("--ids", type=Path, metavar="FILE", help="file with one sample id per line")
    how.add_argument("--random", type=int, metavar="N", help="N samples drawn at random from the eval set")
    pick.add_argument("--per-class", type=int, default=3, help="samples per class with --classes")
    pick.add_argument(
        "--only",
        choices=FILTERS,
        default="any",
        help="keep samples both proposed and baseline classify correctly, or where they disagree",
    )
    pick.add_argument(
        "--seed", type=int, default=0, help="seed for sample order, catch trials and item order"
    )
    parser.add_argument(
        "--target",
        choices=TARGETS,
        default="truth",
        help="class each map explains: the ground truth or each model's top-1 prediction",
    )
    parser.add_argument(
        "--attention-checks",
        type=int,
        default=0,
        metavar="N",
        help="add N catch trials where all maps but one are deliberately wrong",
    )
    parser.add_argument("--name", help="study name [A-Za-z0-9_-] (None: the --out folder's name)")
    parser.add_argument(
        "--question", default=DEFAULT_QUESTION, help="question shown to raters; must contain {label}"
    )
    parser.add_argument("--out", type=Path, required=True, help="package folder to create")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing package at --out")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass")
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device for the models"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse with data options left unset unless given, so the rest come from the checkpoint."""
    parser = build_parser()
    namespace = argparse.Namespace(**{name: UNSET for name in OPTION_NAMES})
    return parser.parse_args(argv, namespace=namespace)


def given_data_options(args: argparse.Namespace) -> dict:
    return {name: getattr(args, name) for name in OPTION_NAMES if getattr(args, name) is not UNSET}


# -------------------------------------------------------------------------------------- loading
class _Samples(Dataset):
    """Eval samples by index; an unreadable image comes back as its error message, not an exception,
    so the main process can report it in one line."""

    def __init__(self, val: Dataset, indices: list[int]) -> None:
        self.val, self.indices = val, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> tuple[int, Sample | None, str | None]:
        try:
            return position, self.val.sample(self.indices[position]), None
        except (BadImageError, OSError) as error:
            return position, None, str(error)


def iterate_samples(val: Dataset, indices: list[int], batch_size: int, workers: int):
    """Batches of (position, Sample) in order; raises StudyInputError on an unreadable image."""
    loader = DataLoader(
        _Samples(val, indices), batch_size=batch_size, num_workers=workers, collate_fn=list, shuffle=False
    )
    for batch in loader:
        for _, _, error in batch:
            if error is not None:
                raise StudyInputError(f"unreadable image: {error}")
        yield [(position, sample) for position, sample, _ in batch]


def sample_ids(val: Dataset) -> list[str]:
    """Every eval sample's id, in index order (from the listing when the dataset has one)."""
    items = getattr(val, "items", None)
    if isinstance(items, list) and all(isinstance(i, tuple) for i in items):
        return [relative for relative, _ in items]
    return [val.load(i).id for i in range(len(val))]


# ---------------------------------------------------------------------------------- computation
@dataclass
class Explained:
    """One batch through every model: raw maps and target class per method, probabilities per model."""

    maps: dict[str, torch.Tensor] = field(default_factory=dict)
    classes: dict[str, torch.Tensor] = field(default_factory=dict)
    probs: dict[str, torch.Tensor] = field(default_factory=dict)  # by method name (shared tensors)


@torch.no_grad()
def explain(loaded: list[LoadedMethod], images: torch.Tensor, labels: torch.Tensor, target: str) -> Explained:
    """One backbone pass per distinct model; every method on it reuses those feature maps."""
    out = Explained()
    for _, group in distinct_models(loaded):
        feats = group[0].method.features(images)
        logits = group[0].method.logits(feats)
        probs = logits.float().softmax(1)
        for item in group:
            classes = select_targets(logits, labels, target)
            out.maps[item.name] = item.method.maps_from_features(feats, classes).cpu()
            out.classes[item.name] = classes.cpu()
            out.probs[item.name] = probs.cpu()
    return out


def top_predictions(probs: torch.Tensor, class_labels: list[str]) -> list[dict]:
    values, indices = probs.topk(min(TOP_K, probs.numel()))
    return [{"label": class_labels[int(i)], "p": round(float(v), 4)} for v, i in zip(values, indices)]


def item_id(study: str, sample_id: str, kind: str = "item") -> str:
    """A stable id that says nothing about any method: a hash of study, sample and item kind."""
    return "i-" + hashlib.sha256(f"{study}\0{sample_id}\0{kind}".encode()).hexdigest()[:10]


# -------------------------------------------------------------------------------------- writing
class ItemWriter:
    """Renders and stores the files of accepted samples, and builds their manifest entries."""

    def __init__(
        self,
        package: PackageFolder,
        study: str,
        loaded: list[LoadedMethod],
        class_labels: list[str],
        encoder: ThreadPoolExecutor,
    ) -> None:
        self.package, self.study, self.loaded = package, study, loaded
        self.class_labels = class_labels
        self.encoder = encoder
        self.items: list[dict] = []
        self.extra: dict[str, dict] = {}

    def add(
        self,
        samples: list[Sample],
        raw: dict[str, torch.Tensor],
        classes: dict[str, torch.Tensor],
        probs: dict[str, torch.Tensor],
        *,
        check: dict | None = None,
    ) -> None:
        """Items for `samples` (a batch) from raw maps per method (rows aligned with `samples`)."""
        pixels = pil_to_uint8([s.image for s in samples])
        overlays, heatmaps = {}, {}
        for item in self.loaded:
            heat, over = render_overlays(raw[item.name], pixels)
            overlays[item.name] = self.encoder.map(encode_png, over.numpy())
            heatmaps[item.name] = heat.numpy().astype(np.float16)
        images = self.encoder.map(encode_png, pixels.numpy())
        masks = self.encoder.map(
            lambda s: None if s.mask is None else encode_png(np.asarray(s.mask.convert("L"))), samples
        )
        overlays = {name: list(values) for name, values in overlays.items()}
        for j, (sample, image_png, mask_png) in enumerate(zip(samples, images, masks)):
            entry_id = item_id(self.study, sample.id, "check" if check else "item")
            entry: dict = {
                "id": entry_id,
                "label": self.class_labels[sample.label],
                "image": self.package.write("images", image_png, ".png"),
                "maps": {name: self.package.write("maps", overlays[name][j], ".png") for name in overlays},
            }
            if mask_png is not None:
                entry["mask"] = self.package.write("masks", mask_png, ".png")
            if check is None:  # catch trials carry no heatmaps: metrics must never score a wrong map
                entry["heatmaps"] = {
                    name: self.package.write_npy("heatmaps", heatmaps[name][j]) for name in heatmaps
                }
            entry["predictions"] = {
                name: top_predictions(probs[name][j], self.class_labels) for name in probs
            }
            entry["attention_check"] = check is not None
            if check is not None:
                entry["expected"] = check["expected"][j]
            self.items.append(entry)
            self.extra[entry_id] = {
                "sample": sample.id,
                "label_index": int(sample.label),
                "targets": {name: int(classes[name][j]) for name in classes},
            }
            if check is not None:
                self.extra[entry_id]["check"] = {"expected": check["expected"][j], "kind": check["kind"][j]}


def select_and_write(
    args: argparse.Namespace,
    loaded: list[LoadedMethod],
    val: Dataset,
    plan: SelectionPlan,
    writer: ItemWriter,
    proposed: str,
    baseline: str,
) -> set[int]:
    """Walk the plan in batches, keep samples that pass `--only` until every quota is met; returns
    the dataset indices taken."""
    taken: set[int] = set()
    total = sum(plan.quotas.values())
    bar = tqdm(total=total, desc="selecting + rendering", unit="item", disable=args.no_progress)
    try:
        for batch in iterate_samples(val, plan.candidates, args.batch_size, args.workers):
            batch = [(p, s) for p, s in batch if plan.wants(p)]
            if not batch:
                if plan.full:
                    break
                continue
            samples = [s for _, s in batch]
            images = to_model_input([s.image for s in samples]).to(args.device)
            labels = torch.tensor([s.label for s in samples], device=args.device)
            result = explain(loaded, images, labels, args.target)
            keep = []
            for j, (position, sample) in enumerate(batch):
                top1 = {name: int(result.probs[name][j].argmax()) for name in (proposed, baseline)}
                if plan.wants(position) and passes_filter(
                    args.only, sample.label, top1[proposed], top1[baseline]
                ):
                    plan.take(position)
                    keep.append(j)
                    taken.add(plan.candidates[position])
            if keep:
                rows = torch.tensor(keep)
                writer.add(
                    [samples[j] for j in keep],
                    {k: v[rows] for k, v in result.maps.items()},
                    {k: v[rows] for k, v in result.classes.items()},
                    {k: v[rows] for k, v in result.probs.items()},
                )
                bar.update(len(keep))
            if plan.full:
                break
    finally:
        bar.close()
    return taken


def add_attention_checks(
    args: argparse.Namespace,
    loaded: list[LoadedMethod],
    val: Dataset,
    taken: set[int],
    writer: ItemWriter,
    proposed: str,
    baseline: str,
) -> None:
    """Catch trials: one method's map is the real one (`expected`), every other map is deliberately
    wrong: the map of the least likely class, or the real map flipped upside down. Samples come
    from outside the study where possible, and preferably ones that every model gets right."""
    count = args.attention_checks
    rng = np.random.default_rng([args.seed, 1])
    outside = [i for i in rng.permutation(len(val)).tolist() if i not in taken]
    pool = outside + [i for i in rng.permutation(sorted(taken)).tolist()]
    expected = rng.permutation([proposed, baseline] * ((count + 1) // 2))[:count].tolist()
    kinds = [("wrong-class", "flipped")[k % 2] for k in range(count)]
    chosen: list[tuple[Sample, bool]] = []
    for batch in iterate_samples(val, pool[: max(4 * count, 32)], args.batch_size, args.workers):
        images = to_model_input([s.image for _, s in batch]).to(args.device)
        labels = torch.tensor([s.label for _, s in batch], device=args.device)
        result = explain(loaded, images, labels, args.target)
        for j, (_, sample) in enumerate(batch):
            correct = all(int(result.probs[m.name][j].argmax()) == sample.label for m in loaded)
            chosen.append((sample, correct))
        if sum(c for _, c in chosen) >= count:
            break
    chosen.sort(key=lambda pair: not pair[1])  # correctly classified first, order otherwise kept
    samples = [s for s, _ in chosen[:count]]
    if len(samples) < count:
        raise StudyInputError(
            f"the eval set has only {len(samples)} images for {count} attention checks; "
            "lower --attention-checks"
        )
    images = to_model_input([s.image for s in samples]).to(args.device)
    labels = torch.tensor([s.label for s in samples], device=args.device)
    result = explain(loaded, images, labels, args.target)
    raw = {name: maps.clone() for name, maps in result.maps.items()}
    classes = {name: c.clone() for name, c in result.classes.items()}
    for j in range(count):
        for item in loaded:
            if item.name == expected[j]:
                continue
            flipped = torch.flip(result.maps[item.name][j], dims=[0])
            if kinds[j] == "flipped" and not looks_alike(flipped, result.maps[item.name][j]):
                raw[item.name][j] = flipped
            else:
                kinds[j] = "wrong-class"
                wrong = int(result.probs[item.name][j].argmin())
                classes[item.name][j] = wrong
                raw[item.name][j] = item.method.maps(images[j : j + 1], [wrong])[0].cpu()
    writer.add(samples, raw, classes, result.probs, check={"expected": expected, "kind": kinds})


def looks_alike(first: torch.Tensor, second: torch.Tensor) -> bool:
    """Whether two raw maps would look much the same after post-processing (correlation > 0.5):
    a vertically symmetric map flipped is no catch trial."""
    a, b = postprocess(torch.stack([first, second]), tuple(first.shape)).flatten(1)
    if a.std() == 0 or b.std() == 0:
        return True
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1]) > 0.5


# ------------------------------------------------------------------------------------------ main
def code_version() -> str:
    """`git rev-parse HEAD` of this checkout (+ '-dirty' with uncommitted changes), or 'unknown'."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def method_specs(args: argparse.Namespace) -> list:
    specs = [parse_method_spec(args.proposed, "proposed"), parse_method_spec(args.baseline, "baseline")]
    specs += [parse_method_spec(text) for text in args.method]
    return specs


def generate(args: argparse.Namespace, argv: list[str]) -> tuple[Path, dict]:
    """The whole command; returns the package folder and its manifest. Raises StudyInputError,
    CheckpointError or PackageError (all one-line reasons) for bad input; then nothing is left."""
    name = args.name or args.out.name
    if not name or len(name) > 64 or not all(c.isalnum() and c.isascii() or c in "_-" for c in name):
        raise StudyInputError(f"study name {name!r} must match [A-Za-z0-9_-]{{1,64}}; pass --name")
    if "{label}" not in args.question:
        raise StudyInputError("--question must contain {label}, e.g. " + repr(DEFAULT_QUESTION))
    if args.batch_size < 1 or args.attention_checks < 0:
        raise StudyInputError("--batch-size must be >= 1 and --attention-checks >= 0")
    check_destination(args.out.absolute(), args.overwrite)  # before the slow part, and again at the end

    specs = method_specs(args)
    loaded = load_methods(specs, args.device)
    if not loaded[0].spec.named and loaded[0].info.head == "vib":
        loaded[0].spec = replace(loaded[0].spec, name="vib")  # the default name says what it is
        if loaded[0].name in [m.name for m in loaded[1:]]:
            raise StudyInputError(
                "two methods are called 'vib'; name the proposed one with --proposed NAME=PATH"
            )
    proposed, baseline = loaded[0].name, loaded[1].name
    check_comparable(loaded)

    data = {**loaded[0].info.data, **given_data_options(args)}
    try:
        datasets = build_datasets(data, progress=not args.no_progress)
    except (ValueError, OSError) as error:
        raise StudyInputError(f"data: {error}") from None
    val = datasets.val
    check_comparable(loaded, datasets.class_names, f"the data ({datasets.description})")

    if args.classes is not None:
        classes = resolve_classes(args.classes.split(","), datasets.class_names, datasets.class_labels)
        plan = plan_by_class(val.labels, classes, args.per_class, args.seed, datasets.class_names)
    elif args.ids is not None:
        plan = plan_by_ids(read_ids(args.ids), {sid: i for i, sid in enumerate(sample_ids(val))})
    else:
        plan = plan_random(args.random, len(val), args.seed)

    with PackageFolder(args.out, args.overwrite) as package, ThreadPoolExecutor(2) as encoder:
        writer = ItemWriter(package, name, loaded, datasets.class_labels, encoder)
        taken = select_and_write(args, loaded, val, plan, writer, proposed, baseline)
        if not writer.items:
            raise StudyInputError(
                f"empty selection: no sample passed --only {args.only}; "
                "use --only any, more classes or a larger --per-class/--random"
            )
        for group, (got, wanted) in plan.shortfall().items():
            print(
                f"warning: {group}: only {got} of {wanted} samples passed --only {args.only}", file=sys.stderr
            )
        if args.attention_checks:
            add_attention_checks(args, loaded, val, taken, writer, proposed, baseline)
        order = np.random.default_rng([args.seed, 2]).permutation(len(writer.items))
        manifest = {
            "schema": SCHEMA,
            "name": name,
            "created_at": datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
            "proposed": proposed,
            "baseline": baseline,
            "methods": [m.name for m in loaded],
            "question": args.question,
            "instructions": DEFAULT_INSTRUCTIONS,
            "items": [writer.items[k] for k in order],
            "provenance": {
                "command": shlex.join(["python", "-m", "cams.generate", *argv]),
                "code_version": code_version(),
                "checkpoints": {
                    m.name: {"path": str(m.info.path.resolve()), "sha256": m.info.sha256} for m in loaded
                },
            },
            "cams": {
                "target": args.target,
                "only": args.only,
                "seed": args.seed,
                "image_size": datasets.options["image_size"],
                "data": datasets.options,
                "class_names": datasets.class_names,
                "class_labels": datasets.class_labels,
                "methods": {
                    m.name: {"cam": m.spec.cam, "arch": m.info.arch, "head": m.info.head, "beta": m.info.beta}
                    for m in loaded
                },
                "items": writer.extra,
            },
        }
        return package.commit(manifest), manifest


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    try:
        out, manifest = generate(args, argv)
    except (StudyInputError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except PackageError as error:
        print(f"error: the package did not validate, nothing was written: {error}", file=sys.stderr)
        return 2
    checks = sum(item["attention_check"] for item in manifest["items"])
    print(
        f"wrote study package {out}: {len(manifest['items']) - checks} items + {checks} attention checks, "
        f"methods {', '.join(manifest['methods'])}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
