"""The import contracts of pyproject.toml hold, and the check fails when one is broken.

``scripts/lint_imports.py`` (a CI step of scripts/test.sh) runs import-linter over every root of
the ``learnerledger`` namespace. These tests run it on the repository, and on a copy of the
package tree with one forbidden import added, to show that each contract can fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "lint_imports.py"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
CONTRACTS = {c["id"]: c["name"] for c in PYPROJECT["tool"]["importlinter"]["contracts"]}


def lint(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--project", str(project)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},  # no wrapped lines in the report
        check=False,
    )


def contract_results(output: str) -> dict[str, str]:
    """Each contract's verdict, KEPT or BROKEN, from the summary lines of the report."""
    results = {}
    for line in output.splitlines():
        for contract_id, name in CONTRACTS.items():
            if line.startswith(f"{name} ") and line.split()[-1] in ("KEPT", "BROKEN"):
                results[contract_id] = line.split()[-1]
    return results


def test_the_repository_keeps_every_import_contract() -> None:
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert contract_results(result.stdout) == dict.fromkeys(CONTRACTS, "KEPT")
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in result.stdout


def test_every_package_of_the_distribution_is_placed_in_a_layer() -> None:
    (layers,) = [c for c in PYPROJECT["tool"]["importlinter"]["contracts"] if c["id"] == "layers"]
    placed = {
        f"learnerledger.{name.strip()}"
        for layer in layers["layers"]
        for name in layer.replace("|", ":").split(":")
    }
    packages = PYPROJECT["tool"]["setuptools"]["packages"]
    # a nested package (learnerledger.ctl.commands) is in the layer of its parent
    assert placed == {package for package in packages if package.count(".") == 1}
    assert layers["exhaustive"] is True


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    """pyproject.toml and every package folder it maps, copied (sources only)."""
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    for folder in PYPROJECT["tool"]["setuptools"]["package-dir"].values():
        shutil.copytree(
            ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    return tmp_path


VIOLATIONS = [
    pytest.param(
        "common/learnerledger/domain/hash_chain.py",
        "from learnerledger.kafka import topics",
        {"layers", "pure-domain"},  # through the adapter, the domain reaches aiokafka too
        "learnerledger.domain.hash_chain -> learnerledger.kafka.topics",
        id="domain-imports-an-adapter",
    ),
    pytest.param(
        "common/learnerledger/postgres/pool.py",
        "from learnerledger.ledger import appender",
        # and, since every service uses the pool, the other services now reach the ledger
        {"layers", "services-independent"},
        "learnerledger.postgres.pool -> learnerledger.ledger.appender",
        id="adapter-imports-a-service",
    ),
    pytest.param(
        "services/issuer-gateway/learnerledger/gateway/validation.py",
        "from learnerledger.ctl import lag",
        {"layers"},
        "learnerledger.gateway.validation -> learnerledger.ctl.lag",
        id="service-imports-the-cli",
    ),
    pytest.param(
        "services/ledger/learnerledger/ledger/admin_api.py",
        "from learnerledger.query import projector",
        {"services-independent"},
        "learnerledger.ledger.admin_api -> learnerledger.query.projector",
        id="service-imports-another-service",
    ),
    pytest.param(
        "common/learnerledger/domain/merkle.py",
        "import structlog",
        {"pure-domain"},
        "learnerledger.domain.merkle -> structlog",
        id="domain-does-io",
    ),
    pytest.param(
        "services/query/learnerledger/query/service.py",
        "from learnerledger_devstack import stack",
        {"runtime-without-devstack"},
        "learnerledger.query.service -> learnerledger_devstack",
        id="service-imports-the-development-stack",
    ),
    pytest.param(
        "common/learnerledger/audit/__init__.py",
        "",
        {"layers"},
        "- learnerledger.audit",
        id="package-in-no-layer",
    ),
]


@pytest.mark.parametrize(("module", "line", "broken", "reported"), VIOLATIONS)
def test_a_forbidden_import_breaks_its_contract(
    package_copy: Path, module: str, line: str, broken: set[str], reported: str
) -> None:
    path = package_copy / module
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as source:
        source.write(f"\n{line}  # a deliberate violation\n")
    result = lint(package_copy)
    assert result.returncode == 1, result.stdout + result.stderr
    expected = {c: "BROKEN" if c in broken else "KEPT" for c in CONTRACTS}
    assert contract_results(result.stdout) == expected
    assert reported in result.stdout
