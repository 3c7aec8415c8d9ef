#!/usr/bin/env python3
"""Check the import contracts of ``[tool.importlinter]`` in pyproject.toml (import-linter).

    .venv/bin/python scripts/lint_imports.py                    # this repository
    .venv/bin/python scripts/lint_imports.py --project DIR      # a copy of it (the unit tests)

``learnerledger`` is a namespace package spread over several roots (``common/``,
``services/*/``, ``tools/ledgerctl/``). The editable install does not help here: its import
hook maps each package to its folder, so the namespace itself has no folder that import-linter
could walk. This puts every root named by ``[tool.setuptools.package-dir]`` first on
``sys.path`` instead, so that ``learnerledger`` is a plain namespace over exactly those folders,
then runs the check. Exit status: 0 when every contract is kept, 1 when one is broken.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]


class LayoutError(ValueError):
    """pyproject.toml maps a package to a folder that is not ``<root>/learnerledger/<name>``."""


def code_roots(project: Path) -> list[Path]:
    """The folders that each hold a slice of the ``learnerledger`` namespace, in pyproject order."""
    config = tomllib.loads((project / "pyproject.toml").read_text())
    roots: list[Path] = []
    for package, folder in config["tool"]["setuptools"]["package-dir"].items():
        path = Path(folder)
        if package.split(".")[0] != path.parent.name or path.name != package.split(".")[-1]:
            raise LayoutError(f"{package} = {folder!r}: expected <root>/learnerledger/<name>")
        root = (project / path.parent.parent).resolve()
        if root not in roots:
            roots.append(root)
    return roots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=REPOSITORY, help="the repository root")
    args = parser.parse_args(argv)
    project: Path = args.project.resolve()
    if "learnerledger" in sys.modules:
        raise RuntimeError("learnerledger was imported before its roots were put on sys.path")
    sys.path[:0] = [str(root) for root in code_roots(project)]

    from importlinter.cli import lint_imports

    return lint_imports(
        config_filename=str(project / "pyproject.toml"), no_cache=True, no_logo=True
    )


if __name__ == "__main__":
    sys.exit(main())
