"""`python -m cams.generate` end to end on tiny checkpoints: a package the survey's validator accepts,
blinded, with marked catch trials, atomic, and one clear line for every bad input."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import entropy as scipy_entropy

import cams.package_builder as builder_module
from cams.generate import main as generate
from cams.loading import StudyInputError, parse_method_spec
from cams.selection import passes_filter, resolve_classes
from survey.package import validate_package
from tests.cams.conftest import TINY_DATA, make_checkpoint
from tests.cams.test_cams_render import png_chunks

CLASSES = "red_plain_circle,green striped square"  # a key and a readable label


def run(argv: list[str], capsys) -> tuple[int, str]:
    code = generate([*argv, "--workers", "0", "--no-progress", "--batch-size", "8"])
    return code, capsys.readouterr().err


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def package(tiny_checkpoints, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("studies") / "demo"
    code = generate(
        [
            "--proposed",
            str(tiny_checkpoints["vib"]),
            "--baseline",
            str(tiny_checkpoints["baseline"]),
            "--method",
            f"gc={tiny_checkpoints['vib']}:gradcam",
            "--classes",
            CLASSES,
            "--per-class",
            "3",
            "--attention-checks",
            "2",
            "--seed",
            "5",
            "--out",
            str(out),
            "--workers",
            "0",
            "--no-progress",
        ]
    )
    assert code == 0
    return out


def test_package_is_valid_and_complete(package, tiny_checkpoints):
    assert validate_package(package) == []
    manifest = json.loads((package / "manifest.json").read_text())
    assert manifest["proposed"] == "vib" and manifest["baseline"] == "baseline"  # default names
    assert manifest["methods"] == ["vib", "baseline", "gc"]
    regular = [i for i in manifest["items"] if not i["attention_check"]]
    checks = [i for i in manifest["items"] if i["attention_check"]]
    assert len(regular) == 6 and len(checks) == 2
    assert sorted(i["label"] for i in regular) == ["green striped square"] * 3 + ["red plain circle"] * 3
    for item in regular:
        assert (
            set(item["maps"])
            == set(item["heatmaps"])
            == set(item["predictions"])
            == {"vib", "baseline", "gc"}
        )
        assert "mask" in item and "expected" not in item
        for rows in item["predictions"].values():
            assert len(rows) == 3 and [r["p"] for r in rows] == sorted((r["p"] for r in rows), reverse=True)
        heat = np.load(package / item["heatmaps"]["vib"])
        assert heat.dtype == np.float16 and heat.shape == (64, 64) and heat.min() >= 0 and heat.max() <= 1
        with Image.open(package / item["mask"]) as mask:
            assert mask.mode == "L" and mask.size == (64, 64)
    provenance = manifest["provenance"]
    assert provenance["command"].startswith("python -m cams.generate --proposed")
    assert provenance["code_version"]
    for name, path in (("vib", tiny_checkpoints["vib"]), ("baseline", tiny_checkpoints["baseline"])):
        assert provenance["checkpoints"][name]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert leftovers(package.parent) == []


def test_maps_match_a_fresh_cam_of_the_sample(package):
    """The stored heatmap is exactly the CAM of the recorded sample and class, post-processed."""
    from cams.cam import class_activation_map
    from cams.render import postprocess
    from models.checkpoint import load_model
    from models.data import build_datasets
    from models.data.transforms import to_model_input

    manifest = json.loads((package / "manifest.json").read_text())
    model, _ = load_model(manifest["provenance"]["checkpoints"]["baseline"]["path"])
    val = build_datasets(manifest["cams"]["data"], progress=False).val
    item = next(i for i in manifest["items"] if not i["attention_check"])
    extra = manifest["cams"]["items"][item["id"]]
    index = int(extra["sample"].rsplit("-", 1)[1])
    sample = val.sample(index)
    assert sample.id == extra["sample"] and extra["targets"]["baseline"] == sample.label
    expected = postprocess(
        class_activation_map(model, to_model_input([sample.image]), [sample.label]), (64, 64)
    )
    stored = np.load(package / item["heatmaps"]["baseline"]).astype(np.float32)
    assert np.abs(stored - expected[0].numpy()).max() < 1e-3  # float16 storage
    # The same map without cams' own functions: fc row x feature maps, ReLU, bilinear
    # (half-pixel centres) upsampling, min-max, all written out here.
    with torch.no_grad():
        features = model.features(to_model_input([sample.image]))[0].double().numpy()  # C x h x w
    weights = model.fc.weight[sample.label].detach().double().numpy()
    raw = np.maximum(np.tensordot(weights, features, axes=1), 0.0)  # h x w
    h, w = raw.shape

    def bilinear(size: int, source: int) -> np.ndarray:
        """size x source interpolation weights, align_corners=False (edges clamped)."""
        out = np.zeros((size, source))
        for i in range(size):
            x = min(max((i + 0.5) * source / size - 0.5, 0.0), source - 1)
            lo = int(np.floor(x))
            hi = min(lo + 1, source - 1)
            out[i, lo] += 1 - (x - lo)
            out[i, hi] += x - lo
        return out

    up = bilinear(64, h) @ raw @ bilinear(64, w).T
    by_hand = (up - up.min()) / (up.max() - up.min())
    assert np.abs(stored - by_hand).max() < 2e-3
    with Image.open(package / item["image"]) as image:
        assert np.array_equal(np.asarray(image), np.asarray(sample.image))


def test_nothing_reveals_the_method(package):
    manifest = json.loads((package / "manifest.json").read_text())
    for path in sorted(p for p in package.rglob("*") if p.is_file() and p.name != "manifest.json"):
        data = path.read_bytes()
        assert path.stem == hashlib.sha256(data).hexdigest()[:20]  # content-hash names
        assert not any(word in path.name.lower() for word in ("vib", "baseline", "gc", "proposed"))
        if path.suffix == ".png":
            assert set(png_chunks(data)) == {"IHDR", "IDAT", "IEND"}  # no text/time/gamma chunks
    for item in manifest["items"]:
        assert re.fullmatch(r"i-[0-9a-f]{10}", item["id"])
        for relative in [item["image"], *item["maps"].values(), *item.get("heatmaps", {}).values()]:
            assert not any(m in relative for m in ("vib", "baseline", "proposed"))


def test_attention_checks_are_marked_and_wrong(package):
    manifest = json.loads((package / "manifest.json").read_text())
    checks = [i for i in manifest["items"] if i["attention_check"]]
    assert sorted(i["expected"] for i in checks) == ["baseline", "vib"]  # balanced between the two
    regular_images = {i["image"] for i in manifest["items"] if not i["attention_check"]}
    for item in checks:
        assert "heatmaps" not in item  # metrics never score a deliberately wrong map
        assert item["image"] not in regular_images  # a fresh sample where the eval set allows
        extra = manifest["cams"]["items"][item["id"]]
        kind = extra["check"]["kind"]
        assert kind in ("wrong-class", "flipped") and extra["check"]["expected"] == item["expected"]
        for method in ("vib", "baseline"):
            if method != item["expected"]:
                assert item["maps"][method] != item["maps"][item["expected"]]
                if kind == "wrong-class":
                    assert extra["targets"][method] != extra["label_index"]


def test_metrics_compare_and_figure_on_the_package(package, tmp_path):
    from cams.compare import main as compare
    from cams.figure import main as figure
    from cams.metrics import COLUMNS
    from cams.metrics.__main__ import main as metrics

    assert metrics([str(package), "--sanity", "--steps", "4", "--no-progress"]) == 0
    tmp_path = package.with_name(package.name + "-metrics")  # the default: beside the package, not in it
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert (
        lines[0]
        == ",".join(COLUMNS)
        == "item,method,pointing_game,energy_in_mask,deletion_auc,insertion_auc,gini,entropy"
    )
    rows = [dict(zip(COLUMNS, line.split(","))) for line in lines[1:]]
    manifest = json.loads((package / "manifest.json").read_text())
    regular = {i["id"] for i in manifest["items"] if not i["attention_check"]}
    assert len(rows) == 3 * len(regular) and {r["item"] for r in rows} == regular
    for row in rows:
        for column in COLUMNS[2:]:
            assert 0.0 <= float(row[column]) <= 1.0, row
    # The map metrics recomputed from the stored heatmaps and masks with textbook formulas
    # (deletion/insertion need the models; their range is all that is checked above).
    items = {i["id"]: i for i in manifest["items"]}
    checked = 0
    for row in rows:
        entry = items[row["item"]]
        heat = np.load(package / entry["heatmaps"][row["method"]]).astype(np.float64)
        with Image.open(package / entry["mask"]) as picture:
            inside = np.asarray(picture.convert("L")) > 127
        mass = heat / heat.sum() if heat.sum() > 0 else np.full(heat.shape, 1.0 / heat.size)
        lorenz = np.cumsum(np.sort(mass.ravel()))
        reference = {
            "pointing_game": inside[heat == heat.max()].mean(),
            "energy_in_mask": mass[inside].sum(),
            "gini": (heat.size + 1 - 2 * lorenz.sum() / lorenz[-1]) / heat.size,  # 1 - 2 x area under Lorenz
            "entropy": scipy_entropy(mass.ravel()) / np.log(heat.size),
        }
        for column, value in reference.items():
            assert float(row[column]) == pytest.approx(value, rel=2e-5, abs=2e-6), (row, column)
        checked += 1
    assert checked == len(rows)
    by = {(r["item"], r["method"]): r for r in rows}
    for item in regular:  # CAM and Grad-CAM of one model: the same picture, the same scores
        assert by[(item, "vib")]["gini"] == by[(item, "gc")]["gini"]
    summary = (tmp_path / "metrics.md").read_text()
    assert "vib − baseline" in summary and "Sanity check" in summary
    sanity = (tmp_path / "sanity.csv").read_text().splitlines()
    assert sanity[0] == "item,method,stage,spearman" and len(sanity) == 1 + 3 * len(regular) * 7
    assert figure([str(package), "--out", str(tmp_path / "fig.png"), "--items", "2"]) == 0
    with Image.open(tmp_path / "fig.png") as fig:
        assert fig.width > fig.height  # 2 rows x 4 columns
    assert not (package / "metrics.csv").exists()  # the package itself is never modified
    assert compare([str(package), str(package), "--out", str(tmp_path / "pooled.md")]) == 0
    pooled = (tmp_path / "pooled.md").read_text()
    assert "**vib − baseline**" in pooled and "**gc − baseline**" in pooled and "| Gini |" in pooled
    # The decision table of docs/results.md, with gc standing in for the control method.
    from cams.decision import main as decision
    from cams.decision_rule import evaluate as decide_packages

    assert decision([str(package)] * 3 + ["--control", "gc", "--active", "vib=1",
                                          "--out", str(tmp_path / "decision.md")]) == 0
    table = (tmp_path / "decision.md").read_text()
    assert table.count("| vib | all items |") == 2 and table.count("| vib | items every model gets right |") == 2
    decisions = decide_packages([package] * 3, "gc", {"vib": True})
    energy = next(d for d in decisions if d.metric == "energy_in_mask" and d.scope == "all items")
    expected = np.mean([float(by[(i, "vib")]["energy_in_mask"]) - float(by[(i, "baseline")]["energy_in_mask"])
                        for i in regular])
    assert energy.pooled.mean == pytest.approx(expected) and energy.active
    assert energy.answer in ("yes", "no", "inconclusive", "yes, the other way (worse)")
    assert decision([str(package), "--control", "nope"]) == 2


def test_metrics_refuse_a_renamed_cams_key_naming_it_and_the_fix(package, tmp_path, capsys):
    """Before the section was typed, a renamed `targets` silently fell back to the true class."""
    import shutil

    from cams.metrics.__main__ import main as metrics

    copy = tmp_path / "renamed"
    shutil.copytree(package, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    first = next(iter(manifest["cams"]["items"]))
    entry = manifest["cams"]["items"][first]
    entry["target_classes"] = entry.pop("targets")
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert metrics([str(copy), "--no-progress", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"cams.items.{first}.targets: missing" in err and str(copy) in err
    assert "regenerate the package with python -m cams.generate" in err
    assert not (tmp_path / "out").exists()


def test_metrics_of_a_package_without_cams_section_use_the_true_class(package, tmp_path):
    """A package made by hand has no `cams` section: its maps are scored against the true class, which
    for this package (--target truth) are exactly the recorded targets, so every number is the same."""
    import shutil

    from cams.metrics.__main__ import main as metrics

    bare = tmp_path / "bare"
    shutil.copytree(package, bare)
    manifest = json.loads((bare / "manifest.json").read_text())
    assert manifest["cams"]["target"] == "truth"
    del manifest["cams"]
    (bare / "manifest.json").write_text(json.dumps(manifest))
    for root, out in ((package, tmp_path / "with"), (bare, tmp_path / "without")):
        assert metrics([str(root), "--steps", "3", "--no-progress", "--out", str(out)]) == 0
    with_section = (tmp_path / "with" / "metrics.csv").read_text()
    assert with_section == (tmp_path / "without" / "metrics.csv").read_text()
    assert ",," not in with_section.split("\n", 1)[1]  # deletion/insertion computed too


def test_ids_random_and_predicted_target(tiny_checkpoints, tmp_path, capsys):
    ids = tmp_path / "ids.txt"
    ids.write_text("# two samples\nsynthetic-0-val-4\n\nsynthetic-0-val-7\n")
    common = [
        "--proposed",
        f"prop={tiny_checkpoints['vib']}",
        "--baseline",
        str(tiny_checkpoints["baseline"]),
    ]
    assert (
        run([*common, "--ids", str(ids), "--target", "predicted", "--out", str(tmp_path / "a")], capsys)[0]
        == 0
    )
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["proposed"] == "prop"
    extra = manifest["cams"]["items"]
    assert sorted(e["sample"] for e in extra.values()) == ["synthetic-0-val-4", "synthetic-0-val-7"]
    labels = manifest["cams"]["class_labels"]
    for item in manifest["items"]:
        for method in ("prop", "baseline"):  # predicted target: each map explains its model's top-1
            assert labels[extra[item["id"]]["targets"][method]] == item["predictions"][method][0]["label"]
    assert run([*common, "--random", "5", "--seed", "1", "--out", str(tmp_path / "b")], capsys)[0] == 0
    assert len(json.loads((tmp_path / "b" / "manifest.json").read_text())["items"]) == 5


def test_only_filter_and_empty_selection(tmp_path, capsys):
    always0 = make_checkpoint(tmp_path / "a.pt", favour=0)
    also0 = make_checkpoint(tmp_path / "b.pt", "vib", favour=0)
    common = ["--proposed", str(also0), "--baseline", str(always0), "--only", "both-correct"]
    code, _ = run(
        [*common, "--classes", "red_plain_circle", "--per-class", "2", "--out", str(tmp_path / "ok")], capsys
    )
    assert code == 0
    code, err = run([*common, "--classes", "green_striped_square", "--out", str(tmp_path / "empty")], capsys)
    assert code == 2 and "empty selection" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "empty").exists() and leftovers(tmp_path) == []
    assert passes_filter("disagree", 0, 1, 2) and not passes_filter("disagree", 0, 1, 1)


def test_existing_output_is_refused_unless_overwrite(tiny_checkpoints, tmp_path, capsys):
    out = tmp_path / "study"
    common = [
        "--proposed",
        str(tiny_checkpoints["vib"]),
        "--baseline",
        str(tiny_checkpoints["baseline"]),
        "--random",
        "2",
        "--out",
        str(out),
    ]
    assert run(common, capsys)[0] == 0
    first = (out / "manifest.json").read_text()
    code, err = run(common, capsys)
    assert code == 2 and "already exists; pass --overwrite" in err
    assert (out / "manifest.json").read_text() == first
    assert run([*common, "--overwrite", "--seed", "3"], capsys)[0] == 0
    assert (out / "manifest.json").read_text() != first and leftovers(tmp_path) == []
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("do not delete")
    code, err = run([*common[:-1], str(precious), "--overwrite"], capsys)
    assert code == 2 and "holds no manifest.json" in err and (precious / "thesis.tex").exists()


@pytest.mark.parametrize("failure", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_error_midway_leaves_nothing(tiny_checkpoints, tmp_path, monkeypatch, failure):
    calls = []
    real_add = builder_module.ItemWriter.add

    def add_then_fail(self, *args, **kwargs):
        real_add(self, *args, **kwargs)  # some files are already written when it fails
        calls.append(1)
        raise failure

    monkeypatch.setattr(builder_module.ItemWriter, "add", add_then_fail)
    with pytest.raises(type(failure)):
        generate(
            [
                "--proposed",
                str(tiny_checkpoints["vib"]),
                "--baseline",
                str(tiny_checkpoints["baseline"]),
                "--random",
                "4",
                "--out",
                str(tmp_path / "study"),
                "--workers",
                "0",
                "--no-progress",
            ]
        )
    assert calls and list(tmp_path.iterdir()) == []


def test_missing_parent_folders_are_created_and_removed_again_on_error(
    tiny_checkpoints, tmp_path, monkeypatch, capsys
):
    common = [
        "--proposed",
        str(tiny_checkpoints["vib"]),
        "--baseline",
        str(tiny_checkpoints["baseline"]),
        "--random",
        "1",
        "--out",
        str(tmp_path / "a" / "b" / "study"),
    ]
    with monkeypatch.context() as patch:

        def fail(*_args, **_kwargs):
            raise StudyInputError("injected failure while writing")

        patch.setattr(builder_module.ItemWriter, "add", fail)
        code, err = run(common, capsys)
    assert code == 2 and "injected failure" in err and list(tmp_path.iterdir()) == []
    assert run(common, capsys)[0] == 0
    assert (tmp_path / "a" / "b" / "study" / "manifest.json").is_file()


def test_bad_inputs_give_one_clear_line(tiny_checkpoints, tmp_path, capsys):
    vib, base = str(tiny_checkpoints["vib"]), str(tiny_checkpoints["baseline"])
    resnet34 = make_checkpoint(tmp_path / "r34.pt", arch="resnet34")
    four = make_checkpoint(tmp_path / "four.pt", data={**TINY_DATA, "num_classes": 4})
    empty_run = tmp_path / "run-without-checkpoint"
    empty_run.mkdir()
    not_a_checkpoint = tmp_path / "weights.pt"
    torch.save({"fc.weight": torch.zeros(1)}, not_a_checkpoint)
    cases = [
        (["--proposed", vib, "--baseline", str(resnet34), "--random", "2"], "is a resnet34 but"),
        (["--proposed", vib, "--baseline", str(four), "--random", "2"], "has 4 classes but"),
        (
            ["--proposed", vib, "--baseline", base, "--num-classes", "4", "--random", "2"],
            "has 3 classes but the data",
        ),
        (
            ["--proposed", vib, "--baseline", base, "--classes", "red_plain_circel"],
            "did you mean 'red_plain_circle'",
        ),
        (["--proposed", vib, "--baseline", str(empty_run), "--random", "2"], "has no best.pt or last.pt"),
        (["--proposed", vib, "--baseline", str(tmp_path / "missing.pt"), "--random", "2"], "not found"),
        (
            ["--proposed", vib, "--baseline", str(not_a_checkpoint), "--random", "2"],
            "not a vibcam checkpoint",
        ),
        (
            ["--proposed", vib, "--baseline", base, "--ids", str(tmp_path / "none.txt")],
            "cannot read --ids file",
        ),
        (
            ["--proposed", vib, "--baseline", base, "--random", "2", "--question", "Which?"],
            "must contain {label}",
        ),
        (
            ["--proposed", vib, "--baseline", base, "--method", f"baseline={base}", "--random", "2"],
            "used twice",
        ),
    ]
    for argv, message in cases:
        code, err = run([*argv, "--out", str(tmp_path / "study")], capsys)
        assert code == 2, (argv, err)
        assert message in err and err.startswith("error: ") and len(err.strip().splitlines()) == 1, (
            message,
            err,
        )
        assert not (tmp_path / "study").exists() and leftovers(tmp_path) == [], message


def test_unreadable_image_in_a_folder_dataset(tmp_path, capsys):
    root = tmp_path / "scenes"
    for split in ("train", "val"):
        for name in ("bar", "cafe"):
            (root / split / name).mkdir(parents=True)
            Image.new("RGB", (40, 40), (10, 200, 30)).save(root / split / name / "ok.png")
    (root / "val" / "cafe" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    data = {"data": "folder", "data_root": str(root), "image_size": 32}
    base = make_checkpoint(tmp_path / "base.pt", data=data)
    vib = make_checkpoint(tmp_path / "vib.pt", "vib", data=data)
    code, err = run(
        [
            "--proposed",
            str(vib),
            "--baseline",
            str(base),
            "--classes",
            "cafe",
            "--per-class",
            "2",
            "--out",
            str(tmp_path / "study"),
        ],
        capsys,
    )
    assert (
        code == 2 and "unreadable image" in err and "broken.jpg" in err and len(err.strip().splitlines()) == 1
    )
    assert not (tmp_path / "study").exists()


def test_method_specs_and_class_names():
    spec = parse_method_spec("runs/x", "proposed")
    assert (spec.name, str(spec.path), spec.cam, spec.named) == ("proposed", "runs/x", "cam", False)
    spec = parse_method_spec("vib2=runs/a=b/best.pt:gradcam")
    assert (spec.name, str(spec.path), spec.cam, spec.named) == ("vib2", "runs/a=b/best.pt", "gradcam", True)
    with pytest.raises(StudyInputError, match="needs a name"):
        parse_method_spec("runs/x")
    names, labels = (
        ["waiting_room", "apartment_building/outdoor"],
        ["waiting room", "apartment building (outdoor)"],
    )
    assert resolve_classes(["Waiting Room", "apartment_building/outdoor", "waiting_room"], names, labels) == [
        0,
        1,
    ]
    assert resolve_classes(["apartment building (outdoor)"], names, labels) == [1]
    with pytest.raises(StudyInputError, match="did you mean 'waiting_room'"):
        resolve_classes(["waitingroom"], names, labels)
