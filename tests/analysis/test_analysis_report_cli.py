"""`python -m analysis.report` end to end: three files with the stable keys, clear errors, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from analysis.report import main
from analysis.summary import STABLE_KEYS
from survey.votes_format import write_votes_csv
from testing.simulated_votes import simulate_pairwise_votes

REPO = Path(__file__).resolve().parents[2]
BINOMIAL_KEYS = {"k", "n", "p_two_sided", "p_greater", "ci_exact", "ci_wilson"}


def _check_stable_keys(summary: dict) -> None:
    assert set(STABLE_KEYS) <= set(summary)
    assert BINOMIAL_KEYS <= set(summary["binomial"])
    assert {"won", "total", "ties", "p_two_sided"} <= set(summary["items"])
    assert {"estimate", "ci"} <= set(summary["two_way_bootstrap"])
    assert {"left_rate", "p_two_sided"} <= set(summary["position"])
    assert {"observed", "fleiss_kappa", "krippendorff_alpha"} <= set(summary["agreement"])


def test_cli_writes_report_files_with_stable_keys(tmp_path: Path, votes_csv: Path) -> None:
    out = tmp_path / "report"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "analysis.report",
            "--votes",
            str(votes_csv),
            "--out",
            str(out),
            "--bootstrap",
            "500",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "two-way" in run.stdout
    summary = json.loads((out / "summary.json").read_text())
    _check_stable_keys(summary)
    _check_stable_keys(summary["without_exclusions"] | {"exclusions": {}})
    frame = pd.read_csv(votes_csv)
    assert summary["exclusions"]["votes_before"] == len(frame)
    assert summary["without_exclusions"]["n_raters"] == frame["rater"].nunique()
    assert (
        summary["n_raters"] < summary["without_exclusions"]["n_raters"]
    )  # careless/unfinished were excluded
    b = summary["binomial"]
    assert b["k"] / b["n"] == pytest.approx(summary["proposed_rate"])
    # recounted from the CSV without exclusions: first showings of regular items with a choice
    first = frame[~frame["attention_check"] & (frame["repeat"] == 0) & frame["chosen_method"].notna()]
    chose = (first["chosen_method"] == first["proposed_method"])
    raw = summary["without_exclusions"]
    assert (raw["binomial"]["k"], raw["binomial"]["n"]) == (int(chose.sum()), len(first))
    assert raw["proposed_rate"] == pytest.approx(chose.mean())
    assert summary["mixed_model"]["linear"]["fitted"] and summary["mixed_model"]["bayes"]["fitted"]
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3 and "<img" in html and 'src="figures/' not in html
    md = (out / "report.md").read_text()
    assert "## Item level (Table 2)" in md and "figures/items.png" in md
    assert all(
        (out / "figures" / name).stat().st_size > 1000 for name in ("items.png", "raters.png", "position.png")
    )
    assert len(pd.read_csv(out / "items.csv")) == summary["n_items"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind


def test_cli_rerun_replaces_files_in_place(tmp_path: Path, votes_csv: Path) -> None:
    out = tmp_path / "report"
    out.mkdir()
    (out / "summary.json").write_text("{}")
    assert (
        main(
            [
                "--votes",
                str(votes_csv),
                "--out",
                str(out),
                "--no-mixed",
                "--bootstrap",
                "200",
                "--no-exclusions",
            ]
        )
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["exclusions"]["votes_excluded"] == 0
    assert summary["mixed_model"]["linear"]["fitted"] is False


def test_cli_errors_are_one_line(tmp_path: Path, votes_csv: Path) -> None:
    bad = tmp_path / "bad.csv"
    pd.read_csv(votes_csv).drop(columns=["rater"]).to_csv(bad, index=False)
    run = subprocess.run(
        [sys.executable, "-m", "analysis.report", "--votes", str(bad), "--out", str(tmp_path / "r")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "missing column(s) rater" in run.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "r").exists()
    assert main(["--votes", str(votes_csv), "--db", "sqlite:///x.db", "--out", str(tmp_path / "r")]) == 2
    assert main(["--db", "sqlite:///x.db", "--out", str(tmp_path / "r")]) == 2
    assert main(["--votes", str(votes_csv), "--out", str(tmp_path / "r"), "--proposed", "gradcam"]) == 1


def test_cli_help_names_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in (
        "--votes",
        "--db",
        "--study",
        "--out",
        "--metrics",
        "--keep-unfinished",
        "--max-failed-checks",
        "--min-response-ms",
        "--no-exclusions",
        "--bootstrap",
        "--mixed-max-votes",
    ):
        assert flag in text


def test_metrics_and_more_methods_reach_the_report(tmp_path: Path) -> None:
    frame = simulate_pairwise_votes(12, 8, {"baseline": 0.0, "gradcam": 0.3, "vib": 0.9}, seed=2, item_sd=1.0)
    votes = write_votes_csv(frame, tmp_path / "votes.csv")
    items = sorted(frame["item"].unique())
    metrics = pd.DataFrame(
        [
            {"item": i, "method": m, "pointing_game": k * (m == "vib"), "entropy": 1.0}
            for k, i in enumerate(items)
            for m in ("baseline", "gradcam", "vib")
        ]
    )
    metrics.to_csv(tmp_path / "metrics.csv", index=False)
    out = tmp_path / "report"
    assert (
        main(
            [
                "--votes",
                str(votes),
                "--out",
                str(out),
                "--metrics",
                str(tmp_path / "metrics.csv"),
                "--no-mixed",
                "--bootstrap",
                "200",
            ]
        )
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert [s["method"] for s in summary["methods"]["bradley_terry"]] == ["baseline", "gradcam", "vib"]
    assert len(summary["methods"]["pairwise"]) == 3 and all(
        "p_holm" in t for t in summary["methods"]["pairwise"]
    )
    corr = {c["metric"]: c for c in summary["metrics"]["correlations"]}
    assert corr["pointing_game"]["items"] == 8 and corr["entropy"]["rho"] is None
    md = (out / "report.md").read_text()
    assert "## All methods" in md and "## Automatic metrics vs people" in md


def test_database_source_matches_its_csv_export(tmp_path: Path) -> None:
    from survey.db import dispose_engines, get_engine
    from scripts.simulate_raters import simulate
    from survey.export import export_votes_csv
    from survey.importer import import_package
    from testing.packages import make_package

    url = f"sqlite:///{tmp_path / 'survey.db'}"
    try:
        package = make_package(tmp_path / "package", n_items=6, n_checks=1, repeats=1)
        import_package(get_engine(url), package)
        simulate(url, "demo", raters=8, seed=1, progress=False)
        export_votes_csv(url, "demo", tmp_path / "votes.csv")
        # Simulated raters answer in milliseconds: the default speed rules would (rightly) exclude them all.
        assert main(["--db", url, "--study", "demo", "--out", str(tmp_path / "fast")]) == 1
        assert (
            main(
                [
                    "--db",
                    url,
                    "--study",
                    "demo",
                    "--out",
                    str(tmp_path / "db"),
                    "--no-mixed",
                    "--bootstrap",
                    "200",
                    "--no-exclusions",
                ]
            )
            == 0
        )
        assert (
            main(
                [
                    "--votes",
                    str(tmp_path / "votes.csv"),
                    "--out",
                    str(tmp_path / "csv"),
                    "--no-mixed",
                    "--bootstrap",
                    "200",
                    "--no-exclusions",
                ]
            )
            == 0
        )
        from_db = json.loads((tmp_path / "db" / "summary.json").read_text())
        from_csv = json.loads((tmp_path / "csv" / "summary.json").read_text())
        _check_stable_keys(from_db)
        assert from_db["n_items"] == 6 and from_db["without_exclusions"]["n_raters"] == 8
        for key in ("n_votes", "n_raters", "binomial", "items", "two_way_bootstrap", "agreement"):
            assert from_db[key] == from_csv[key]
        assert from_db["test_retest"]["pairs"] == 8  # one repeated item per rater (repeats=1)
        assert main(["--db", url, "--study", "nope", "--out", str(tmp_path / "x")]) == 1
    finally:
        dispose_engines()
