"""`python -m cams.generate --task distinction` on tiny checkpoints: a package the survey's validator
accepts, whose candidates are each model's top-k classes with their own maps (checked against a fresh
forward pass and torchcam), in a seeded order that is not rank order, with unmistakable attention checks."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchcam.methods import CAM as ReferenceCAM

from cams.generate import main as generate
from cams.render import overlay, postprocess
from models.checkpoint import load_model
from models.data import build_datasets
from models.data.transforms import to_model_input
from survey.package import CamsSection, validate_package
from tests.cams.conftest import make_checkpoint

DATA = {"data": "synthetic", "image_size": 64, "num_classes": 6, "train_size": 6, "val_size": 40}
K = 4


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("checkpoints6")
    return {"vib": make_checkpoint(root / "vib.pt", "vib", seed=1, data=DATA),
            "baseline": make_checkpoint(root / "baseline.pt", "baseline", seed=2, data=DATA)}


def make(checkpoints: dict[str, Path], out: Path, *extra: str) -> int:
    return generate(["--task", "distinction", "--proposed", str(checkpoints["vib"]),
                     "--baseline", str(checkpoints["baseline"]), "--out", str(out), "--workers", "0",
                     "--no-progress", "--batch-size", "4", *extra])


@pytest.fixture(scope="module")
def package(checkpoints, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("studies") / "distinction"
    assert make(checkpoints, out, "--random", "6", "--attention-checks", "2", "--seed", "5") == 0
    return out


def manifest_of(package: Path) -> dict:
    return json.loads((package / "manifest.json").read_text())


def sample_input(manifest: dict, item: dict):
    val = build_datasets(manifest["cams"]["data"], progress=False).val
    sample_id = manifest["cams"]["items"][item["id"]]["sample"]
    sample = val.sample(int(sample_id.rsplit("-", 1)[1]))
    assert sample.id == sample_id
    return sample, to_model_input([sample.image])


def test_package_validates_and_is_a_distinction_package(package):
    assert validate_package(package) == []
    manifest = manifest_of(package)
    assert manifest["task"] == "distinction" and "{label}" not in manifest["question"]
    regular = [i for i in manifest["items"] if not i["attention_check"]]
    checks = [i for i in manifest["items"] if i["attention_check"]]
    assert len(regular) == 6 and len(checks) == 2
    for item in manifest["items"]:
        assert set(item["candidates"]) == set(item["answer"]) == {"vib", "baseline"}
        for method, listed in item["candidates"].items():
            assert sorted(c["rank"] for c in listed) == list(range(1, K + 1))
            assert listed[item["answer"][method]]["rank"] == 1
    section = CamsSection.from_manifest(manifest, package)
    assert section.target == "predicted"
    for item in regular:  # the rank-1 heatmap is what cams.metrics scores, like a pairwise map
        for method, path in item["heatmaps"].items():
            assert section.items[item["id"]].candidates[method][item["answer"][method]].heatmap == path


def test_candidates_are_each_models_top_k_in_rank_order(package):
    manifest = manifest_of(package)
    section = CamsSection.from_manifest(manifest, package)
    labels = manifest["cams"]["class_labels"]
    for method in ("vib", "baseline"):
        model, _ = load_model(manifest["provenance"]["checkpoints"][method]["path"])
        for item in manifest["items"]:
            _, x = sample_input(manifest, item)
            with torch.no_grad():
                probs = model(x).softmax(1)[0]
            expected = probs.argsort(descending=True)[:K].tolist()  # no ties in random-weight logits
            by_rank = sorted(zip(item["candidates"][method], section.items[item["id"]].candidates[method]),
                             key=lambda pair: pair[0]["rank"])
            assert [c.class_index for _, c in by_rank] == expected
            assert [shown["label"] for shown, _ in by_rank] == [labels[c] for c in expected]
            assert section.items[item["id"]].targets[method] == expected[0] == int(probs.argmax())


def test_candidate_order_is_seeded_and_not_rank_order(package, checkpoints, tmp_path):
    manifest = manifest_of(package)
    orders = [[c["rank"] for c in listed] for item in manifest["items"] for listed in item["candidates"].values()]
    assert any(order != sorted(order) for order in orders)
    assert len({tuple(o) for o in orders}) > 3  # not one fixed shuffle either
    answers = [a for item in manifest["items"] for a in item["answer"].values()]
    assert len(set(answers)) > 1
    again = tmp_path / "again"
    assert make(checkpoints, again, "--random", "6", "--attention-checks", "2", "--seed", "5",
                "--name", "distinction") == 0
    assert manifest_of(again)["items"] == manifest["items"]
    other = tmp_path / "other"
    assert make(checkpoints, other, "--random", "6", "--seed", "6", "--name", "distinction") == 0
    assert manifest_of(other)["items"] != [i for i in manifest["items"] if not i["attention_check"]]


def test_every_candidate_map_is_explains_map_and_torchcams(package):
    """Each stored heatmap is the CAM of its class for that sample (fresh pass, and torchcam's CAM),
    post-processed; each overlay is that heatmap rendered over the photo."""
    from cams.cam import CAM
    from cams.explain import explain

    manifest = manifest_of(package)
    section = CamsSection.from_manifest(manifest, package)
    item = next(i for i in manifest["items"] if not i["attention_check"])
    sample, x = sample_input(manifest, item)
    model, _ = load_model(manifest["provenance"]["checkpoints"]["baseline"]["path"])
    listed = section.items[item["id"]].candidates["baseline"]
    classes = [c.class_index for c in listed]
    ours = explain({"b": CAM(model)}, x.repeat(K, 1, 1, 1), classes={"b": classes})["b"].maps
    with ReferenceCAM(model, target_layer="features", fc_layer="fc", input_shape=(3, 64, 64)) as extractor:
        with torch.no_grad():
            model(x.repeat(K, 1, 1, 1))
        reference = extractor(class_idx=classes, normalized=False)[0]
    torch.testing.assert_close(ours, reference, atol=1e-5 * float(reference.abs().max()), rtol=1e-5)
    heat = postprocess(reference, (64, 64))
    pixels = torch.from_numpy(np.array(sample.image.convert("RGB")))
    for k, candidate in enumerate(listed):
        stored = np.load(package / candidate.heatmap).astype(np.float32)
        assert np.abs(stored - heat[k].numpy()).max() < 1e-3  # float16 storage
        with Image.open(package / item["candidates"]["baseline"][k]["map"]) as image:
            shown = torch.from_numpy(np.array(image)).int()
        assert (shown - overlay(pixels[None], heat[k][None])[0].int()).abs().max() <= 1
    assert len({c.heatmap for c in listed}) == K  # four different maps, not one map four times


def test_attention_checks_show_the_object_for_the_answer_and_flat_maps_otherwise(package):
    from cams.distinction_items import on_object_heatmap
    from cams.metrics.maps import energy_in_mask, pointing_game

    manifest = manifest_of(package)
    checks = [i for i in manifest["items"] if i["attention_check"]]
    for item in checks:
        assert "heatmaps" not in item and manifest["cams"]["items"][item["id"]]["check"] == {"kind": "on-object"}
        with Image.open(package / item["image"]) as image:
            pixels = torch.from_numpy(np.array(image.convert("RGB")))[None]
        with Image.open(package / item["mask"]) as image:
            mask = np.array(image)
            heat = on_object_heatmap(image)
        area = (mask > 127).mean()
        assert 0 < area < 0.3
        # The answer's map is on the object: it peaks there, and most of its mass is there (a flat map
        # would have the object's area, i.e. chance).
        assert pointing_game(heat.numpy(), mask) == 1 and energy_in_mask(heat.numpy(), mask) > max(0.5, 2 * area)
        for method, listed in item["candidates"].items():
            for k, candidate in enumerate(listed):
                with Image.open(package / candidate["map"]) as image:
                    shown = torch.from_numpy(np.array(image))
                on_answer = k == item["answer"][method]
                wanted = overlay(pixels, (heat if on_answer else torch.zeros_like(heat))[None])[0]
                assert torch.equal(shown, wanted)  # the others: one flat tint (jet at 0) over the photo


def test_metrics_score_the_rank_one_maps(package, tmp_path):
    from cams.metrics.__main__ import main as metrics
    from cams.metrics.maps import energy_in_mask

    assert metrics([str(package), "--out", str(tmp_path / "m"), "--no-progress", "--steps", "4"]) == 0
    import csv

    rows = list(csv.DictReader((tmp_path / "m" / "metrics.csv").open()))
    manifest = manifest_of(package)
    regular = {i["id"]: i for i in manifest["items"] if not i["attention_check"]}
    assert {(r["item"], r["method"]) for r in rows} == {(i, m) for i in regular for m in ("vib", "baseline")}
    for row in rows:
        item = regular[row["item"]]
        answer = item["candidates"][row["method"]][item["answer"][row["method"]]]
        assert answer["rank"] == 1
        heat = np.load(package / item["heatmaps"][row["method"]]).astype(np.float32)
        mask = np.asarray(Image.open(package / item["mask"]))
        assert float(row["energy_in_mask"]) == pytest.approx(energy_in_mask(heat, mask), abs=1e-5)


def test_pairwise_packages_stay_pairwise(checkpoints, tmp_path):
    out = tmp_path / "pairwise"
    assert generate(["--proposed", str(checkpoints["vib"]), "--baseline", str(checkpoints["baseline"]),
                     "--random", "3", "--out", str(out), "--workers", "0", "--no-progress"]) == 0
    manifest = manifest_of(out)
    assert "task" not in manifest and "{label}" in manifest["question"]
    assert all("maps" in i and "candidates" not in i for i in manifest["items"])
    assert all("candidates" not in e for e in manifest["cams"]["items"].values())
    assert manifest["cams"]["target"] == "truth"


@pytest.mark.parametrize("extra, message", [
    (["--target", "truth"], "--target does not apply to --task distinction"),
    (["--question", "Is this a {label}?"], "must not contain {label}"),
])
def test_bad_distinction_options_give_one_clear_line(checkpoints, tmp_path, capsys, extra, message):
    out = tmp_path / "bad"
    assert make(checkpoints, out, "--random", "2", *extra) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_data_with_fewer_classes_than_candidates_is_refused(tiny_checkpoints, tmp_path, capsys):
    """Top-4 needs 4 classes; the 3-class tiny models cannot make a distinction package."""
    assert make(tiny_checkpoints, tmp_path / "p", "--random", "2") == 2
    assert "shows each model's top 4 classes, but the data has only 3 classes" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


def test_attention_checks_without_masks_are_refused(package, checkpoints, tmp_path):
    """Data without ground-truth masks (e.g. SUN397) cannot make an unmistakable distinction check."""
    from concurrent.futures import ThreadPoolExecutor

    from cams.distinction_items import DistinctionWriter
    from cams.loading import StudyInputError, load_methods, parse_method_spec
    from cams.package_writer import PackageFolder
    from cams.study_batches import explain_on_cpu, model_inputs

    manifest = manifest_of(package)
    sample, _ = sample_input(manifest, manifest["items"][0])
    sample = replace(sample, mask=None)
    loaded = load_methods([parse_method_spec(f"vib={checkpoints['vib']}"),
                           parse_method_spec(f"baseline={checkpoints['baseline']}")], "cpu")
    result = explain_on_cpu(loaded, *model_inputs([sample], "cpu"), "predicted")
    with PackageFolder(tmp_path / "p") as folder, ThreadPoolExecutor(1) as encoder:
        writer = DistinctionWriter(folder, "p", loaded, manifest["cams"]["class_labels"], encoder, k=K, seed=0,
                                   device="cpu")
        with pytest.raises(StudyInputError, match="needs ground-truth masks.*leave --attention-checks out"):
            writer.add_checks([sample], result)
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("breakage, reason", [
    (lambda m, e, i: e.pop("candidates"), "candidates: missing"),
    (lambda m, e, i: e["candidates"]["vib"].pop(), "one {class, heatmap} per candidate"),
    (lambda m, e, i: e["candidates"]["vib"].reverse(), "but the item shows"),
    (lambda m, e, i: e["candidates"]["vib"][i["answer"]["vib"]].update(heatmap="../x.npy"), "climbs out"),
    (lambda m, e, i: e["targets"].update(vib=(e["targets"]["vib"] + 1) % 6), "differs from targets.vib"),
    (lambda m, e, i: m["cams"].update(target="truth"), "must be 'predicted' in a distinction package"),
])
def test_the_validator_checks_the_candidate_section(package, breakage, reason):
    """The typed cams section of a distinction package is checked like the rest (survey.package)."""
    from survey.package import validate_manifest

    manifest = manifest_of(package)
    item = next(i for i in manifest["items"] if not i["attention_check"])
    breakage(manifest, manifest["cams"]["items"][item["id"]], item)
    problems = [str(p) for p in validate_manifest(manifest)]
    assert any(reason in p for p in problems), problems
