"""Invitation tokens: HMAC over (study, rater), constant-time check, and the link printer."""
from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import parse_qs, urlsplit

import pytest

from survey.invite import InviteError, main, make_token, secret_from_env, verify_token

SECRET = "s3cret-s3cret-s3cret-s3cret"


def test_token_is_hmac_sha256_of_study_and_rater() -> None:
    token = make_token("demo", "r1", SECRET)
    expected = hmac.new(SECRET.encode(), json.dumps(["demo", "r1"]).encode(), hashlib.sha256).digest()
    import base64
    assert base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)) == expected
    assert verify_token("demo", "r1", token, SECRET)


@pytest.mark.parametrize("study, rater, secret", [("demo2", "r1", SECRET), ("demo", "r2", SECRET),
                                                  ("demo", "r1", SECRET + "x"), ("demor", "1", SECRET)])
def test_token_does_not_transfer(study: str, rater: str, secret: str) -> None:
    assert not verify_token(study, rater, make_token("demo", "r1", SECRET), secret)


def _one_char_changed(token: str) -> str:
    return token[:-1] + ("A" if token[-1] != "A" else "B")


TAMPERED = _one_char_changed(make_token("demo", "r1", SECRET))


@pytest.mark.parametrize("token", ["", "x", None, "é" * 43, TAMPERED])
def test_tampered_tokens_are_refused(token: str | None) -> None:
    assert not verify_token("demo", "r1", token, SECRET)
    assert not verify_token("demo", "r1", make_token("demo", "r1", SECRET), "")


def test_cli_prints_verifiable_links(monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SURVEY_INVITE_SECRET", SECRET)
    assert main(["--study", "demo", "--n", "5", "--base-url", "https://survey.example.org/app/"]) == 0
    links = capsys.readouterr().out.split()
    assert len(links) == 5
    raters = set()
    for link in links:
        parts = urlsplit(link)
        assert link.startswith("https://survey.example.org/app/?")
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        assert query["study"] == "demo" and verify_token("demo", query["rater"], query["token"], SECRET)
        raters.add(query["rater"])
    assert len(raters) == 5
    assert main(["--study", "demo", "--rater", "a&b c"]) == 0
    query = {k: v[0] for k, v in parse_qs(urlsplit(capsys.readouterr().out.strip()).query).items()}
    assert query["rater"] == "a&b c" and verify_token("demo", "a&b c", query["token"], SECRET)


@pytest.mark.parametrize("value", [None, "", "short"])
def test_missing_or_weak_secret_is_a_clear_error(value: str | None, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    if value is None:
        monkeypatch.delenv("SURVEY_INVITE_SECRET", raising=False)
    else:
        monkeypatch.setenv("SURVEY_INVITE_SECRET", value)
    with pytest.raises(InviteError, match="SURVEY_INVITE_SECRET"):
        secret_from_env()
    assert main(["--study", "demo", "--n", "2"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "SURVEY_INVITE_SECRET" in captured.err
