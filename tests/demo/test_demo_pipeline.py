"""The main job must never break silently: run `make demo`'s pipeline end to end at a tiny size."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parents[2]


def run_demo(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scripts.demo", "--tiny", "--no-serve", "--root", str(root)],
                          cwd=REPO, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_demo_pipeline_builds_every_artefact_and_is_reusable(tmp_path: Path) -> None:
    first = run_demo(tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]

    for run in ("baseline", "vib"):
        assert (tmp_path / "runs" / "demo" / run / "best.pt").is_file()
    table = (tmp_path / "runs" / "demo" / "table" / "table1.csv").read_text()
    assert "baseline" in table.lower() and "vib" in table.lower()

    manifest = json.loads((tmp_path / "studies" / "demo" / "manifest.json").read_text())
    assert manifest["schema"] == "vibcam.study/1"
    assert any(item["attention_check"] for item in manifest["items"])
    with (tmp_path / "studies" / "demo-metrics" / "metrics.csv").open() as handle:
        methods = {row["method"] for row in csv.DictReader(handle)}
    assert methods == set(manifest["methods"])
    assert "pointing game" in first.stdout
    assert "bottleneck ACTIVE" in first.stdout or "bottleneck INACTIVE" in first.stdout  # the verdict is printed
    assert "mean |map_vib - map_baseline| = " in first.stdout

    engine = create_engine(f"sqlite:///{tmp_path / 'data' / 'survey.db'}")
    with engine.connect() as conn:
        n_items = conn.execute(text("SELECT count(*) FROM items")).scalar_one()
    engine.dispose()
    assert n_items == len(manifest["items"])

    second = run_demo(tmp_path)  # a second run reuses everything: no training, no new package
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "reusing" in second.stdout
    assert "$ " + sys.executable + " -m models.train" not in second.stdout


def test_make_help_lists_every_target() -> None:
    out = subprocess.run(["make", "help"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    for target in ("demo", "demo-votes", "report", "demo-distinction", "test", "bench", "clean"):
        assert f"make {target} " in out


def test_demo_server_is_the_only_place_for_the_demo_password() -> None:
    """`make demo` serves on 127.0.0.1 with SURVEY_DEMO=1, which is what makes its printed password
    valid; the same password on any other address, or without the flag, is refused."""
    from scripts.demo import serve_command
    from survey import admin_auth

    cmd, env, password = serve_command("sqlite:////tmp/x.db", 8600, {"PATH": "/usr/bin"})
    assert password == env["SURVEY_ADMIN_PASSWORD"] == admin_auth.DEMO_PASSWORD
    address = cmd[cmd.index("--server.address") + 1]
    assert address == "127.0.0.1" and cmd[cmd.index("--server.port") + 1] == "8600"
    assert admin_auth.is_demo(env, address)
    assert admin_auth.password_problem(password, demo=admin_auth.is_demo(env, address)) is None
    for other in (None, "0.0.0.0", "192.0.2.10"):
        assert admin_auth.password_problem(password, demo=admin_auth.is_demo(env, other)) is not None
    assert admin_auth.password_problem(password, demo=admin_auth.is_demo({}, address)) is not None

    own = "my own long admin password"
    _, env, password = serve_command("sqlite:////tmp/x.db", 8600, {"SURVEY_ADMIN_PASSWORD": own})
    assert password == env["SURVEY_ADMIN_PASSWORD"] == own
