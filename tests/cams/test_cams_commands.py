"""The cams command lines are contracts (docs/cams.md, README, Makefile, scripts/): each still starts with
`python -m cams.<name>`, in a fresh interpreter, and is a thin layer over the library."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = {  # module -> its file and a flag its --help must list
    "cams.generate": ("cams/generate.py", "--attention-checks"),
    "cams.metrics": ("cams/metrics/__main__.py", "--sanity"),
    "cams.compare": ("cams/compare.py", "--metrics-suffix"),
    "cams.decision": ("cams/decision.py", "--control"),
    "cams.figure": ("cams/figure.py", "--items"),
}


@pytest.mark.parametrize("module", sorted(COMMANDS))
def test_every_command_runs_as_python_m_with_its_flags(module: str) -> None:
    result = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True, check=False,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"usage: python -m {module}" in result.stdout and COMMANDS[module][1] in result.stdout


@pytest.mark.parametrize("module", sorted(COMMANDS))
def test_commands_define_no_classes_and_nothing_imports_them(module: str) -> None:
    """A command module holds argument parsing and `main`, no types of its own; the work lives in library
    modules, which never import a command (so the library can be used without a command line)."""
    tree = ast.parse((ROOT / COMMANDS[module][0]).read_text())
    functions = [node.name for node in tree.body if isinstance(node, ast.FunctionDef)]
    classes = [node.name for node in tree.body if isinstance(node, ast.ClassDef)]
    assert "main" in functions and not classes, (module, functions, classes)
    command = COMMANDS[module][0].removesuffix(".py").replace("/", ".")  # cams.metrics.__main__, not the registry
    for path in (ROOT / "cams").rglob("*.py"):
        if path.relative_to(ROOT).as_posix() in {file for file, _ in COMMANDS.values()}:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module] if isinstance(node, ast.ImportFrom) else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            assert command not in names, f"{path} imports the command {command}"
