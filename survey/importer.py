"""Loading a study package into the database: validate everything first, then all or nothing.

Rules (issue 4, section 2):
* the package is validated completely (manifest, every file inside the package and decoding) before
  the database is touched, and every problem is reported at once;
* the load is one transaction: it either lands whole or not at all;
* re-importing the same package (same files, same options) changes nothing;
* a changed package under an existing name replaces the old study only while it has no votes;
  the database itself also refuses to delete votes (foreign keys without ON DELETE).
"""
from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from survey.db import write_session
from survey.package import (
    DEFAULT_DISTINCTION_QUESTION, NAME_PATTERN, Problem, PackageError, load_package, manifest_task,
    package_fingerprint,
)
from survey.schema import (
    DistinctionAnswer, DistinctionCandidate, DistinctionItem, Item, ItemMap, Method, Rater, Study, Vote, utcnow,
)


class StudyImportError(ValueError):
    """The package is fine but cannot be imported as asked (name clash with votes, bad option)."""


@dataclass(frozen=True)
class ImportResult:
    study: str
    action: Literal["created", "unchanged", "relocated", "replaced"]
    n_items: int
    n_attention_checks: int
    package_root: Path


def _check_options(manifest: dict, name: str, repeats: int, completion_redirect: str | None) -> None:
    problems = []
    if not NAME_PATTERN.fullmatch(name):
        problems.append(Problem("manifest", "name", f"--name must match [A-Za-z0-9_-]{{1,64}}, got {name!r}"))
    n_regular = sum(not item.get("attention_check", False) for item in manifest["items"])
    if not 0 <= repeats <= n_regular:
        problems.append(Problem("manifest", "repeats", f"--repeats must be between 0 and {n_regular} "
                                f"(the regular items), got {repeats}"))
    if completion_redirect is not None:
        parts = urlsplit(completion_redirect)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            problems.append(Problem("manifest", "completion_redirect",
                                    "must be an http(s) URL template such as "
                                    "https://app.prolific.com/submissions/complete?cc={code}, "
                                    f"got {completion_redirect!r}"))
    if problems:
        raise PackageError(problems)


def _insert(session: Session, manifest: dict, *, name: str, root: Path, fingerprint: str,
            invite_only: bool, repeats: int, completion_redirect: str | None, is_open: bool) -> Study:
    task = manifest_task(manifest)
    study = Study(
        name=name, task=task, question=manifest.get("question", DEFAULT_DISTINCTION_QUESTION),
        instructions=manifest["instructions"],
        consent=manifest.get("consent"), allow_no_preference=bool(manifest.get("allow_no_preference", False)),
        is_open=is_open, invite_only=invite_only, repeats=repeats,
        completion_code=secrets.token_hex(4).upper(), completion_redirect=completion_redirect,
        seed=secrets.randbits(62), n_raters=0, package_root=str(root), fingerprint=fingerprint,
        manifest_json=json.dumps(manifest, ensure_ascii=False), imported_at=utcnow(),
    )
    session.add(study)
    session.flush()
    roles = {manifest["proposed"]: "proposed", manifest["baseline"]: "baseline"}
    methods = {m: Method(study_id=study.id, name=m, role=roles.get(m), ordinal=k)
               for k, m in enumerate(manifest["methods"])}
    session.add_all(methods.values())
    session.flush()
    for ordinal, entry in enumerate(manifest["items"]):
        check = bool(entry.get("attention_check", False))
        if task == "distinction":
            _insert_distinction_item(session, study, ordinal, entry, methods)
            continue
        item = Item(study_id=study.id, key=entry["id"], ordinal=ordinal, label=entry["label"],
                    image_path=entry["image"], mask_path=entry.get("mask"), is_attention_check=check,
                    expected_method_id=methods[entry["expected"]].id if check else None)
        session.add(item)
        session.flush()
        heatmaps = entry.get("heatmaps", {})
        session.add_all(ItemMap(item_id=item.id, method_id=methods[m].id, path=path,
                                heatmap_path=heatmaps.get(m))
                        for m, path in entry["maps"].items())
    session.flush()
    return study


def _insert_distinction_item(session: Session, study: Study, ordinal: int, entry: dict,
                             methods: dict[str, Method]) -> None:
    """An item of a distinction study: its check flag and every method's candidates (schema docs)."""
    item = Item(study_id=study.id, key=entry["id"], ordinal=ordinal, label=entry["label"],
                image_path=entry["image"], mask_path=entry.get("mask"), is_attention_check=False,
                expected_method_id=None)
    session.add(item)
    session.flush()
    session.add(DistinctionItem(item_id=item.id, is_attention_check=bool(entry.get("attention_check", False))))
    session.add_all(DistinctionCandidate(item_id=item.id, method_id=methods[method].id, ordinal=k,
                                         label=candidate["label"], path=candidate["map"], rank=candidate["rank"])
                    for method, listed in entry["candidates"].items() for k, candidate in enumerate(listed))


def _answer_count(session: Session, study: Study) -> int:
    """Votes and distinction answers of a study: what must never be deleted by a re-import."""
    votes = session.scalar(select(func.count()).select_from(Vote).join(Rater, Vote.rater_id == Rater.id)
                           .where(Rater.study_id == study.id))
    answers = session.scalar(select(func.count()).select_from(DistinctionAnswer)
                             .join(Rater, DistinctionAnswer.rater_id == Rater.id).where(Rater.study_id == study.id))
    return votes + answers


def import_package(engine: Engine, package: Path | str, *, name: str | None = None, invite_only: bool = False,
                   repeats: int | None = None, completion_redirect: str | None = None,
                   is_open: bool = True) -> ImportResult:
    """Validates the package at ``package`` and loads it as study ``name`` (default: manifest name).

    Raises PackageError (every problem of the package or options) or StudyImportError; in both cases
    the database is unchanged.
    """
    root = Path(package).expanduser().resolve()
    manifest = load_package(root)
    name = name or manifest["name"]
    repeats = manifest.get("repeats", 0) if repeats is None else repeats
    _check_options(manifest, name, repeats, completion_redirect)
    options = {"invite_only": bool(invite_only), "repeats": repeats,
               "completion_redirect": completion_redirect}
    fingerprint = hashlib.sha256(
        (package_fingerprint(root, manifest) + json.dumps(options, sort_keys=True)).encode()
    ).hexdigest()
    n_checks = sum(bool(item.get("attention_check", False)) for item in manifest["items"])
    n_items = len(manifest["items"]) - n_checks

    def result(action: str) -> ImportResult:
        return ImportResult(name, action, n_items, n_checks, root)  # type: ignore[arg-type]

    try:
        with write_session(engine) as session:
            existing = session.scalar(select(Study).where(Study.name == name))
            if existing is not None and existing.fingerprint == fingerprint:
                if existing.package_root == str(root):
                    return result("unchanged")
                existing.package_root = str(root)  # same files, moved folder: just follow them
                return result("relocated")
            action = "created"
            if existing is not None:
                votes = _answer_count(session, existing)
                if votes:
                    raise StudyImportError(
                        f"study {name!r} already exists with different content or options and has {votes} "
                        f"vote(s); it cannot be replaced. Import the changed package under a new --name.")
                # Cascades to raters and assignments; votes (there are none) would block it.
                session.execute(delete(Study).where(Study.id == existing.id))
                session.flush()
                action = "replaced"
            _insert(session, manifest, name=name, root=root, fingerprint=fingerprint,
                    invite_only=bool(invite_only), repeats=repeats, completion_redirect=completion_redirect,
                    is_open=is_open)
            return result(action)
    except IntegrityError as exc:  # a concurrent import or vote got there first
        raise StudyImportError(
            f"study {name!r} changed while importing ({exc.orig}); run the import again") from None
