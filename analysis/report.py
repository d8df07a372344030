"""`python -m analysis.report`: the analysis report of one study (report.md, report.html, summary.json).

    python -m analysis.report --votes votes.csv --out reports/demo
    python -m analysis.report --db sqlite:///data/survey.db --study demo --out reports/demo --metrics metrics.csv

Also writes items.csv (every item's votes and interval; pairwise votes), distinction_items.csv (accuracy per
item and method; distinction answers, issue 14) and figures/ (the PNGs report.md links).
Everything is written to a temporary folder first and moved into place at the end, so a failed
run never leaves half a report.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from tqdm import tqdm

from analysis.exclusions import ExclusionRules
from analysis.load import VotesError
from analysis.metric_agreement import load_metrics
from analysis.render import build_blocks, to_html, to_markdown
from analysis.summary import Analysis, AnalysisOptions, run_analysis
from analysis.tasks import load_study


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m analysis.report",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    source = parser.add_argument_group("votes (one of)")
    source.add_argument("--votes", metavar="CSV", help="votes CSV written by `python -m survey.study export`")
    source.add_argument(
        "--db", metavar="URL", help="survey database URL, e.g. sqlite:///data/survey.db (needs --study)"
    )
    parser.add_argument(
        "--study", metavar="NAME", help="study to analyse (required with --db; picks one study in a CSV)"
    )
    parser.add_argument(
        "--out", metavar="DIR", required=True, help="folder for report.md, report.html, summary.json"
    )
    parser.add_argument(
        "--metrics",
        metavar="CSV",
        help="per-item automatic metrics (item, method, metric columns) from `python -m cams.metrics`",
    )
    parser.add_argument("--proposed", metavar="NAME", help="check that the proposed method is NAME")
    parser.add_argument("--baseline", metavar="NAME", help="check that the baseline method is NAME")
    ex = parser.add_argument_group("exclusions (results are also shown without them)")
    ex.add_argument("--keep-unfinished", action="store_true", help="keep raters who did not finish")
    ex.add_argument(
        "--max-failed-checks",
        type=int,
        default=0,
        metavar="N",
        help="exclude raters with more than N failed attention checks",
    )
    ex.add_argument("--keep-failed-checks", action="store_true", help="turn the attention-check rule off")
    ex.add_argument(
        "--min-response-ms",
        type=float,
        default=500.0,
        metavar="MS",
        help="drop votes faster than MS milliseconds (0 turns it off)",
    )
    ex.add_argument(
        "--max-fast-fraction",
        type=float,
        default=0.5,
        metavar="F",
        help="exclude raters with more than this share of too-fast votes (1 turns it off)",
    )
    ex.add_argument(
        "--no-exclusions", action="store_true", help="keep every vote (overrides the flags above)"
    )
    st = parser.add_argument_group("statistics")
    st.add_argument("--confidence", type=float, default=0.95, help="confidence level of every interval")
    st.add_argument("--bootstrap", type=int, default=2000, metavar="B", help="bootstrap replicates")
    st.add_argument("--seed", type=int, default=0, help="random seed of the bootstraps")
    st.add_argument("--no-mixed", action="store_true", help="skip the mixed models")
    st.add_argument(
        "--mixed-max-votes",
        type=int,
        default=20000,
        metavar="N",
        help="skip the mixed models above N votes (they scale badly)",
    )
    st.add_argument(
        "--side-threshold",
        type=float,
        default=0.9,
        metavar="F",
        help="flag raters choosing one side at least this often",
    )
    st.add_argument(
        "--min-side-votes",
        type=int,
        default=10,
        metavar="N",
        help="only flag raters with at least N decided votes",
    )
    return parser


def rules_from_args(args: argparse.Namespace) -> ExclusionRules:
    if args.no_exclusions:
        return ExclusionRules.none()
    if args.max_failed_checks < 0:
        raise VotesError(f"--max-failed-checks must be >= 0, got {args.max_failed_checks}")
    return ExclusionRules(
        exclude_unfinished=not args.keep_unfinished,
        max_failed_checks=None if args.keep_failed_checks else args.max_failed_checks,
        min_response_ms=args.min_response_ms if args.min_response_ms > 0 else None,
        max_fast_fraction=args.max_fast_fraction if args.max_fast_fraction < 1 else None,
    )


def write_report(analysis: Analysis, out: Path) -> list[Path]:
    """Write every output into `out` atomically; returns the written paths."""
    kind = "Preference" if analysis.votes is not None else "Distinction"
    title = f"{kind} study report: {analysis.summary['study']['name']}"
    blocks = build_blocks(analysis)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    summary = dict(analysis.summary, generated_at=stamp)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the published report is an ordinary folder
    try:
        figures = staging / "figures"
        figures.mkdir()
        for block in blocks:
            if block.kind == "figure":
                (figures / block.name).write_bytes(block.content)
        (staging / "report.md").write_text(
            to_markdown(blocks, title) + f"\n_Generated {stamp}._\n", encoding="utf-8"
        )
        (staging / "report.html").write_text(to_html(blocks, title), encoding="utf-8")
        if analysis.votes is not None:
            analysis.items.to_csv(staging / "items.csv", index=False)
        if analysis.distinction_items is not None:
            analysis.distinction_items.to_csv(staging / "distinction_items.csv", index=False)
        (staging / "summary.json").write_text(
            json.dumps(summary, indent=2, allow_nan=False) + "\n", encoding="utf-8"
        )
        return publish(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish(staging: Path, out: Path) -> list[Path]:
    """Move a finished staging folder into `out`: a rename when `out` is new, else file by file
    (each an atomic replace; summary.json last, so pipelines never see a new summary beside an old report)."""
    if not out.exists():
        os.replace(staging, out)
        return sorted(p for p in out.rglob("*") if p.is_file())
    if not out.is_dir():
        raise VotesError(f"--out {out} exists and is not a folder")
    written = []
    files = sorted((p for p in staging.rglob("*") if p.is_file()), key=lambda p: p.name == "summary.json")
    for source in files:
        target = out / source.relative_to(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if bool(args.votes) == bool(args.db):
        print("error: give exactly one of --votes CSV or --db URL (with --study NAME)", file=sys.stderr)
        return 2
    if args.db and not args.study:
        print("error: --db needs --study NAME", file=sys.stderr)
        return 2
    try:
        options = AnalysisOptions(
            confidence=args.confidence,
            replicates=args.bootstrap,
            seed=args.seed,
            mixed=not args.no_mixed,
            mixed_max_votes=args.mixed_max_votes,
            side_threshold=args.side_threshold,
            min_side_votes=args.min_side_votes,
        )
        rules = rules_from_args(args)
        metrics = load_metrics(args.metrics) if args.metrics else None
        steps = [
            "load",
            "exclusions",
            "vote, item and crossed-design statistics",
            "statistics without exclusions",
            "test-retest",
            "mixed models",
            "method comparison",
            "automatic metrics",
            "distinction task",
            "write",
        ]
        with tqdm(total=len(steps), desc="analysis", unit="step", file=sys.stderr) as bar:
            bar.set_postfix_str("load")
            votes = load_study(
                args.db or args.votes, args.study, proposed=args.proposed, baseline=args.baseline
            )

            def progress(step: str) -> None:
                bar.update(1)
                bar.set_postfix_str(step)

            analysis = run_analysis(votes, rules, options, metrics, progress=progress)
            bar.set_postfix_str("write")
            write_report(analysis, Path(args.out))
            bar.update(bar.total - bar.n)
    except (VotesError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: cannot write the report to {args.out}: {exc}", file=sys.stderr)
        return 1
    print(analysis.summary["conclusion"])
    for warning in analysis.summary["warnings"]:
        print(f"warning: {warning}")
    tables = ", ".join(
        name
        for name, present in (("items.csv", analysis.votes is not None), ("distinction_items.csv", analysis.distinction_items is not None))
        if present
    )
    print(f"report: {Path(args.out) / 'report.html'} (also report.md, summary.json, {tables})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
