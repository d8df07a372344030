"""``python -m survey.study``: import all or nothing, idempotent re-import, guarded replacement,
list/open/close, and the votes CSV of contract C."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select

import survey.service as service
from survey.db import get_engine, read_session
from survey.export import export_votes_csv, votes_frame
from survey.importer import StudyImportError, import_package
from survey.package import MANIFEST_NAME, PackageError
from survey.schema import Base, Study
from survey.study import main
from survey.votes_format import COLUMNS, read_votes_csv

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def package(sample_package: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(sample_package, tmp_path / "pkg"))


def row_counts(url: str) -> dict[str, int]:
    with read_session(get_engine(url)) as session:
        return {table.name: session.scalar(select(func.count()).select_from(table))
                for table in Base.metadata.sorted_tables}


def vote_some(url: str, study: str = "demo", rater: str = "r1", n: int = 2) -> None:
    engine = get_engine(url)
    service.start_rater(engine, study, rater)
    for _ in range(n):
        trial = service.next_trial(engine, study, rater)
        service.record_vote(engine, study, rater, trial.token, "A")


def test_broken_package_lists_every_problem_and_changes_nothing(
        package: Path, any_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = json.loads((package / MANIFEST_NAME).read_text())
    a, b, c = manifest["items"][:3]
    a["image"] = "../../etc/passwd.png"
    (package / b["maps"]["vib"]).write_bytes(b"garbage")
    c["id"] = manifest["items"][3]["id"]
    manifest["question"] = "Which is better?"
    (package / MANIFEST_NAME).write_text(json.dumps(manifest))
    assert main(["import", str(package), "--db", any_url]) == 1
    err = capsys.readouterr().err
    for needle in (f"item {a['id']} / image", f"item {b['id']} / maps.vib", "duplicate item id",
                   "manifest / question", "nothing was imported"):
        assert needle in err
    assert "Traceback" not in err
    assert sum(row_counts(any_url).values()) == 0  # every table of the schema is still empty


def test_failed_load_is_rolled_back_whole(package: Path, sqlite_url: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure in the middle of the load (here: after the items) leaves no half-imported study."""
    import survey.importer as importer

    real_insert = importer._insert

    def failing_insert(session, manifest, **kwargs):  # noqa: ANN001, ANN202
        real_insert(session, manifest, **kwargs)
        raise RuntimeError("disk full")

    monkeypatch.setattr(importer, "_insert", failing_insert)
    with pytest.raises(RuntimeError):
        import_package(get_engine(sqlite_url), package)
    assert row_counts(sqlite_url)["studies"] == 0 and row_counts(sqlite_url)["items"] == 0


def test_reimport_is_a_no_op(package: Path, any_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import", str(package), "--db", any_url]) == 0
    vote_some(any_url)
    with read_session(get_engine(any_url)) as session:
        before = session.scalar(select(Study)).__dict__.copy()
    counts = row_counts(any_url)
    assert main(["import", str(package), "--db", any_url]) == 0
    assert "unchanged" in capsys.readouterr().out
    with read_session(get_engine(any_url)) as session:
        after = session.scalar(select(Study)).__dict__.copy()
    keep = ("id", "seed", "completion_code", "fingerprint", "imported_at", "n_raters")
    assert {k: before[k] for k in keep} == {k: after[k] for k in keep}
    assert row_counts(any_url) == counts


def test_changed_package_refused_while_it_has_votes_replaced_without(
        package: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    engine = get_engine(sqlite_url)
    import_package(engine, package)
    manifest = json.loads((package / MANIFEST_NAME).read_text())
    manifest["instructions"] = "New wording."
    (package / MANIFEST_NAME).write_text(json.dumps(manifest))
    service.start_rater(engine, "demo", "no-votes-yet")
    assert import_package(engine, package).action == "replaced"  # raters without votes: fine
    assert service.get_study(engine, "demo").instructions == "New wording."
    vote_some(sqlite_url)
    manifest["instructions"] = "Newer wording."
    (package / MANIFEST_NAME).write_text(json.dumps(manifest))
    counts = row_counts(sqlite_url)
    assert main(["import", str(package), "--db", sqlite_url]) == 1
    assert "has 2 vote(s)" in capsys.readouterr().err
    assert row_counts(sqlite_url) == counts
    assert service.get_study(engine, "demo").instructions == "New wording."
    with pytest.raises(StudyImportError):  # changed import options count as a change too
        import_package(engine, package, invite_only=True)
    assert main(["import", str(package), "--db", sqlite_url, "--name", "demo2"]) == 0
    assert sorted(service.list_open_studies(engine)) == ["demo", "demo2"]


def test_moved_package_is_followed(package: Path, sqlite_url: str) -> None:
    engine = get_engine(sqlite_url)
    import_package(engine, package)
    vote_some(sqlite_url)
    moved = Path(shutil.move(package, package.parent / "moved"))
    assert import_package(engine, moved).action == "relocated"
    assert service.get_study(engine, "demo").package_root == moved.resolve()
    assert service.next_trial(engine, "demo", "r1").image_path.is_relative_to(moved.resolve())


def test_import_options(package: Path, sqlite_url: str) -> None:
    redirect = "https://app.prolific.com/submissions/complete?cc={code}"
    assert main(["import", str(package), "--db", sqlite_url, "--name", "x_1", "--invite-only",
                 "--repeats", "3", "--completion-redirect", redirect, "--closed"]) == 0
    study = service.get_study(get_engine(sqlite_url), "x_1")
    assert study.invite_only and not study.is_open and study.n_trials_per_rater == 7 + 3
    assert study.completion_redirect.endswith("cc={code}") and study.package_root == package.resolve()
    for bad in (["--name", "bad name"], ["--repeats", "99"],
                ["--completion-redirect", "javascript:alert(1)"]):
        assert main(["import", str(package), "--db", sqlite_url, *bad]) == 1
    assert service.list_studies(get_engine(sqlite_url)) == ["x_1"]


def test_list_open_close(package: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--db", sqlite_url]) == 0 and "no studies" in capsys.readouterr().out
    main(["import", str(package), "--db", sqlite_url])
    vote_some(sqlite_url)
    capsys.readouterr()
    assert main(["list", "--db", sqlite_url]) == 0
    line = capsys.readouterr().out.splitlines()[1].split()
    assert line == ["demo", "open", "public", "7", "1", "0", "2"]
    assert main(["close", "demo", "--db", sqlite_url]) == 0
    assert not service.get_study(get_engine(sqlite_url), "demo").is_open
    assert main(["open", "demo", "--db", sqlite_url]) == 0
    assert service.get_study(get_engine(sqlite_url), "demo").is_open
    assert main(["close", "nope", "--db", sqlite_url]) == 1
    assert "no study named 'nope'" in capsys.readouterr().err


def test_export_csv_columns_and_round_trip(package: Path, any_url: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    engine = get_engine(any_url)
    import_package(engine, package)
    for rater in ("007", "a,b \"quoted\"\nnewline", "r3"):
        service.start_rater(engine, "demo", rater)
        while (trial := service.next_trial(engine, "demo", rater)) is not None:
            service.record_vote(engine, "demo", rater, trial.token, "A" if trial.position % 2 else "B")
            if rater == "r3" and trial.position == 3:
                break
    out = tmp_path / "exports" / "votes.csv"
    assert main(["export", "demo", "--db", any_url, "--out", str(out)]) == 0
    assert "wrote 17 vote(s)" in capsys.readouterr().out
    assert out.read_text().splitlines()[0] == ",".join(COLUMNS)
    assert [p.name for p in out.parent.iterdir()] == ["votes.csv"]  # no temp file left behind
    frame = votes_frame(any_url if isinstance(any_url, str) else engine, "demo")
    assert list(frame.columns) == list(COLUMNS)
    pd.testing.assert_frame_equal(read_votes_csv(out), frame)
    raw = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert set(raw["attention_check"]) == {"true", "false"}
    assert set(raw["rater_finished"]) == {"true", "false"}
    assert raw["created_at"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z").all()
    assert (raw["study"] == "demo").all() and (raw["proposed_method"] == "vib").all()
    assert (raw["baseline_method"] == "baseline").all()
    finished = frame.groupby("rater")["rater_finished"].first().to_dict()
    assert finished == {"007": True, "a,b \"quoted\"\nnewline": True, "r3": False}
    checks = frame[frame["attention_check"]]
    assert (checks["expected_method"] == "vib").all()
    assert frame[~frame["attention_check"]]["expected_method"].isna().all()
    chose_left = frame["chosen_side"] == "left"
    assert (frame.loc[chose_left, "chosen_method"] == frame.loc[chose_left, "left_method"]).all()
    assert frame.groupby("rater")["position"].apply(lambda p: list(p) == list(range(1, len(p) + 1))).all()


def test_export_of_unknown_study_and_empty_study(package: Path, sqlite_url: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "nope", "--db", sqlite_url, "--out", str(tmp_path / "v.csv")]) == 1
    assert "no study named 'nope'" in capsys.readouterr().err and not (tmp_path / "v.csv").exists()
    import_package(get_engine(sqlite_url), package)
    assert export_votes_csv(sqlite_url, "demo", tmp_path / "v.csv") == 0
    assert (tmp_path / "v.csv").read_text().strip() == ",".join(COLUMNS)
    assert read_votes_csv(tmp_path / "v.csv").dtypes.equals(votes_frame(sqlite_url, "demo").dtypes)


def test_command_line_entry_points(package: Path, tmp_path: Path) -> None:
    """Real subprocesses: --help everywhere, and a failed import exits 1 with no stack trace."""
    for module in ("survey.study", "survey.invite", "scripts.simulate_raters"):
        done = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO, capture_output=True,
                              text=True)
        assert done.returncode == 0 and "usage:" in done.stdout
    (package / MANIFEST_NAME).write_text("{}")
    done = subprocess.run([sys.executable, "-m", "survey.study", "import", str(package), "--db",
                           f"sqlite:///{tmp_path / 'cli.db'}"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 1 and "manifest / schema" in done.stderr and "Traceback" not in done.stderr


def test_package_error_type_for_library_callers(package: Path, sqlite_url: str) -> None:
    (package / MANIFEST_NAME).write_text(json.dumps({"schema": "nope"}))
    with pytest.raises(PackageError) as err:
        import_package(get_engine(sqlite_url), package)
    assert len(err.value.problems) > 3
