"""Signed invitation links for studies that admit invited raters only.

A link carries ``?study=S&rater=R&token=T`` where ``T = HMAC-SHA256(secret, study, rater)``: the app
recomputes it and compares in constant time, so a rater cannot invent ids or edit the link. The
secret lives only in the environment (``SURVEY_INVITE_SECRET``), never in the database or the code.

    SURVEY_INVITE_SECRET=... python -m survey.invite --study demo --n 30 [--base-url URL]
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import secrets
import sys
from urllib.parse import urlencode

SECRET_ENV = "SURVEY_INVITE_SECRET"
MIN_SECRET_LENGTH = 16


class InviteError(ValueError):
    """Invitations cannot be made or checked (no secret configured)."""


def secret_from_env() -> str:
    """The invitation secret from ``SURVEY_INVITE_SECRET``; InviteError saying how to set it."""
    secret = os.environ.get(SECRET_ENV, "")
    if len(secret) < MIN_SECRET_LENGTH:
        state = "is not set" if not secret else f"is shorter than {MIN_SECRET_LENGTH} characters"
        raise InviteError(
            f"{SECRET_ENV} {state}; set it to a long random value, e.g. export {SECRET_ENV}="
            "$(python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    return secret


def _digest(study: str, rater: str, secret: str) -> bytes:
    message = json.dumps([study, rater], ensure_ascii=False).encode("utf-8")  # unambiguous pair
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()


def make_token(study: str, rater: str, secret: str) -> str:
    """The URL-safe token that proves (study, rater) was invited by whoever holds ``secret``."""
    if not secret:
        raise InviteError("empty invitation secret")
    return base64.urlsafe_b64encode(_digest(study, rater, secret)).rstrip(b"=").decode("ascii")


def verify_token(study: str, rater: str, token: str, secret: str) -> bool:
    """True only if ``token`` was made for exactly this study and rater; constant-time comparison."""
    if not (secret and isinstance(token, str) and isinstance(study, str) and isinstance(rater, str)):
        return False
    return hmac.compare_digest(make_token(study, rater, secret).encode("ascii"),
                               token.encode("utf-8", errors="replace"))


def invitation_link(base_url: str, study: str, rater: str, secret: str) -> str:
    query = urlencode({"study": study, "rater": rater, "token": make_token(study, rater, secret)})
    return f"{base_url.rstrip('/')}/?{query}"


def new_rater_id() -> str:
    """A fresh random rater id (``inv-`` + 10 hex digits): unguessable, says nothing about anyone."""
    return f"inv-{secrets.token_hex(5)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m survey.invite",
        description=f"Print signed invitation links, one per line. The secret comes from ${SECRET_ENV}.")
    parser.add_argument("--study", required=True, help="study name, as imported")
    parser.add_argument("--n", type=int, default=1, help="number of links (default 1)")
    parser.add_argument("--base-url", default="http://localhost:8501", help="where the app runs")
    parser.add_argument("--rater", action="append", default=[],
                        help="make a link for this rater id (repeatable) instead of random ids")
    args = parser.parse_args(argv)
    try:
        secret = secret_from_env()
        if args.n < 0:
            raise InviteError(f"--n must be >= 0, got {args.n}")
        raters = args.rater or [new_rater_id() for _ in range(args.n)]
        for rater in raters:
            print(invitation_link(args.base_url, args.study, rater, secret))
    except InviteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
