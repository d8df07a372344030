"""The demo's simulated raters (`scripts/simulate_raters.py`) vote through the service layer with
crossed-design preferences (contract D)."""
from __future__ import annotations

from pathlib import Path

import pytest

from scripts.simulate_raters import main, simulate
from survey.db import get_engine
from survey.export import votes_frame
from survey.importer import import_package
from survey.service import admin_summary
from testing.packages import make_package


def test_simulated_raters_fill_the_study(sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    package = make_package(tmp_path / "sim", n_items=10, n_checks=2, image_size=16, with_example=False)
    engine = get_engine(sqlite_url)
    import_package(engine, package)
    assert simulate(sqlite_url, "demo", raters=12, seed=3, rate=0.95, rater_sd=0.0, item_sd=0.0,
                    attention_accuracy=1.0, progress=False) == 12 * 12
    frame = votes_frame(engine, "demo")
    assert sorted(frame["rater"].unique()) == [f"sim-{k:03d}" for k in range(1, 13)]
    assert frame["rater_finished"].all()
    checks = frame[frame["attention_check"]]
    assert (checks["chosen_method"] == checks["expected_method"]).all()
    summary = admin_summary(engine, "demo")
    assert summary.n == 120 and summary.proposed_rate > 0.85  # 0.95 expected; P(rate <= 0.85) < 1e-4
    # Choices follow the map, not the side: the proposed map is picked on both sides alike.
    regular = frame[~frame["attention_check"]]
    left_rate = (regular["chosen_side"] == "left").mean()
    assert 0.35 < left_rate < 0.65
    # A second run adds nothing: those raters have finished.
    assert main(["--db", sqlite_url, "--study", "demo", "--raters", "12", "--seed", "3"]) == 0
    assert "recorded 0 new vote(s)" in capsys.readouterr().out


def test_simulate_errors_are_one_line(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    get_engine(sqlite_url)
    assert main(["--db", sqlite_url, "--study", "nope"]) == 1
    assert "no study named 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--study"])


def write_metrics(path: Path, manifest: dict, differences: dict[str, float]) -> None:
    """A cams.metrics-style CSV: energy in mask 0.3 for the baseline, 0.3 + d for the proposed map."""
    lines = ["item,method,pointing_game,energy_in_mask,deletion_auc,insertion_auc,gini,entropy"]
    for item, d in differences.items():
        lines.append(f"{item},{manifest['baseline']},1,0.3,0.1,0.9,0.5,0.5")
        lines.append(f"{item},{manifest['proposed']},1,{0.3 + d},0.1,0.9,0.5,0.5")
    path.write_text("\n".join(lines) + "\n")


def test_metric_driven_raters_follow_what_is_on_screen(sqlite_url: str, tmp_path: Path) -> None:
    import json

    package = make_package(tmp_path / "sim", n_items=10, n_checks=1, image_size=16, with_example=False)
    manifest = json.loads((package / "manifest.json").read_text())
    regular = [item["id"] for item in manifest["items"] if not item.get("attention_check")]
    better, worse = regular[: len(regular) // 2], regular[len(regular) // 2:]
    write_metrics(tmp_path / "metrics.csv", manifest, {**{i: 0.3 for i in better}, **{i: -0.3 for i in worse}})
    engine = get_engine(sqlite_url)
    import_package(engine, package)
    simulate(sqlite_url, "demo", raters=20, seed=1, rater_sd=0.0, item_sd=0.0, progress=False,
             metrics=tmp_path / "metrics.csv")
    frame = votes_frame(engine, "demo")
    regular_votes = frame[~frame["attention_check"]]
    chose_proposed = regular_votes["chosen_method"] == regular_votes["proposed_method"]
    # sensitivity 15 x 0.3 = logit 4.5: p = 0.989 on the better items, 0.011 on the worse ones
    assert chose_proposed[regular_votes["item"].isin(better)].mean() > 0.9
    assert chose_proposed[regular_votes["item"].isin(worse)].mean() < 0.1


def test_identical_maps_give_no_preference(sqlite_url: str, tmp_path: Path) -> None:
    import json

    package = make_package(tmp_path / "sim", n_items=10, n_checks=0, image_size=16, with_example=False)
    manifest = json.loads((package / "manifest.json").read_text())
    write_metrics(tmp_path / "metrics.csv", manifest,
                  {i["id"]: 0.0 for i in manifest["items"] if not i.get("attention_check")})
    engine = get_engine(sqlite_url)
    import_package(engine, package)
    simulate(sqlite_url, "demo", raters=30, seed=2, rater_sd=0.0, item_sd=0.0, progress=False,
             metrics=tmp_path / "metrics.csv")
    frame = votes_frame(engine, "demo")
    rate = (frame["chosen_method"] == frame["proposed_method"]).mean()
    assert 0.4 < rate < 0.6  # 300 votes at p = 0.5: sd 0.029


def test_metric_driven_raters_refuse_a_foreign_metrics_file(sqlite_url: str, tmp_path: Path, capsys) -> None:
    import json

    package = make_package(tmp_path / "sim", n_items=4, n_checks=0, image_size=16, with_example=False)
    manifest = json.loads((package / "manifest.json").read_text())
    write_metrics(tmp_path / "metrics.csv", manifest, {"other-item": 0.1})
    import_package(get_engine(sqlite_url), package)
    assert main(["--db", sqlite_url, "--study", "demo", "--metrics", str(tmp_path / "metrics.csv")]) == 1
    assert "is not in" in capsys.readouterr().err
    assert main(["--db", sqlite_url, "--study", "demo", "--metrics", str(tmp_path / "missing.csv")]) == 1
    assert "not found" in capsys.readouterr().err
    assert main(["--db", sqlite_url, "--study", "demo", "--prefix", "alice"]) == 1
    assert "must start with 'sim'" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ distinction
def planted_distinction_package(root: Path, n_items: int = 8, n_checks: int = 1) -> Path:
    """A distinction package whose per-candidate heatmaps are planted: the proposed method's rank-1 map
    covers exactly the labelled object and its other maps lie off it; the baseline's rank-1 map lies off
    the object and its rank-2 map covers it (what cams.generate records: cams.items[...].candidates)."""
    import io

    import numpy as np
    from PIL import Image

    from survey.package import content_name, write_manifest
    from testing.distinction_package import BASELINE, CLASS_LABELS, PROPOSED, distinction_manifest

    manifest = distinction_manifest(root, name="planted", n_items=n_items, n_checks=n_checks, image_size=32,
                                    with_example=False)

    def save_npy(array: np.ndarray) -> str:
        buffer = io.BytesIO()
        np.save(buffer, array.astype(np.float16), allow_pickle=False)
        relative = f"heatmaps/{content_name(buffer.getvalue(), '.npy')}"
        (root / "heatmaps").mkdir(exist_ok=True)
        (root / relative).write_bytes(buffer.getvalue())
        return relative

    cams_items = {}
    for item in manifest["items"]:
        with Image.open(root / item["mask"]) as image:
            on_object = np.asarray(image, dtype=np.float32) / 255.0
        entry: dict = {"sample": item["id"], "label_index": CLASS_LABELS.index(item["label"]), "targets": {},
                       "candidates": {}}
        for method, listed in item["candidates"].items():
            planted_rank = 1 if method == PROPOSED else 2
            entry["candidates"][method] = [
                {"class": CLASS_LABELS.index(c["label"]),
                 **({} if item["attention_check"] else
                    {"heatmap": save_npy(on_object if c["rank"] == planted_rank else 1.0 - on_object)})}
                for c in listed]
            entry["targets"][method] = CLASS_LABELS.index(listed[item["answer"][method]]["label"])
        if item["attention_check"]:
            entry["check"] = {"kind": "on-object"}
        cams_items[item["id"]] = entry
    manifest["cams"] = {
        "target": "predicted", "only": "any", "seed": 0, "image_size": 32, "data": {},
        "class_names": CLASS_LABELS, "class_labels": CLASS_LABELS,
        "methods": {m: {"cam": "cam", "arch": "planted", "head": "planted", "beta": None} for m in (BASELINE, PROPOSED)},
        "items": cams_items,
    }
    write_manifest(root, manifest)
    return root


def test_distinction_raters_follow_the_maps_and_answer_every_trial(sqlite_url: str, tmp_path: Path) -> None:
    from survey.distinction_export import answers_frame
    from testing.distinction_package import BASELINE, PROPOSED

    package = planted_distinction_package(tmp_path / "planted")
    engine = get_engine(sqlite_url)
    import_package(engine, package)
    raters, trials = 20, 9  # 8 items + 1 attention check each
    assert simulate(sqlite_url, "planted", raters=raters, seed=2, attention_accuracy=1.0, progress=False) \
        == raters * trials
    frame = answers_frame(engine, "planted")
    assert len(frame) == raters * trials and not frame.duplicated(["rater", "position"]).any()
    assert sorted(frame["rater"].unique()) == [f"sim-{k:03d}" for k in range(1, raters + 1)]
    assert frame["rater_finished"].all() and frame["confidence"].between(1, 5).all()
    assert frame.groupby("rater")["method"].nunique().max() == 1  # between subjects: one method per rater
    assert frame[frame["attention_check"]]["correct"].all()
    regular = frame[~frame["attention_check"]]
    accuracy = regular.groupby("method")["correct"].mean()
    # On-object answer maps: nearly always told apart; off-object ones: the on-object runner-up is picked.
    assert accuracy[PROPOSED] > 0.8 and accuracy[BASELINE] < 0.3, accuracy
    assert (regular[regular["method"] == BASELINE]["chosen_rank"] == 2).mean() > 0.7
    # One map stands out in both methods, so both are sure: the baseline's raters are confidently wrong.
    assert (regular.groupby("method")["confidence"].mean() > 4).all()
    # The slot of the answer does not decide: answers are spread over the screen places.
    assert regular["answer_slot"].nunique() > 1 and regular["chosen_slot"].nunique() > 1


def test_distinction_simulation_refuses_what_it_cannot_ground(sqlite_url: str, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from testing.distinction_package import make_distinction_study
    from testing.reveal import answer_count

    study = make_distinction_study(tmp_path, sqlite_url, name="nocams")  # no cams section: no heatmaps
    assert main(["--db", sqlite_url, "--study", "nocams", "--raters", "2"]) == 1
    err = capsys.readouterr().err
    assert "no cams section with per-candidate heatmaps" in err and "--task distinction" in err
    assert answer_count(get_engine(sqlite_url), study.name) == 0  # nothing half-done
    planted_distinction_package(tmp_path / "planted")
    import_package(get_engine(sqlite_url), tmp_path / "planted")
    assert main(["--db", sqlite_url, "--study", "planted", "--metrics", "x.csv"]) == 1
    assert "--metrics and --rate are for pairwise studies" in capsys.readouterr().err


def test_distinction_choice_and_confidence_follow_the_maps() -> None:
    """The rater model on its own: equal maps -> a uniform guess with low confidence; one map on the
    object -> picked, with high confidence; picking against the maps -> low confidence."""
    import numpy as np

    from scripts.distinction_raters import choice_probabilities, confidence_for

    rng = np.random.default_rng(0)
    equal = choice_probabilities(np.full(4, 0.3), 10.0, np.zeros(4))
    np.testing.assert_allclose(equal, 0.25)
    assert np.mean([confidence_for(equal, 0, rng) for _ in range(300)]) < 1.6
    clear = choice_probabilities(np.array([0.1, 0.8, 0.1, 0.1]), 10.0, np.zeros(4))
    assert clear[1] > 0.99 and abs(clear.sum() - 1) < 1e-12
    assert np.mean([confidence_for(clear, 1, rng) for _ in range(300)]) > 4.5
    assert np.mean([confidence_for(clear, 0, rng) for _ in range(300)]) < 1.6
    # More energy on the object, more often chosen: monotone in the energy gap.
    gaps = [choice_probabilities(np.array([0.2 + g, 0.2, 0.2, 0.2]), 10.0, np.zeros(4))[0]
            for g in (0, 0.05, 0.1, 0.2)]
    assert gaps == sorted(gaps) and gaps[0] == pytest.approx(0.25) and gaps[-1] > 0.6
