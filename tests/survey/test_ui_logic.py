"""The rater/admin pages' plain decisions: link parsing, progress text, escaping, the admin password,
and the display images (size, metadata, path safety, cache), without Streamlit or a browser."""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from survey import ui_images, ui_logic
from survey.package import UnsafePathError
from survey.ui_logic import BadLink


# ---------------------------------------------------------------------------------- study choice
def test_study_link_wins_over_config_and_open_studies():
    def never():
        raise AssertionError("open studies looked up although the link or config names one")

    assert ui_logic.choose_study("pilot-2", "main", never) == "pilot-2"
    assert ui_logic.choose_study(None, "main", never) == "main"
    assert ui_logic.choose_study("  ", "main", never) == "main"  # blank parameter = absent
    assert ui_logic.choose_study(None, None, lambda: ["only"]) == "only"
    assert ui_logic.choose_study(["old", "new"], None, never) == "new"  # repeated parameter: last wins


@pytest.mark.parametrize("bad", ['demo"', "<b>x</b>", "a" * 65, "../demo", "dé", "x y", "a" * 10_000])
def test_malformed_study_names_are_refused_without_echo(bad):
    with pytest.raises(BadLink) as err:
        ui_logic.choose_study(bad, None, lambda: ["demo"])
    assert bad not in str(err.value)


def test_no_or_ambiguous_open_study_gives_a_rater_message():
    with pytest.raises(BadLink, match="No survey is open"):
        ui_logic.choose_study(None, None, lambda: [])
    with pytest.raises(BadLink, match="link you were given"):
        ui_logic.choose_study(None, None, lambda: ["a", "b"])


# -------------------------------------------------------------------------------------- rater id
@pytest.mark.parametrize("raw", ['o"brien', "<script>alert(1)</script>", "**bold** [x](y)", "👩‍🔬🧪",
                                 "ä" * 200])
def test_printable_rater_ids_are_kept_verbatim(raw):
    assert ui_logic.rater_id_from(raw) == raw
    assert ui_logic.rater_id_from(f"  {raw}\n") == raw  # surrounding whitespace is not part of an id


def test_rater_id_limits():
    assert ui_logic.rater_id_from(None) is None
    assert ui_logic.rater_id_from("   ") is None
    with pytest.raises(BadLink, match="too long"):
        ui_logic.rater_id_from("x" * 201)
    with pytest.raises(BadLink, match="too long"):
        ui_logic.rater_id_from("x" * 10_240)
    with pytest.raises(BadLink, match="not allowed"):
        ui_logic.rater_id_from("abc\x00def")
    with pytest.raises(BadLink, match="not allowed"):
        ui_logic.rater_id_from("abc\x1b[31m")


def test_rater_param_beats_prolific_pid():
    assert ui_logic.rater_from_params({"rater": "r1", "PROLIFIC_PID": "p1"}) == "r1"
    assert ui_logic.rater_from_params({"PROLIFIC_PID": "5f1e"}) == "5f1e"
    assert ui_logic.rater_from_params({}) is None
    with pytest.raises(BadLink):
        ui_logic.token_from("t" * 10_000)


# ------------------------------------------------------------------------------ progress, text
def test_progress_counts_the_item_on_screen():
    assert ui_logic.progress(7, 15) == (6 / 15, "7 / 15")
    assert ui_logic.progress(1, 3) == (0.0, "1 / 3")
    assert ui_logic.progress(99, 3) == (2 / 3, "3 / 3")  # clamped, never over 100 %
    assert ui_logic.progress(1, 0) == (1.0, "0 / 0")


def test_escape_markdown_makes_every_special_character_literal():
    nasty = r"<img src=x onerror=alert(1)> **b** _i_ [l](javascript:x) `c` # h \ $x$ :red[r] &lt;"
    escaped = ui_logic.escape_markdown(nasty)
    # every character that Markdown or HTML could act on is preceded by a backslash
    for ch in "<>*_[]()`#\\$:&":
        assert escaped.count(f"\\{ch}") == nasty.count(ch)
    assert "<" not in escaped.replace("\\<", "")
    # removing the escapes gives the original back: nothing is lost
    assert re.sub(r"\\(.)", r"\1", escaped) == nasty


def test_question_fills_label_without_format_injection():
    q = ui_logic.question_markdown("Which map shows a {label}? {0} {x}", "waiting room")
    assert "**waiting room**" in q
    assert "\\{0\\}" in q and "\\{x\\}" in q
    assert ui_logic.question_markdown("Is this a {label}?", "<b>x</b>").count("<b>") == 0


def test_safe_link_allows_http_only():
    assert ui_logic.safe_link("https://app.prolific.com/submissions/complete?cc=ABC") is not None
    for bad in ["javascript:alert(1)", "data:text/html,x", "//evil.example", "ftp://x/y", "", None]:
        assert ui_logic.safe_link(bad) is None


def test_preference_text():
    assert ui_logic.preference_text(0, 0, None, None) == "no decisive votes yet"
    text = ui_logic.preference_text(25, 40, 0.625, (0.458, 0.773))
    assert text == "62.5% (25 of 40 votes), 95% CI 45.8%-77.3%"


# ------------------------------------------------------------------------------- admin password
def test_admin_password_sources_and_blank_values():
    assert ui_logic.admin_password({"SURVEY_ADMIN_PASSWORD": "s3"}, {"admin_password": "other"}) == "s3"
    assert ui_logic.admin_password({}, {"admin_password": "from-secrets"}) == "from-secrets"
    assert ui_logic.admin_password({"SURVEY_ADMIN_PASSWORD": "  "}, None) is None
    assert ui_logic.admin_password({}, {}) is None


def test_password_matches_is_exact():
    assert ui_logic.password_matches("correct horse ✓", "correct horse ✓")
    for given in ["correct horse", "correct horse ✓ ", "", None, "CORRECT HORSE ✓"]:
        assert not ui_logic.password_matches(given, "correct horse ✓")
    assert not ui_logic.password_matches("", "")
    assert not ui_logic.password_matches("x", None)  # admin disabled: nothing opens it


# ---------------------------------------------------------------------------------------- images
def _png(path: Path, size=(60, 40), colour=(200, 30, 30), *, with_metadata: bool = False) -> Path:
    image = Image.new("RGB", size, colour)
    info = PngImagePlugin.PngInfo()
    if with_metadata:
        info.add_text("Comment", "method=vib maps/secret.png")
    image.save(path, format="PNG", pnginfo=info)
    return path


def _jpeg_segments(data: bytes) -> list[int]:
    """Marker bytes of every segment before the image data (SOS)."""
    assert data[:2] == b"\xff\xd8"
    markers, at = [], 2
    while at < len(data):
        assert data[at] == 0xFF
        marker = data[at + 1]
        markers.append(marker)
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            break
        at += 2 + int.from_bytes(data[at + 2:at + 4], "big")
    return markers


def test_display_image_is_clean_and_fixed_size(tmp_path):
    source = _png(tmp_path / "vib_map.png", with_metadata=True)
    jpeg = tmp_path / "photo.jpg"
    Image.new("RGB", (40, 60), (0, 0, 255)).save(jpeg, format="JPEG", exif=b"Exif\x00\x00secret")
    for path, expected in [(source, (448, 299)), (jpeg, (299, 448))]:
        data = ui_images.display_image(tmp_path, path)
        with Image.open(io.BytesIO(data)) as im:
            assert im.format == ui_images.DISPLAY_FORMAT == "JPEG" and im.mode == "RGB"
            assert im.size == expected
            assert not im.info.get("icc_profile") and "exif" not in im.info and "comment" not in im.info
        # only the JFIF header (APP0), tables, frame and scan: no EXIF/ICC/XMP (APP1-15), no comment (COM)
        assert set(_jpeg_segments(data)) <= {0xE0, 0xDB, 0xC0, 0xC4, 0xDA}
        assert b"vib" not in data and b"secret" not in data and b"Exif" not in data


def test_png_display_format_is_clean_too(tmp_path):
    data = ui_images.encode_display(_png(tmp_path / "m.png", with_metadata=True).read_bytes(), 100, "PNG")
    types, at = [], 8
    while at < len(data):
        length = int.from_bytes(data[at:at + 4], "big")
        types.append(data[at + 4:at + 8])
        at += 12 + length
    assert set(types) <= {b"IHDR", b"IDAT", b"IEND"} and b"secret" not in data
    assert Image.open(io.BytesIO(data)).size == (100, 67)


def test_display_image_refuses_paths_outside_the_package(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    outside = _png(tmp_path / "outside.png")
    (package / "link.png").symlink_to(outside)
    with pytest.raises(UnsafePathError):
        ui_images.display_image(package, outside)
    with pytest.raises(UnsafePathError):
        ui_images.display_image(package, "../outside.png")
    with pytest.raises(UnsafePathError):
        ui_images.display_image(package, package / "link.png")


def test_display_cache_hits_and_sees_rewritten_files(tmp_path):
    ui_images.clear_cache()
    path = _png(tmp_path / "a.png", colour=(255, 0, 0))
    first = ui_images.display_image(tmp_path, path)
    assert ui_images.display_image(tmp_path, "a.png") == first
    assert ui_images.cache_info().hits == 1
    time.sleep(0.01)
    _png(path, colour=(0, 255, 0), size=(61, 40))  # same path, new content, new mtime and size
    second = ui_images.display_image(tmp_path, path)
    assert second != first
    with Image.open(io.BytesIO(second)) as im:
        assert all(abs(a - b) <= 3 for a, b in zip(im.getpixel((10, 10)), (0, 255, 0)))  # JPEG: near


def test_prefetch_warms_every_image_once(tmp_path):
    ui_images.clear_cache()
    for k in range(5):
        _png(tmp_path / f"{k}.png", colour=(k * 40, 0, 0))
    (tmp_path / "broken.png").write_bytes(b"not a png")
    future = ui_images.prefetch_folder(tmp_path)
    assert future is not None and future.result(timeout=30) == 5
    assert ui_images.prefetch_folder(tmp_path) is None  # once per process
    misses = ui_images.cache_info().misses
    ui_images.display_image(tmp_path, tmp_path / "3.png")
    assert ui_images.cache_info().misses == misses  # served from the warmed cache


def test_the_app_never_imports_torch(tmp_path):
    """The rater server must start fast and install without PyTorch: run both pages, then look."""
    code = (
        "import json, sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        "import survey.ui_logic, survey.ui_images, survey.ui_page\n"
        "at = AppTest.from_file('survey/app.py', default_timeout=60).run()\n"
        "at.switch_page('ui_pages/admin.py').run()\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'torch', 'torchvision', 'models', 'cams'})))\n"
    )
    env = {**os.environ, "SURVEY_DB_URL": f"sqlite:///{tmp_path / 'survey.db'}"}
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_min_vote_gap_from_the_environment():
    assert ui_logic.min_vote_gap_s(None) == 0.5 and ui_logic.min_vote_gap_s("") == 0.5
    assert ui_logic.min_vote_gap_s("0") == 0.0 and ui_logic.min_vote_gap_s("750") == 0.75
    assert ui_logic.min_vote_gap_s("fast") == 0.5 and ui_logic.min_vote_gap_s("-3") == 0.5


def test_arming_time_from_the_environment():
    assert ui_logic.arm_ms(None) == 400 and ui_logic.arm_ms("") == 400
    assert ui_logic.arm_ms("0") == 0 and ui_logic.arm_ms("1500") == 1500
    assert ui_logic.arm_ms("soon") == 400 and ui_logic.arm_ms("-1") == 400


def test_arming_css_is_named_after_the_trial_so_each_new_pair_restarts_it():
    """The browser restarts an animation only when its name changes, and Streamlit reuses the button
    elements from pair to pair: one name per trial token is what makes every new pair start unarmed."""
    token = "Zx-9_kLq0aB"
    css = ui_logic.arming_css(token, 400)
    assert css.startswith("<style>") and css.endswith("</style>")
    assert f'[class*="st-key-"][class*="-{token}"] button' in css
    assert f"animation: vibcam-arm-{token} 400ms step-end;" in css
    assert f"@keyframes vibcam-arm-{token} {{ from, to {{ pointer-events: none; }} }}" in css
    other = ui_logic.arming_css("other", 400)
    assert "vibcam-arm-other" in other and token not in other
    assert ui_logic.arming_css(token, 0) == ""
