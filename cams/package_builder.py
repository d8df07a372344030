"""Build a study package: CAM pairs of chosen eval samples, blinded, for the survey.

The pipeline is batched end to end: load a batch of samples, one backbone pass per model and every
method on it (`cams.explain`), filter by what the models predict, the shared post-processing
(`cams.render`), then PNG encoding and content-hash names into a `PackageFolder` that appears only
when complete and valid. `python -m cams.generate` is the command; this module takes a typed
`StudyOptions`, so it can be called (and tested) without a command line.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from cams.distinction_items import (
    DistinctionWriter,
    add_distinction_checks,
    distinction_instructions,
)
from cams.loading import LoadedMethod, StudyInputError, check_comparable, load_methods, parse_method_spec
from cams.package_writer import PackageFolder, check_destination
from cams.render import encode_png, pil_to_uint8, postprocess, render_overlays
from cams.samples import iterate_samples, sample_ids
from cams.selection import (
    SelectionPlan,
    passes_filter,
    plan_by_class,
    plan_by_ids,
    plan_random,
    read_ids,
    resolve_classes,
)
from cams.study_batches import (
    Explained,
    check_samples,
    explain_on_cpu,
    item_id,
    model_inputs,
    top_predictions,
)
from models.data import Sample, build_datasets
from survey.package import (
    CANDIDATES,
    DEFAULT_DISTINCTION_QUESTION,
    SCHEMA,
    TASKS,
    CamsItem,
    CamsMethod,
    CamsSection,
    CatchTrial,
)

DEFAULT_QUESTION = "Which map better shows what makes this image a {label}?"
DEFAULT_INSTRUCTIONS = (
    "Each screen shows a photo and two coloured maps of it. Red marks where a computer model looked "
    "when it decided what the photo shows; blue marks what it ignored.\n\n"
    "Pick the map that better shows **what makes the photo the named kind of scene**. There are no "
    "right or wrong answers, except on a few check screens where one map is plainly wrong."
)


@dataclass(frozen=True)
class StudyOptions:
    """What a study package is made of (docs/cams.md lists the matching `cams.generate` flags)."""

    proposed: str  # [NAME=]RUN_OR_CKPT[:gradcam]
    baseline: str
    out: Path
    methods: tuple[str, ...] = ()  # more NAME=RUN_OR_CKPT[:gradcam]
    data: dict = field(default_factory=dict)  # data options given; the rest come from the proposed checkpoint
    classes: tuple[str, ...] | None = None  # exactly one of classes / ids / random
    ids: Path | None = None
    random: int | None = None
    per_class: int = 3
    only: str = "any"
    seed: int = 0
    target: str | None = None  # None: "truth" for pairwise; distinction maps always explain the top-k ("predicted")
    attention_checks: int = 0
    name: str | None = None  # default: the out folder's name
    question: str | None = None  # None: the task's default question
    task: str = "pairwise"  # or "distinction" (docs/study-package.md)
    overwrite: bool = False
    batch_size: int = 32
    workers: int = 0
    device: str = "cpu"
    progress: bool = True
    command: str = ""  # the command line, for the manifest's provenance


# -------------------------------------------------------------------------------------- writing
class ItemWriter:
    """Renders and stores the files of accepted samples, and builds their manifest entries and their
    `cams` section entries."""

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
        self.extra: dict[str, CamsItem] = {}

    def add(self, samples: list[Sample], result: Explained, *, check: dict | None = None) -> None:
        """Items for `samples` (a batch) from each method's raw maps (rows aligned with `samples`)."""
        pixels = pil_to_uint8([s.image for s in samples])
        overlays, heatmaps = {}, {}
        for item in self.loaded:
            heat, over = render_overlays(result.maps[item.name], pixels)
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
                name: top_predictions(result.probs[name][j], self.class_labels) for name in result.probs
            }
            entry["attention_check"] = check is not None
            if check is not None:
                entry["expected"] = check["expected"][j]
            self.items.append(entry)
            self.extra[entry_id] = CamsItem(
                sample=sample.id,
                label_index=int(sample.label),
                targets={name: int(result.classes[name][j]) for name in result.classes},
                check=None if check is None else CatchTrial(check["expected"][j], check["kind"][j]),
            )


def select_and_write(
    options: StudyOptions, loaded: list[LoadedMethod], val: Dataset, plan: SelectionPlan, writer: ItemWriter | DistinctionWriter
) -> set[int]:
    """Walk the plan in batches, keep samples that pass `only` until every quota is met; returns
    the dataset indices taken."""
    proposed, baseline = loaded[0].name, loaded[1].name
    taken: set[int] = set()
    total = sum(plan.quotas.values())
    bar = tqdm(total=total, desc="selecting + rendering", unit="item", disable=not options.progress)
    try:
        for batch in iterate_samples(val, plan.candidates, options.batch_size, options.workers):
            batch = [(p, s) for p, s in batch if plan.wants(p)]
            if not batch:
                if plan.full:
                    break
                continue
            samples = [s for _, s in batch]
            result = explain_on_cpu(loaded, *model_inputs(samples, options.device), options.target)
            keep = []
            for j, (position, sample) in enumerate(batch):
                top1 = {name: int(result.probs[name][j].argmax()) for name in (proposed, baseline)}
                if plan.wants(position) and passes_filter(options.only, sample.label, top1[proposed], top1[baseline]):
                    plan.take(position)
                    keep.append(j)
                    taken.add(plan.candidates[position])
            if keep:
                writer.add([samples[j] for j in keep], result.rows(keep))
                bar.update(len(keep))
            if plan.full:
                break
    finally:
        bar.close()
    return taken


def add_attention_checks(
    options: StudyOptions, loaded: list[LoadedMethod], val: Dataset, taken: set[int], writer: ItemWriter
) -> None:
    """Catch trials: one method's map is the real one (`expected`), every other map is deliberately
    wrong: the map of the least likely class, or the real map flipped upside down. Samples come
    from outside the study where possible, and preferably ones that every model gets right."""
    count = options.attention_checks
    proposed, baseline = loaded[0].name, loaded[1].name
    rng = np.random.default_rng([options.seed, 1])
    samples = check_samples(loaded, val, taken, count, rng=rng, batch_size=options.batch_size,
                            workers=options.workers, device=options.device, target=options.target)
    expected = rng.permutation([proposed, baseline] * ((count + 1) // 2))[:count].tolist()
    kinds = [("wrong-class", "flipped")[k % 2] for k in range(count)]
    images, labels = model_inputs(samples, options.device)
    result = explain_on_cpu(loaded, images, labels, options.target)
    least_likely = {name: probs.argmin(1) for name, probs in result.probs.items()}
    wrong = explain_on_cpu(loaded, images, labels, options.target, classes=least_likely)
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
                classes[item.name][j] = wrong.classes[item.name][j]
                raw[item.name][j] = wrong.maps[item.name][j]
    writer.add(samples, Explained(raw, classes, result.probs), check={"expected": expected, "kind": kinds})


def looks_alike(first: torch.Tensor, second: torch.Tensor) -> bool:
    """Whether two raw maps would look much the same after post-processing (correlation > 0.5):
    a vertically symmetric map flipped is no catch trial."""
    a, b = postprocess(torch.stack([first, second]), tuple(first.shape)).flatten(1)
    if a.std() == 0 or b.std() == 0:
        return True
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1]) > 0.5


# ------------------------------------------------------------------------------------------ build
def code_version() -> str:
    """`git rev-parse HEAD` of this checkout (+ '-dirty' with uncommitted changes), or 'unknown'."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here, capture_output=True, text=True, timeout=10, check=False,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def resolve_task_options(options: StudyOptions) -> StudyOptions:
    """Task-dependent defaults filled in (target, question), and the task's own rules checked."""
    if options.task not in TASKS:
        raise StudyInputError(f"unknown --task {options.task!r}; choose one of {', '.join(TASKS)}")
    if options.task == "pairwise":
        question = DEFAULT_QUESTION if options.question is None else options.question
        if "{label}" not in question:
            raise StudyInputError("--question must contain {label}, e.g. " + repr(DEFAULT_QUESTION))
        return replace(options, target=options.target or "truth", question=question)
    if options.target not in (None, "predicted"):
        raise StudyInputError(
            "--target does not apply to --task distinction: its maps explain each model's top classes, "
            "rank 1 being the prediction; leave --target out"
        )
    question = DEFAULT_DISTINCTION_QUESTION if options.question is None else options.question
    if "{label}" in question:
        raise StudyInputError("a distinction --question must not contain {label} (the item's class would give "
                              "the model's prediction away); leave --question out for the default")
    return replace(options, target="predicted", question=question)


def check_options(options: StudyOptions) -> str:
    """The study name, after the checks that need no model or data (fail before the slow part)."""
    name = options.name or options.out.name
    if not name or len(name) > 64 or not all(c.isalnum() and c.isascii() or c in "_-" for c in name):
        raise StudyInputError(f"study name {name!r} must match [A-Za-z0-9_-]{{1,64}}; pass --name")
    if options.batch_size < 1 or options.attention_checks < 0:
        raise StudyInputError("--batch-size must be >= 1 and --attention-checks >= 0")
    if sum(x is not None for x in (options.classes, options.ids, options.random)) != 1:
        raise StudyInputError("choose the samples with exactly one of --classes, --ids, --random")
    check_destination(options.out.absolute(), options.overwrite)  # before the slow part, and again at the end
    return name


def load_study_methods(options: StudyOptions) -> list[LoadedMethod]:
    """Proposed, baseline and the other methods, loaded once per checkpoint and checked comparable."""
    specs = [parse_method_spec(options.proposed, "proposed"), parse_method_spec(options.baseline, "baseline")]
    specs += [parse_method_spec(text) for text in options.methods]
    loaded = load_methods(specs, options.device)
    if not loaded[0].spec.named and loaded[0].info.head == "vib":
        loaded[0].spec = replace(loaded[0].spec, name="vib")  # the default name says what it is
        if loaded[0].name in [m.name for m in loaded[1:]]:
            raise StudyInputError(
                "two methods are called 'vib'; name the proposed one with --proposed NAME=PATH"
            )
    check_comparable(loaded)
    return loaded


def build_study(options: StudyOptions) -> tuple[Path, dict]:
    """The whole package; returns its folder and manifest. Raises StudyInputError, CheckpointError or
    PackageError (all one-line reasons) for bad input; then nothing is left."""
    options = resolve_task_options(options)
    name = check_options(options)
    loaded = load_study_methods(options)
    data = {**loaded[0].info.data, **options.data}
    try:
        datasets = build_datasets(data, progress=options.progress)
    except (ValueError, OSError) as error:
        raise StudyInputError(f"data: {error}") from None
    val = datasets.val
    check_comparable(loaded, datasets.class_names, f"the data ({datasets.description})")
    distinction = options.task == "distinction"
    if distinction and len(datasets.class_names) < CANDIDATES:
        raise StudyInputError(f"--task distinction shows each model's top {CANDIDATES} classes, but the data has "
                              f"only {len(datasets.class_names)} classes; use data with at least {CANDIDATES}")

    if options.classes is not None:
        classes = resolve_classes(list(options.classes), datasets.class_names, datasets.class_labels)
        plan = plan_by_class(val.labels, classes, options.per_class, options.seed, datasets.class_names)
    elif options.ids is not None:
        plan = plan_by_ids(read_ids(options.ids), {sid: i for i, sid in enumerate(sample_ids(val))})
    else:
        plan = plan_random(options.random, len(val), options.seed)

    with PackageFolder(options.out, options.overwrite) as package, ThreadPoolExecutor(2) as encoder:
        if distinction:
            writer = DistinctionWriter(package, name, loaded, datasets.class_labels, encoder,
                                       k=CANDIDATES, seed=options.seed, device=options.device)
        else:
            writer = ItemWriter(package, name, loaded, datasets.class_labels, encoder)
        taken = select_and_write(options, loaded, val, plan, writer)
        if not writer.items:
            raise StudyInputError(
                f"empty selection: no sample passed --only {options.only}; "
                "use --only any, more classes or a larger --per-class/--random"
            )
        for group, (got, wanted) in plan.shortfall().items():
            print(f"warning: {group}: only {got} of {wanted} samples passed --only {options.only}", file=sys.stderr)
        if options.attention_checks and distinction:
            add_distinction_checks(loaded, val, taken, writer, options.attention_checks, seed=options.seed,
                                   batch_size=options.batch_size, workers=options.workers, device=options.device)
        elif options.attention_checks:
            add_attention_checks(options, loaded, val, taken, writer)
        order = np.random.default_rng([options.seed, 2]).permutation(len(writer.items))
        section = CamsSection(
            target=options.target,
            only=options.only,
            seed=options.seed,
            image_size=datasets.options["image_size"],
            data=datasets.options,
            class_names=tuple(datasets.class_names),
            class_labels=tuple(datasets.class_labels),
            methods={m.name: CamsMethod(m.spec.cam, m.info.arch, m.info.head, m.info.beta) for m in loaded},
            items=writer.extra,
        )
        manifest = {
            "schema": SCHEMA,
            **({"task": "distinction"} if distinction else {}),
            "name": name,
            "created_at": datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
            "proposed": loaded[0].name,
            "baseline": loaded[1].name,
            "methods": [m.name for m in loaded],
            "question": options.question,
            "instructions": distinction_instructions(CANDIDATES) if distinction else DEFAULT_INSTRUCTIONS,
            "items": [writer.items[k] for k in order],
            "provenance": {
                "command": options.command,
                "code_version": code_version(),
                "checkpoints": {
                    m.name: {"path": str(m.info.path.resolve()), "sha256": m.info.sha256} for m in loaded
                },
            },
            "cams": section.to_json(),
        }
        return package.commit(manifest), manifest
