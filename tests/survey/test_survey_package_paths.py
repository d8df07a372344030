"""The package path check against an independent reference (os.path.realpath + commonpath).

A prefix test (`str.startswith`) would accept `/x/pkg-private/...` as inside `/x/pkg`: the sibling
folder whose name starts with the package's own name is the case that tells the two apart.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import tests.hypothesis_home  # noqa: F401  (before Hypothesis writes anything)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from survey.package import MANIFEST_NAME, UnsafePathError, resolve_inside, validate_package
from testing.packages import make_package


def inside(root: Path, path: str | Path) -> bool:
    """Reference: does `path`, with every symlink followed, lie in the real folder `root`?"""
    real_root, real = os.path.realpath(root), os.path.realpath(path)
    return os.path.commonpath([real_root, real]) == real_root


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pkg/ beside pkg-private/ (same name prefix), with links that stay in and links that leave."""
    base = tmp_path_factory.mktemp("paths")
    package = make_package(base / "pkg", n_items=2, n_checks=0)
    private = base / "pkg-private"
    private.mkdir()
    (private / "secret.png").write_bytes(b"not for raters")
    (package / "evil").symlink_to(Path("..") / "pkg-private")  # relative link to the sibling
    (package / "evil_abs").symlink_to(private)                   # absolute link to the sibling
    (package / "up").symlink_to("..")
    (package / "inner").symlink_to("maps")                       # stays inside: allowed
    (package / "evil.png").symlink_to(private / "secret.png")   # a file link leaving the package
    return package


@pytest.mark.parametrize("relative", ["evil/secret.png", "evil_abs/secret.png", "up/pkg-private/secret.png",
                                      "evil.png", "up/pkg/manifest.json"])
def test_links_into_a_sibling_with_the_same_prefix_are_refused(tree: Path, relative: str) -> None:
    assert os.path.realpath(tree / relative).startswith(str(tree.resolve()))  # a prefix test would pass these
    if relative == "up/pkg/manifest.json":
        # climbs out and back in: resolves inside, so it is accepted (and really is inside)
        assert resolve_inside(tree, relative) == (tree / MANIFEST_NAME).resolve()
        return
    with pytest.raises(UnsafePathError, match="outside the package"):
        resolve_inside(tree, relative)


def test_validate_package_reports_an_image_behind_a_sibling_link(tmp_path: Path) -> None:
    package = make_package(tmp_path / "pkg", n_items=2, n_checks=0)
    private = tmp_path / "pkg-private"
    private.mkdir()
    manifest = json.loads((package / MANIFEST_NAME).read_text())
    item = manifest["items"][0]
    (private / "img.png").write_bytes((package / item["image"]).read_bytes())  # a valid PNG
    (package / "evil").symlink_to(Path("..") / "pkg-private")
    item["image"] = "evil/img.png"
    (package / MANIFEST_NAME).write_text(json.dumps(manifest))
    problems = validate_package(package)
    assert [(p.where, p.field) for p in problems] == [(item["id"], "image")]
    assert "outside the package" in problems[0].reason and str(private.resolve()) in problems[0].reason


def test_links_that_stay_inside_resolve_to_the_real_file(tree: Path) -> None:
    target = next((tree / "maps").iterdir())
    assert resolve_inside(tree, f"inner/{target.name}") == target.resolve()
    assert resolve_inside(tree, "maps") == (tree / "maps").resolve()


PARTS = ["maps", "evil", "evil_abs", "up", "inner", "evil.png", "pkg", "pkg-private", "secret.png",
         "..", ".", "", "a.png", "manifest.json", "/", "\\", "C:", "\x00"]


@settings(database=None, max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.sampled_from(PARTS), min_size=1, max_size=6), leading_slash=st.booleans())
def test_an_accepted_path_never_resolves_outside_the_package(tree: Path, parts: list[str],
                                                             leading_slash: bool) -> None:
    relative = ("/" if leading_slash else "") + "/".join(parts)
    try:
        resolved = resolve_inside(tree, relative)
    except UnsafePathError:
        return
    assert inside(tree, tree / relative), relative          # independent reference agrees
    assert inside(tree, resolved) and resolved == Path(os.path.realpath(tree / relative))


@settings(database=None, max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.sampled_from(["maps", "inner", "a.png", "x", "evil", "evil_abs", "evil.png"]),
                      min_size=1, max_size=4))
def test_plain_paths_are_accepted_exactly_when_they_stay_inside(tree: Path, parts: list[str]) -> None:
    """No '..', no absolute path: the only reason to refuse is a link that leaves the package."""
    relative = "/".join(parts)
    if inside(tree, tree / relative):
        assert resolve_inside(tree, relative) == Path(os.path.realpath(tree / relative))
    else:
        with pytest.raises(UnsafePathError):
            resolve_inside(tree, relative)
