"""Study administration: ``python -m survey.study {import,list,open,close,export,sign-ins,unlock-admin}``.

    python -m survey.study import studies/demo --db sqlite:///data/survey.db [--name N] [--invite-only]
                                 [--repeats N] [--completion-redirect URL_TEMPLATE] [--closed]
    python -m survey.study list
    python -m survey.study open demo        /  close demo
    python -m survey.study export demo --out votes.csv
    python -m survey.study sign-ins [--last N]     /  unlock-admin   (admin page sign-ins, lockouts)

``--db`` defaults to ``$SURVEY_DB_URL``, else ``sqlite:///data/survey.db``.
"""
from __future__ import annotations

import argparse
import sys

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from survey.db import DEFAULT_URL, URL_ENV, DatabaseError, get_engine, read_session
from survey.importer import StudyImportError, import_package
from survey.package import PackageError
from survey.schema import DistinctionAnswer, Item, Rater, Study, Vote
from survey.service import SurveyError, list_studies, set_study_open


def _cmd_import(args: argparse.Namespace) -> int:
    result = import_package(get_engine(args.db), args.package, name=args.name, invite_only=args.invite_only,
                            repeats=args.repeats, completion_redirect=args.completion_redirect,
                            is_open=not args.closed)
    verb = {"created": "imported", "unchanged": "unchanged (already imported)",
            "relocated": "unchanged; package folder updated", "replaced": "replaced (it had no votes)"}
    print(f"study {result.study!r}: {verb[result.action]} - {result.n_items} items + "
          f"{result.n_attention_checks} attention checks from {result.package_root}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    with read_session(get_engine(args.db)) as session:
        studies = session.scalars(select(Study).order_by(Study.name)).all()
        if not studies:
            print("no studies; import one with: python -m survey.study import PACKAGE")
            return 0
        print(f"{'study':<24} {'state':<7} {'access':<7} {'items':>5} {'raters':>6} {'done':>5} {'votes':>6}")
        for study in studies:
            items = session.scalar(select(func.count()).select_from(Item).where(Item.study_id == study.id))
            raters = session.scalar(select(func.count()).select_from(Rater).where(Rater.study_id == study.id))
            done = session.scalar(select(func.count()).select_from(Rater)
                                  .where(Rater.study_id == study.id, Rater.finished_at.is_not(None)))
            votes = session.scalar(select(func.count()).select_from(Vote)
                                   .join(Rater, Vote.rater_id == Rater.id).where(Rater.study_id == study.id))
            votes += session.scalar(select(func.count()).select_from(DistinctionAnswer)  # distinction answers
                                    .join(Rater, DistinctionAnswer.rater_id == Rater.id)
                                    .where(Rater.study_id == study.id))
            state = "open" if study.is_open else "closed"
            access = "invite" if study.invite_only else "public"
            print(f"{study.name:<24} {state:<7} {access:<7} {items:>5} {raters:>6} {done:>5} {votes:>6}")
    return 0


def _cmd_open_close(args: argparse.Namespace) -> int:
    engine = get_engine(args.db)
    if args.name not in list_studies(engine):
        known = ", ".join(list_studies(engine)) or "none"
        raise StudyImportError(f"no study named {args.name!r} (studies: {known})")
    set_study_open(engine, args.name, args.command == "open")
    print(f"study {args.name!r} is now {'open' if args.command == 'open' else 'closed'}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from survey.distinction_export import is_distinction_study
    from survey.export import export_votes_csv  # pandas only when exporting: the other commands start fast

    engine = get_engine(args.db)
    rows = export_votes_csv(engine, args.name, args.out)  # a distinction study: one row per answer
    if is_distinction_study(engine, args.name):
        print(f"wrote {rows} answer(s) of distinction study {args.name!r} to {args.out}")
    else:
        print(f"wrote {rows} vote(s) of study {args.name!r} to {args.out}")
    return 0


def _cmd_sign_ins(args: argparse.Namespace) -> int:
    from survey import admin_auth

    engine = get_engine(args.db)
    records = admin_auth.recent_sign_ins(engine, args.last)
    if not records:
        print("no admin sign-in attempts yet")
        return 0
    print(f"{'time (UTC)':<19}  {'client address':<39}  outcome")
    for record in records:
        print(f"{record.at:%Y-%m-%d %H:%M:%S}  {record.client_address or '-':<39}  {record.outcome}")
    for address in dict.fromkeys(r.client_address for r in records if r.outcome != "reset"):
        left = admin_auth.lockout_left(engine, address)
        if left > 0:
            print(f"locked: {address or 'clients without a known address'} for "
                  f"{admin_auth.wait_text(left)} more (clear with: python -m survey.study unlock-admin)")
    return 0


def _cmd_unlock_admin(args: argparse.Namespace) -> int:
    from survey import admin_auth

    admin_auth.unlock(get_engine(args.db))
    print("every admin sign-in lockout is cleared (logged as 'reset')")
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=None, metavar="URL",
                        help=f"database URL (default: ${URL_ENV}, else {DEFAULT_URL})")
    parser = argparse.ArgumentParser(prog="python -m survey.study", description="Manage survey studies.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("import", parents=[common],
                       help="validate a study package and load it (all or nothing)")
    p.add_argument("package", metavar="PACKAGE", help="study package folder (with manifest.json)")
    p.add_argument("--name", help="study name (default: the manifest's name)")
    p.add_argument("--invite-only", action="store_true",
                   help="admit only raters with a signed invitation link")
    p.add_argument("--repeats", type=int, default=None, metavar="N",
                   help="items each rater sees twice, sides swapped (default: manifest 'repeats' or 0)")
    p.add_argument("--completion-redirect", metavar="URL_TEMPLATE",
                   help="send finished raters here; {code}, {rater} and {study} are filled in, e.g. "
                        "https://app.prolific.com/submissions/complete?cc={code}")
    p.add_argument("--closed", action="store_true", help="import without opening the study to raters")
    p.set_defaults(run=_cmd_import)

    p = sub.add_parser("list", parents=[common], help="list studies with their progress")
    p.set_defaults(run=_cmd_list)
    for command, text in (("open", "let raters take the study"),
                          ("close", "stop accepting raters and votes")):
        p = sub.add_parser(command, parents=[common], help=text)
        p.add_argument("name", metavar="NAME")
        p.set_defaults(run=_cmd_open_close)
    p = sub.add_parser("export", parents=[common], help="write the votes as CSV (see docs/survey.md)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--out", required=True, metavar="CSV", help="output file (written atomically)")
    p.set_defaults(run=_cmd_export)
    p = sub.add_parser("sign-ins", parents=[common],
                       help="list the latest admin sign-in attempts and any running lockout")
    p.add_argument("--last", type=int, default=20, metavar="N", help="how many attempts (default: 20)")
    p.set_defaults(run=_cmd_sign_ins)
    p = sub.add_parser("unlock-admin", parents=[common],
                       help="clear every admin sign-in lockout (after an attack locked you out)")
    p.set_defaults(run=_cmd_unlock_admin)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except PackageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print("nothing was imported; fix the problems above and run the import again", file=sys.stderr)
        return 1
    except (StudyImportError, SurveyError, DatabaseError, ValueError) as exc:  # ExportError is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OperationalError as exc:
        print(f"error: database {args.db or 'default'} cannot be used: {exc.orig}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
