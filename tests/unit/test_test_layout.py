"""The test suite's layout: test modules under ``unit/``, ``contract/`` or ``integration/``, and
shared builders in ``helpers/``, which is all a test module may import from ``tests/`` (never
another test module, nor ``conftest``: a test's meaning then sits in its own file)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
SUITES = ("unit", "contract", "integration")


def _python_files() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts)


def _imported_modules(path: Path) -> set[str]:
    """Top-level names of every absolute import in ``path`` (in functions too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _not_importable(paths: list[Path]) -> set[str]:
    """Module names of the files under ``tests/`` outside ``helpers/``: the test modules and
    conftest (as pytest's ``prepend`` import mode would make them importable)."""
    return {p.stem for p in paths if "helpers" not in p.relative_to(TESTS).parts}


def test_every_test_module_is_in_a_suite_and_every_other_file_is_a_helper() -> None:
    misplaced = []
    for path in _python_files():
        parts = path.relative_to(TESTS).parts
        if parts in (("conftest.py",),) or parts[0] == "helpers":
            continue
        if not (len(parts) == 2 and parts[0] in SUITES and parts[1].startswith("test_")):
            misplaced.append("/".join(parts))
    assert not misplaced, f"test modules belong in tests/{{{','.join(SUITES)}}}/: {misplaced}"


def test_no_test_module_imports_another_or_conftest() -> None:
    paths = _python_files()
    forbidden = _not_importable(paths)
    assert {"conftest", "test_test_layout"} <= forbidden  # the check sees the real layout
    offenders = {
        str(path.relative_to(TESTS)): sorted(_imported_modules(path) & forbidden) for path in paths
    }
    offenders = {path: names for path, names in offenders.items() if names}
    assert not offenders, f"import shared code from tests/helpers/ instead: {offenders}"


def test_the_check_finds_an_import_of_a_test_module(tmp_path: Path) -> None:
    """The import scan sees both forms, at any depth (a lazy import inside a function too)."""
    module = tmp_path / "test_example.py"
    module.write_text(
        "import conftest\n"
        "def test_x():\n"
        "    from test_cli import run\n"
        "    from helpers.cli import script\n"
        "    from . import sibling\n"
    )
    assert _imported_modules(module) == {"conftest", "test_cli", "helpers"}
