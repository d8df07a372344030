"""Plain decisions behind the rater and admin pages, kept out of Streamlit so they are unit-tested.

Everything here is about *untrusted input* (query parameters, typed rater ids, the admin password)
and *what a rater may see* (progress text, the question, links). Messages raised as
:class:`BadLink` are shown to raters verbatim, so they are generic: they never echo the input, never
name a method, file or exception.

Stdlib only (plus :mod:`survey.package` for the study-name rule), like the rest of ``survey``.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import urlsplit

from survey.package import NAME_PATTERN

MAX_RATER_ID_CHARS = 200  # the service stores rater ids verbatim up to this length
DEFAULT_CONSENT = (
    "This is a short study about how people judge pictures. You will see a photo and two "
    "highlighted versions of it, and pick the one that better shows what the photo is. "
    "Taking part is voluntary; you may stop at any time by closing the page. We store only your "
    "answers, how long each took, and the participant id you give us."
)

DEFAULT_DISTINCTION_CONSENT = (
    "This is a short study about how people read pictures that explain a computer's decision. You "
    "will see a photo and a few highlighted versions of it, each with a name, and pick the one that "
    "belongs to the computer's choice. Taking part is voluntary; you may stop at any time by closing "
    "the page. We store only your answers, how long each took, and the participant id you give us."
)


def default_consent(task: str) -> str:
    """The consent text a study without its own ``consent`` shows, worded for its task."""
    return DEFAULT_DISTINCTION_CONSENT if task == "distinction" else DEFAULT_CONSENT


def confidence_help(ends: Mapping[int, str]) -> str:
    """"Click a number under the map you choose: 1 = just guessing ... 5 = certain." (Markdown-safe)"""
    low, high = min(ends), max(ends)
    return escape_markdown(f"Click a number under the map you choose: {low} = {ends[low]}, "
                           f"{high} = {ends[high]}.")


class BadLink(ValueError):
    """An unusable survey link or rater id; the message is safe to show to a rater as is."""


def _clean(value: object) -> str | None:
    """A query parameter or typed value as stripped text, or None when absent or blank."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):  # repeated ?rater=a&rater=b: take the last, like st.query_params
        value = value[-1] if value else None
        if value is None:
            return None
    text = str(value).strip()
    return text or None


def choose_study(query_value: object, configured: str | None,
                 open_studies: Callable[[], Sequence[str]]) -> str:
    """The study a visitor takes: ``?study=`` first, then ``SURVEY_STUDY``, then the only open study.

    ``open_studies`` is only called when neither the link nor the configuration names a study.
    Raises BadLink when the name is malformed (the caller still checks that it exists) or when
    nothing says which study to take.
    """
    from_link = _clean(query_value)
    if from_link is not None:
        if not NAME_PATTERN.fullmatch(from_link):
            raise BadLink("This survey link is not valid. Please check the link you were given.")
        return from_link
    from_config = _clean(configured)
    if from_config is not None:
        return from_config
    candidates = list(open_studies())
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise BadLink("No survey is open at the moment. Thank you for your interest.")
    raise BadLink("Please open the survey with the link you were given.")


def rater_id_from(value: object) -> str | None:
    """A usable rater id (stripped), or None when none was given; raises BadLink for a bad one.

    Any printable text up to 200 characters is accepted (quotes, HTML, emoji are fine: ids are
    stored verbatim and never rendered as Markdown or HTML); control characters are refused because
    they cannot be typed and only appear in tampered links.
    """
    text = _clean(value)
    if text is None:
        return None
    if len(text) > MAX_RATER_ID_CHARS:
        raise BadLink(f"That participant id is too long (at most {MAX_RATER_ID_CHARS} characters).")
    if any(unicodedata.category(ch) in {"Cc", "Cs"} for ch in text):
        raise BadLink("That participant id contains characters that are not allowed.")
    return text


def rater_from_params(params: Mapping[str, object]) -> str | None:
    """The rater id a link carries: ``?rater=`` wins over Prolific's ``?PROLIFIC_PID=``."""
    rater = rater_id_from(params.get("rater"))
    return rater if rater is not None else rater_id_from(params.get("PROLIFIC_PID"))


def token_from(value: object) -> str | None:
    """An invitation token from the link (bounded so a 10 kB parameter is refused cheaply)."""
    text = _clean(value)
    if text is not None and len(text) > 512:
        raise BadLink("This invitation link is not valid. Please check the link you were given.")
    return text


DEFAULT_MIN_VOTE_GAP_MS = 500  # the analysis' default minimum response time (MIN_RESPONSE_MS)
DEFAULT_ARM_MS = 400  # nobody judges a new pair this fast; below the analysis' 500 ms minimum


def _milliseconds(value: str | None, default: int) -> int:
    """A duration setting from the environment: a whole number of milliseconds >= 0; anything else
    (unset, empty, not a number, negative) is ``default``, so a typo never turns a guard off."""
    try:
        ms = int(value) if value not in (None, "") else default
    except ValueError:
        return default
    return ms if ms >= 0 else default


def min_vote_gap_s(value: str | None) -> float:
    """``$SURVEY_MIN_VOTE_GAP_MS`` in seconds (default 0.5 s): a vote on a new pair sooner than this
    after the rater's previous vote is the tail of a double click (``survey.clicks.VoteSpacing``)."""
    return _milliseconds(value, DEFAULT_MIN_VOTE_GAP_MS) / 1000


def arm_ms(value: str | None) -> int:
    """``$SURVEY_VOTE_ARM_MS`` (default 400): how long a new pair's buttons take no clicks after the
    browser draws them (:func:`arming_css`); 0 turns it off."""
    return _milliseconds(value, DEFAULT_ARM_MS)


def arming_css(token: str, ms: int) -> str:
    """A style that keeps the buttons of the trial ``token`` unclickable for ``ms`` after the browser
    draws them ("" when ``ms`` is 0).

    Why: Streamlit reuses the previous pair's button elements for the next pair, so a click repeated
    on a slow page can land on the new pair's button the instant it is drawn, however late that
    reaches the server (``survey.clicks.VoteSpacing`` only catches it within 500 ms of the previous
    click's arrival; under load the new pair can take seconds to show). The browser itself knows when
    the pair appeared: an animation named after the token starts when the new pair's keys take over
    the element and holds ``pointer-events: none`` while it runs. Tokens are URL-safe base64, so they
    are valid in CSS names and selectors as they are."""
    if ms <= 0:
        return ""
    name = f"vibcam-arm-{token}"
    return (f'<style>[class*="st-key-"][class*="-{token}"] button {{ animation: {name} {ms}ms step-end; }}'
            f"@keyframes {name} {{ from, to {{ pointer-events: none; }} }}</style>")


def progress(position: int, total: int) -> tuple[float, str]:
    """Bar fraction (share already answered) and the text "7 / 15" for the item on screen."""
    if total <= 0:
        return 1.0, "0 / 0"
    position = min(max(position, 1), total)
    return (position - 1) / total, f"{position} / {total}"


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~$:&])")


def escape_markdown(text: str) -> str:
    """``text`` made literal for ``st.markdown``: every Markdown/HTML-significant character escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def question_markdown(question: str, label: str) -> str:
    """The study question with ``{label}`` filled in bold, everything else literal.

    ``str.replace`` rather than ``str.format`` so braces in a question or label cannot break it.
    """
    parts = [escape_markdown(part) for part in question.split("{label}")]
    return f"**{escape_markdown(label)}**".join(parts)


def safe_link(url: str | None) -> str | None:
    """``url`` if it is an absolute http(s) link, else None (no ``javascript:`` in a button)."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        return None
    return url


def admin_password(env: Mapping[str, str], secrets: Mapping[str, object] | None) -> str | None:
    """The configured admin password: ``SURVEY_ADMIN_PASSWORD`` first, then Streamlit secrets.

    None (admin disabled) when neither is set or the value is blank: an empty password must never
    open the page.
    """
    for value in (env.get("SURVEY_ADMIN_PASSWORD"), (secrets or {}).get("admin_password")):
        if isinstance(value, str) and value.strip():
            return value
    return None


def password_matches(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison; False whenever the admin page is disabled or nothing was typed.

    Both sides are hashed first so the comparison takes the same time whatever their lengths and
    ``hmac.compare_digest`` sees bytes (it refuses non-ASCII ``str``).
    """
    if not expected or not given:
        return False
    given_digest = hashlib.sha256(given.encode("utf-8")).digest()
    expected_digest = hashlib.sha256(expected.encode("utf-8")).digest()
    return hmac.compare_digest(given_digest, expected_digest)


def preference_text(k: int, n: int, rate: float | None, ci: Sequence[float] | None) -> str:
    """"62.5% (25 of 40 votes), 95% CI 45.8%-77.3%" for the admin page."""
    if not n or rate is None:
        return "no decisive votes yet"
    text = f"{rate:.1%} ({k} of {n} votes)"
    if ci is not None and len(ci) == 2:
        text += f", 95% CI {ci[0]:.1%}-{ci[1]:.1%}"
    return text
