"""The engine, validation and CSV parsing stay pure: standard library only, no clock, no I/O.

Purity is what makes a result reproducible from its input and lets these modules run before the
claim; an import is where it would first be lost, so the imports are checked.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from devstack import REPO_ROOT

PURE_FILES = [
    *sorted((REPO_ROOT / "wheelsim").glob("*.py")),
    REPO_ROOT / "states" / "backtest" / "validation.py",
    REPO_ROOT / "states" / "backtest" / "history.py",
]
# Standard modules that reach the clock, randomness, the file system, processes or the network.
IMPURE = {"random", "secrets", "time", "os", "io", "pathlib", "socket", "subprocess", "uuid"}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", PURE_FILES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_imports_only_the_pure_standard_library_and_the_engine(path: Path) -> None:
    roots = imported_roots(path) - {"__future__", "wheelsim"}
    assert roots <= set(sys.stdlib_module_names), roots - set(sys.stdlib_module_names)
    assert not roots & IMPURE


def test_the_package_init_is_one_docstring_line() -> None:
    text = (REPO_ROOT / "states" / "backtest" / "__init__.py").read_text(encoding="utf-8")
    assert text.count("\n") == 1 and ast.get_docstring(ast.parse(text))
