"""Architecture figures (issue 19): import cycles, underscore names imported across modules,
imports against the layer order, modules over 700 lines, ``# noqa: E402`` in ``src/``.

Reads the source with the checks of ``tests/test_architecture.py`` (no module is imported), for
the working tree and, with ``--rev REV``, for a git revision side by side (its ``src/`` is
extracted to a temporary folder with ``git archive``). Writes ``bench/results/architecture.json``.

    python bench/architecture.py --rev ba5b01b
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

from _common import REPO, write_result


def _checks() -> ModuleType:
    """``tests/test_architecture.py`` (wherever under ``tests/`` it lives), loaded by path."""
    path = next(REPO.joinpath("tests").rglob("test_architecture.py"))
    spec = importlib.util.spec_from_file_location("architecture_checks", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (dataclasses look their module up there)
    spec.loader.exec_module(module)
    return module


def _deferred_cycles(checks: ModuleType) -> list[list[str]]:
    """Cycles when imports inside functions count too (shown, not enforced)."""
    import dataclasses

    every = checks.imports()
    original = checks.imports
    checks.imports = lambda: tuple(dataclasses.replace(e, module_level=True) for e in every)
    try:
        return list(checks.import_cycles())
    finally:
        checks.imports = original


def measure(src: Path) -> dict[str, Any]:
    checks = _checks()
    checks.SRC = src
    checks.PRIVATE_ALLOWED = {}  # the figure counts every one, allowed or not
    lines = {name: len(path.read_text().splitlines()) for name, path in checks.modules().items()}
    noqa = [
        f"{path.relative_to(src)}:{n}"
        for path in sorted(src.rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), start=1)
        if "noqa: E402" in line
    ]
    cycles = checks.import_cycles()
    private = checks.private_imports()
    upward = checks.upward_imports()
    long_modules = checks.long_modules()
    deferred = _deferred_cycles(checks)
    return {
        "modules": len(lines),
        "lines": sum(lines.values()),
        "import_cycles": len(cycles),
        "import_cycles_members": [" <-> ".join(c) for c in cycles],
        "cycles_with_deferred_imports": len(deferred),
        "cycles_with_deferred_imports_members": [" <-> ".join(c) for c in deferred],
        "private_imports": len(private),
        "private_imports_list": private,
        "upward_imports": len(upward),
        "upward_imports_list": upward,
        "modules_over_700_lines": len(long_modules),
        "modules_over_700_lines_list": long_modules,
        "noqa_e402": len(noqa),
        "noqa_e402_list": noqa,
    }


def _extract(rev: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "archive", rev, "src"], cwd=REPO, check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


FIGURES = (
    "modules",
    "lines",
    "import_cycles",
    "cycles_with_deferred_imports",
    "private_imports",
    "upward_imports",
    "modules_over_700_lines",
    "noqa_e402",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", help="also measure this git revision (e.g. the branch point)")
    args = parser.parse_args()
    columns: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.rev:
            columns[args.rev] = measure(_extract(args.rev, Path(tmp)))
        columns["working tree"] = measure(REPO / "src")
    width = max(len(f) for f in FIGURES)
    print(f"{'':<{width}}  " + "  ".join(f"{name:>14}" for name in columns))
    for figure in FIGURES:
        print(f"{figure:<{width}}  " + "  ".join(f"{c[figure]:>14}" for c in columns.values()))
    for name, column in columns.items():
        for figure in ("import_cycles", "private_imports", "noqa_e402"):
            for item in column[f"{figure}_members" if figure == "import_cycles" else
                                f"{figure}_list"]:  # fmt: skip
                print(f"  [{name}] {figure}: {item}")
    write_result("architecture.json", {"revisions": columns})


if __name__ == "__main__":
    main()
