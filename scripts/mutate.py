"""`make mutate`: mutation testing of the core modules with mutmut, one module at a time.

Why per module: mutmut 3 first runs the selected tests once to learn which test reaches which
function, then runs only those tests against every mutant. Giving each module only its own fast test
files keeps one module's run to minutes on 2 cores instead of hours for the whole suite.

How: each target gets a scratch copy of the repository under `.mutation/<target>/` (git-ignored),
whose pyproject.toml carries the target's `[tool.mutmut]` section (the shared settings of the real
pyproject plus the target's files and tests). mutmut runs there, in its own `mutants/` copy, so the
working tree is never mutated. Afterwards `.mutation/<target>/` stays for inspection:

    cd .mutation/package && ../../.venv/bin/mutmut show survey.package.x_resolve_inside__mutmut_3

The script prints the score of every target (killed / all mutants) and every surviving mutant with
its diff; it exits 1 when a target is below --target (default 90 %). Equivalent mutants (that no
test can kill because behaviour is the same) are listed with their reasons in docs/testing.md.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutation"
SOURCE_PACKAGES = ["models", "cams", "survey", "analysis"]
# mutmut's exit codes per mutant (mutmut.stats.status_by_exit_code): a failing test kills; so does a
# timeout (the mutant made the tests hang, e.g. an endless loop), which we count as killed but name.
KILLED_CODES = {1: "killed", 3: "killed", 36: "killed (timeout)", -24: "killed (timeout)",
                24: "killed (timeout)", 152: "killed (timeout)", 255: "killed (timeout)"}


@dataclass(frozen=True)
class Target:
    """A module under mutation: the files mutmut mutates and the test files that must kill them."""

    files: list[str]
    tests: list[str]
    # fnmatch patterns of mutant names to run (all of the files' mutants when empty)
    only: list[str] = field(default_factory=list)
    note: str = ""
    # extra pytest arguments, e.g. a marker expression that keeps a run on SQLite
    pytest_args: list[str] = field(default_factory=list)


TARGETS: dict[str, Target] = {
    "vib": Target(
        files=["models/vib.py", "models/engine.py"],
        tests=["tests/models/test_models_vib_semantics.py", "tests/models/test_models_build.py",
               "tests/models/test_models_train_epoch.py"],
        # of the engine, the training half: loss, beta, the metrics it returns (not evaluate())
        only=["models.vib.*", "models.engine.x_beta_at__*", "models.engine.x_vib_loss__*",
              "models.engine.x_train_one_epoch__*", "models.engine.xǁRunningMeanǁ__init__*",
              "models.engine.xǁRunningMeanǁadd__*", "models.engine.xǁRunningMeanǁreduced__*"],
        note="VIB head and loss (CE + beta * KL, z = mu + sigma * eps, beta warm-up)",
    ),
    "cams": Target(
        files=["cams/base.py", "cams/cam.py", "cams/gradcam.py", "cams/render.py"],
        tests=[
            "tests/cams/test_cams_methods.py",
            "tests/cams/test_cams_render.py",
            "tests/cams/test_cams_render_reference.py",
        ],
        note="CAM computation and rendering",
    ),
    "package": Target(
        files=["survey/package.py"],
        tests=["tests/survey/test_survey_package.py", "tests/survey/test_survey_package_paths.py",
               "tests/survey/test_survey_package_details.py", "tests/survey/test_distinction_package.py",
               "tests/survey/test_survey_package_mutants.py"],
        note="study-package validator",
    ),
    "votes": Target(
        files=["survey/service.py", "survey/db.py"],
        tests=["tests/survey/test_survey_service.py", "tests/survey/test_survey_db.py"],
        only=[
            "survey.service.*record_vote*",
            "survey.service.*next_trial*",
            "survey.service.*_session_row*",
            "survey.service.*_progress*",
            "survey.service.*completion*",
            "survey.service.x__retrying__*",
            "survey.db.*",
        ],
        # reveal_trial/vote_count live in testing/reveal.py and the distinction task in
        # survey/distinction_service.py: neither is in this target
        note="vote path (record_vote, next_trial, progress, completion, the retry on a unique-key race, db)",
        pytest_args=["-m", "not postgres and not browser"],
    ),
    "admin": Target(
        files=["survey/service.py"],
        tests=["tests/survey/test_survey_service.py", "tests/survey/test_survey_admin_summary.py"],
        only=["survey.service.*admin_summary*"],
        note="admin summary",
        pytest_args=["-m", "not postgres and not browser"],
    ),
    "binomial": Target(
        files=["analysis/binomial.py"],
        tests=["tests/analysis/test_analysis_binomial.py", "tests/analysis/test_analysis_science.py"],
        note="exact binomial tests and intervals",
    ),
    "items": Target(
        files=["analysis/items.py"],
        tests=["tests/analysis/test_analysis_statistics.py", "tests/analysis/test_analysis_science.py"],
        note="item-level statistics",
    ),
    "crossed": Target(
        files=["analysis/crossed.py"],
        tests=["tests/analysis/test_analysis_statistics.py", "tests/analysis/test_analysis_science.py"],
        note="crossed-design bootstrap",
    ),
    "exclusions": Target(
        files=["analysis/exclusions.py"],
        tests=["tests/analysis/test_analysis_exclusions.py", "tests/analysis/test_analysis_report_flags.py"],
        note="rater exclusions",
    ),
}


def shared_settings() -> dict:
    """The repository's [tool.mutmut] section: settings every target shares."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return dict(data.get("tool", {}).get("mutmut", {}))


def toml_value(value: object) -> str:
    """TOML for the flat values a [tool.mutmut] section holds (json is valid TOML for these)."""
    return json.dumps(value)


def target_pyproject(target: Target) -> str:
    """The repository's pyproject.toml with [tool.mutmut] replaced by the target's settings."""
    lines, skipping = [], False
    for line in (ROOT / "pyproject.toml").read_text().splitlines():
        if line.startswith("["):
            skipping = line.strip() == "[tool.mutmut]"
        if not skipping:
            lines.append(line)
    settings = shared_settings()
    settings.update(
        source_paths=SOURCE_PACKAGES,
        only_mutate=target.files,
        pytest_add_cli_args_test_selection=target.tests,
        pytest_add_cli_args=[*settings.get("pytest_add_cli_args", []), *target.pytest_args],
    )
    lines += ["", "[tool.mutmut]"] + [f"{key} = {toml_value(value)}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def repository_files() -> list[str]:
    """Tracked and new (not ignored) files: what a fresh clone plus this work would hold."""
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    return [line for line in out.splitlines() if line and (ROOT / line).is_file()]


def prepare(name: str, target: Target) -> Path:
    """A fresh scratch copy of the repository for one target."""
    missing = [t for t in target.files + target.tests if not (ROOT / t).exists()]
    if missing:
        raise SystemExit(f"target {name!r} names files that do not exist: {', '.join(missing)}")
    work = WORK / name
    if work.exists():
        shutil.rmtree(work)
    for relative in repository_files():
        destination = work / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, destination)
    (work / "pyproject.toml").write_text(target_pyproject(target))
    return work


def mutmut() -> list[str]:
    return [sys.executable, "-c", "from mutmut.__main__ import cli; cli()"]


def mutant_names(work: Path, target: Target) -> list[str]:
    """Every generated mutant of the target's files that matches `target.only` (all when empty)."""
    names = []
    for relative in target.files:
        meta = work / "mutants" / (relative + ".meta")
        names += json.loads(meta.read_text())["exit_code_by_key"].keys() if meta.exists() else []
    if target.only:
        names = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in target.only)]
    return names


def results(work: Path, target: Target) -> dict[str, int | None]:
    """Exit code per mutant (None: not run) for the target's mutants."""
    codes: dict[str, int | None] = {}
    for relative in target.files:
        meta = work / "mutants" / (relative + ".meta")
        if meta.exists():
            codes.update(json.loads(meta.read_text())["exit_code_by_key"])
    wanted = set(mutant_names(work, target))
    return {k: v for k, v in codes.items() if k in wanted}


DIFF_SCRIPT = """
import json, sys
from mutmut.mutation.diff_apply import get_diff_for_mutant
print(json.dumps({name: get_diff_for_mutant(name) for name in json.load(sys.stdin)}))
"""


def survivor_diffs(work: Path, survivors: list[str], env: dict) -> dict[str, str]:
    """The diff of every survivor, from one mutmut process (one `mutmut show` each is slow)."""
    done = subprocess.run([sys.executable, "-c", DIFF_SCRIPT], cwd=work, env=env, input=json.dumps(survivors),
                          capture_output=True, text=True)
    return json.loads(done.stdout) if done.returncode == 0 else {}


def describe(code: int | None) -> str:
    if code is None:
        return "not checked"
    if code in KILLED_CODES:
        return KILLED_CODES[code]
    if code == 0:
        return "survived"
    if code == 33:
        return "no tests"
    return f"exit code {code}"


def run_target(name: str, target: Target, jobs: int, show_diffs: bool) -> tuple[int, int, list[str]]:
    """Mutate one target; returns (killed, total, survivors)."""
    work = prepare(name, target)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    started = time.monotonic()
    print(f"\n=== {name}: {target.note} ({', '.join(target.files)}) ===", flush=True)
    print(f"    tests: {' '.join(target.tests)}", flush=True)
    log = work / "mutmut-run.log"
    with log.open("w") as out:  # mutmut's own progress display goes to the log, our summary to stdout
        finished = subprocess.run([*mutmut(), "run", "--max-children", str(jobs), *target.only], cwd=work,
                                  env=env, stdout=out, stderr=subprocess.STDOUT)
    if finished.returncode != 0:  # e.g. the clean tests failed: no score means nothing, show why
        tail = log.read_text(errors="replace").replace("\r", "\n").splitlines()[-25:]
        print("\n".join("    | " + line for line in tail))
        print(f"    {name}: mutmut failed (exit code {finished.returncode}); full log in {log}", flush=True)
        return 0, 0, ["<mutmut failed>"]
    codes = results(work, target)
    killed = sum(1 for c in codes.values() if describe(c).startswith("killed"))
    survivors = sorted(k for k, c in codes.items() if not describe(c).startswith("killed"))
    total = len(codes)
    score = 100.0 * killed / total if total else 100.0
    minutes = (time.monotonic() - started) / 60
    print(f"    {name}: {killed}/{total} killed = {score:.1f} %  ({minutes:.1f} min; log {log})", flush=True)
    diffs = survivor_diffs(work, survivors, env) if show_diffs and survivors else {}
    for survivor in survivors:
        print(f"    survived: {survivor} ({describe(codes[survivor])})", flush=True)
        print("\n".join("        " + line for line in diffs.get(survivor, "").splitlines()[2:]), flush=True)
    return killed, total, survivors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", metavar="TARGET",
                        help=f"modules to mutate (default: all): {', '.join(TARGETS)}")
    parser.add_argument("--jobs", type=int, default=1, help="parallel mutmut workers (default 1: shared CPU)")
    parser.add_argument("--target", type=float, default=90.0,
                        help="minimum %% killed per module (default 90)")
    parser.add_argument("--no-diffs", action="store_true", help="list survivors without their diffs")
    parser.add_argument("--list", action="store_true", help="print the targets and their tests, run nothing")
    parser.add_argument("--only", action="append", default=[], metavar="PATTERN",
                        help="run only mutants whose name matches PATTERN (fnmatch, repeatable), "
                             "e.g. 'survey.package.x_resolve_inside__*'")
    args = parser.parse_args(argv)
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; choose from {', '.join(TARGETS)}")
    chosen = args.targets or list(TARGETS)
    if args.list:
        for name in chosen:
            t = TARGETS[name]
            print(f"{name:11s} {t.note}\n            files: {' '.join(t.files)}\n"
                  f"            tests: {' '.join(t.tests)}")
            if t.only:
                print(f"            only: {' '.join(t.only)}")
        return 0
    targets = {name: replace(TARGETS[name], only=args.only) if args.only else TARGETS[name] for name in chosen}
    summary = {name: run_target(name, target, args.jobs, not args.no_diffs) for name, target in targets.items()}
    print("\n=== mutation score per module ===")
    failing = []
    for name, (killed, total, survivors) in summary.items():
        score = 100.0 * killed / total if total else 0.0
        mark = "ok" if score >= args.target else "BELOW TARGET"
        print(f"  {name:11s} {killed:4d}/{total:<4d} {score:5.1f} %  {len(survivors)} survivor(s)  {mark}")
        if score < args.target:
            failing.append(name)
    return 1 if failing else 0


if __name__ == "__main__":
    raise SystemExit(main())
