"""`make demo-distinction`: HIVE's distinction task on the demo's models, the whole loop in one command.

Each step is a user-facing command run as a subprocess (echoed, so this doubles as a tutorial), and
skipped when its output exists: the demo's trained runs (`make demo` trains them; trained here if
missing) -> a distinction study package (each model's top-4 maps per image, attention checks) ->
import into the demo database as study `demo-distinction` -> 30 simulated raters whose choices follow
how much of each map lies on the object -> the answers CSV -> the analysis report.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from scripts.demo import FULL, TINY, DemoSize, banner, data_args, run, train
from scripts.distinction_raters import candidate_energies
from survey.package import CANDIDATES

STUDY = "demo-distinction"
# The end-to-end test's size: make demo's tiny size with the 4 classes that each model's top-4 needs.
TINY_DISTINCTION = replace(TINY, num_classes=CANDIDATES)
ITEMS = {FULL: 20, TINY_DISTINCTION: 4}  # regular items; distinction trials are quick, items limit precision


def energy_summary(package: Path) -> str:
    """What the simulated raters see: per method, the mean energy in mask of the rank-1 map against the
    mean of the others (share of each map's mass on the labelled object)."""
    rank_one: dict[str, list[float]] = {}
    others: dict[str, list[float]] = {}
    for (_, method), energies in candidate_energies(package).by_trial.items():
        rank_one.setdefault(method, []).append(energies[1])
        others.setdefault(method, []).extend(e for rank, e in energies.items() if rank != 1)
    return "; ".join(f"{m}: prediction's map {np.mean(rank_one[m]):.2f}, other maps {np.mean(others[m]):.2f}"
                     for m in sorted(rank_one))


def build(root: Path, size: DemoSize, db_url: str, raters: int) -> dict[str, Path]:
    runs = root / "runs" / "demo"
    package = root / "studies" / STUDY
    answers = root / "data" / f"{STUDY}-answers.csv"
    report = root / "reports" / STUDY

    banner("1/5 The demo's baseline and VIB ResNet-18 (trained by make demo; reused when present)")
    train(runs / "baseline", size, "baseline")
    train(runs / "vib", size, "vib")

    banner("2/5 Distinction study package: each model's top classes, one map per class")
    if (package / "manifest.json").exists():
        print(f"reusing {package} (delete it to regenerate)")
    else:
        run([sys.executable, "-m", "cams.generate", "--task", "distinction",
             "--proposed", f"vib={runs / 'vib'}", "--baseline", f"baseline={runs / 'baseline'}",
             *data_args(size), "--random", str(ITEMS[size]),
             "--attention-checks", str(size.attention_checks), "--seed", "0", "--name", STUDY,
             "--out", str(package)])
    print("energy in mask (what the simulated raters go by): " + energy_summary(package))

    banner("3/5 Import into the survey database")
    run([sys.executable, "-m", "survey.study", "import", str(package), "--db", db_url, "--name", STUDY])

    banner(f"4/5 {raters} simulated raters (each sees one method's maps)")
    run([sys.executable, "-m", "scripts.simulate_raters", "--db", db_url, "--study", STUDY,
         "--raters", str(raters)])
    run([sys.executable, "-m", "survey.study", "export", STUDY, "--db", db_url, "--out", str(answers)])

    banner("5/5 Analysis report")
    # --min-response-ms 0: simulated raters answer in milliseconds.
    run([sys.executable, "-m", "analysis.report", "--votes", str(answers), "--study", STUDY,
         "--out", str(report), "--min-response-ms", "0"])
    return {"package": package, "answers": answers, "report": report / "report.html",
            "summary": report / "summary.json"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path("."), help="where runs/, studies/, data/, reports/ go")
    parser.add_argument("--db", default=None, help="survey database URL (default: sqlite:///ROOT/data/survey.db)")
    parser.add_argument("--raters", type=int, default=30, help="simulated raters (default 30)")
    parser.add_argument("--tiny", action="store_true",
                        help="a seconds-long run for the end-to-end test (its own 4-class runs under ROOT)")
    args = parser.parse_args(argv)
    db_url = args.db or f"sqlite:///{(args.root / 'data' / 'survey.db').resolve()}"
    (args.root / "data").mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    where = build(args.root, TINY_DISTINCTION if args.tiny else FULL, db_url, args.raters)
    print(f"\ndistinction demo done in {time.monotonic() - started:.0f} s")
    print(f"  Study package:  {where['package']}")
    print(f"  Database:       {db_url} (study {STUDY})")
    print(f"  Answers CSV:    {where['answers']}")
    print(f"  Report:         {where['report']}  (numbers: {where['summary']})")
    print(f"  Answer it yourself: make demo (serves this database), then "
          f"http://localhost:8501/?study={STUDY}&rater=alice")


if __name__ == "__main__":
    main()
