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
