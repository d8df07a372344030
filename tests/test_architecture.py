"""The dependency rules of docs/architecture.md, checked statically on every module of the repository.

Every ``import`` statement is read from the AST, function bodies included (a lazy import is still a
dependency), and compared with the rules: models <- cams -> survey (format only); analysis -> survey
(votes format only); survey and analysis never reach torch, models or cams; nothing imports tests or
bench except themselves; no cycle between packages or between modules. A second test imports every
survey and analysis module at run time and checks that no third-party library drags torch in.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("fileio", "models", "cams", "survey", "analysis", "testing", "scripts", "bench", "tests")
TORCH_WORLD = ("torch", "torchvision", "torchcam", "pytorch_grad_cam", "models", "cams")

# Which of our packages each package may import (itself always). docs/architecture.md draws these arrows.
ALLOWED: dict[str, set[str]] = {
    "fileio": set(),
    "models": {"fileio"},
    "cams": {"fileio", "models", "survey"},
    "survey": {"fileio"},
    "analysis": {"fileio", "survey"},
    "testing": {"fileio", "models", "cams", "survey", "analysis"},
    "scripts": {"fileio", "models", "cams", "survey", "analysis", "testing"},
    "bench": {"fileio", "models", "cams", "survey", "analysis", "testing"},
    "tests": {"fileio", "models", "cams", "survey", "analysis", "testing", "scripts"},
}
# Format-only arrows: the only survey modules that cams and analysis may import.
SURVEY_FORMAT_MODULES = {
    "cams": {"survey.package"},  # the study-package format and its one validator
    "analysis": {"survey.votes_format", "survey.export"},  # the votes format: file form, database form
}


@dataclass(frozen=True)
class Import:
    source: str  # importing module, dotted
    target: str  # imported module (ours: the deepest module that exists), dotted
    path: Path
    line: int

    def __str__(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}: {self.source} imports {self.target}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def python_files() -> Iterator[Path]:
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if "__pycache__" not in path.parts:
                yield path


def _ours(dotted: str) -> str | None:
    """The deepest existing module of ours that ``dotted`` names (a name inside a module maps to the
    module), or None for the standard library and third parties."""
    parts = dotted.split(".")
    if parts[0] not in PACKAGES:
        return None
    for end in range(len(parts), 0, -1):
        candidate = REPO.joinpath(*parts[:end])
        if candidate.with_suffix(".py").is_file() or (candidate / "__init__.py").is_file() or candidate.is_dir():
            return ".".join(parts[:end])
    return parts[0]


def imports_of(path: Path) -> Iterator[tuple[str, int]]:
    """Every module name an import statement in ``path`` mentions (absolute, relative ones resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return imports_in(tree, module_name(path), is_package=path.name == "__init__.py")


def imports_in(tree: ast.AST, module: str, *, is_package: bool = False) -> Iterator[tuple[str, int]]:
    here = module.split(".")
    package = here if is_package else here[:-1]
    for node in ast.walk(tree):  # every node: imports inside functions and classes count
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            for alias in node.names:  # `from a import b` may import the submodule a.b
                yield f"{base}.{alias.name}", node.lineno


def all_imports() -> list[Import]:
    found = []
    for path in python_files():
        source = module_name(path)
        for name, line in imports_of(path):
            target = _ours(name)
            found.append(Import(source, target if target is not None else name.split(".")[0], path, line))
    return found


IMPORTS = all_imports()


def violations(imports: list[Import]) -> list[str]:
    problems = []
    for imp in imports:
        src_pkg, dst_pkg = imp.source.split(".")[0], imp.target.split(".")[0]
        if src_pkg in ("survey", "analysis", "fileio") and dst_pkg in TORCH_WORLD:
            problems.append(f"{imp} (survey, analysis and fileio never reach torch, models or cams)")
        elif dst_pkg not in PACKAGES or dst_pkg == src_pkg:
            continue
        elif dst_pkg not in ALLOWED[src_pkg]:
            problems.append(f"{imp} ({src_pkg} may import only {sorted(ALLOWED[src_pkg]) or 'nothing of ours'})")
        elif dst_pkg == "survey" and src_pkg in SURVEY_FORMAT_MODULES and imp.target not in SURVEY_FORMAT_MODULES[src_pkg]:
            problems.append(f"{imp} ({src_pkg} may use survey only through "
                            f"{', '.join(sorted(SURVEY_FORMAT_MODULES[src_pkg]))})")
    return problems


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_every_import_follows_the_architecture() -> None:
    assert len(IMPORTS) > 500  # the walk really found the code base
    problems = violations(IMPORTS)
    assert not problems, "imports against docs/architecture.md:\n" + "\n".join(problems)


def test_no_package_cycles_and_no_module_cycles() -> None:
    ours = [imp for imp in IMPORTS if imp.target.split(".")[0] in PACKAGES]
    package_edges: dict[str, set[str]] = {}
    module_edges: dict[str, set[str]] = {}
    for imp in ours:
        package_edges.setdefault(imp.source.split(".")[0], set()).add(imp.target.split(".")[0])
        if imp.target != imp.source:
            module_edges.setdefault(imp.source, set()).add(imp.target)
    package_edges = {p: {q for q in qs if q != p} for p, qs in package_edges.items()}
    assert not cycles(package_edges), f"package cycles: {cycles(package_edges)}"
    assert not cycles(module_edges), f"module cycles: {cycles(module_edges)}"


@pytest.mark.parametrize("planted, expected", [
    ("survey/planted.py", "survey, analysis and fileio never reach torch"),
    ("analysis/planted.py", "analysis may use survey only through"),
    ("models/planted.py", "models may import only"),
])
def test_the_checker_sees_an_import_inside_a_function(planted: str, expected: str) -> None:
    """A planted lazy import of each forbidden kind is reported (the checker is not vacuous)."""
    body = {
        "survey/planted.py": "def later():\n    import torch\n",
        "analysis/planted.py": "def later():\n    from survey.service import next_trial\n",
        "models/planted.py": "def later():\n    from cams.methods import METHODS\n",
    }[planted]
    path = REPO / planted
    fake = [Import(module_name(path), _ours(name) or name.split(".")[0], path, line)
            for name, line in imports_in(ast.parse(body), module_name(path))]
    problems = violations(fake)
    assert problems and expected in problems[0], problems


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def _runtime_modules(package: str) -> list[str]:
    """Every module of ``package`` that can be imported outside a running Streamlit or Alembic."""
    skip = ("survey.app", "survey.ui_pages", "survey.migrations")
    names = [module_name(p) for p in sorted((REPO / package).rglob("*.py")) if "__pycache__" not in p.parts]
    return [n for n in names if not n.startswith(skip)]


def test_survey_and_analysis_load_without_torch_at_run_time() -> None:
    """Static rules cannot see a third-party library that imports torch: import every module and look."""
    modules = _runtime_modules("survey") + _runtime_modules("analysis") + ["fileio"]
    # the survey's and the analysis' test support, which a torch-free install runs too
    modules += ["testing.packages", "testing.reveal", "testing.concurrent_raters", "testing.postgres",
                "testing.simulated_votes", "testing.distinction_votes"]
    assert len(modules) > 30
    code = (f"import importlib, json, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
            f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {set(TORCH_WORLD)!r})))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == []


def test_no_module_edits_sys_path() -> None:
    """One package root (``pip install -e .``): no module, script or notebook cell patches sys.path."""
    sources = [(path, path.read_text(encoding="utf-8")) for path in python_files()]
    notebook = REPO / "analysis" / "preference_analysis.ipynb"
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    sources += [(notebook, "".join(c["source"])) for c in cells if c["cell_type"] == "code"]
    edits = []
    for path, text in sources:
        try:
            tree = ast.parse(text)
        except SyntaxError:  # notebook magics
            continue
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name)
                    and node.value.id == "sys" and path.name != "test_architecture.py"):
                parent_calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
                                and isinstance(n.func, ast.Attribute) and n.func.value is node]
                if parent_calls:
                    edits.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not edits, f"sys.path edited in: {edits}"
