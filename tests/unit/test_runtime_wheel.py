"""The runtime distribution carries no development stack.

Builds the wheel the image installs (the Dockerfile's `pip install .`, here over all of tools/,
more than the image copies) and reads it: the services and ``ledgerctl`` are in it, the local stack
(``tools/devstack``, ``learnerledger_devstack``: Kafka and PostgreSQL launchers, the demo, the
development identity provider, the Kafka pom) is not.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEVSTACK = ROOT / "tools" / "devstack" / "learnerledger_devstack"
#: What the Dockerfile copies into its build stage before `pip install .`.
IMAGE_SOURCES = ("pyproject.toml", "README.md", "LICENSE", "common", "services", "tools")


#: Definitions only the development stack has.
DEVSTACK_MARKERS = ("class KafkaBroker", "class PostgresServer", "def stack_up", "def run_demo")


@pytest.fixture(scope="module")
def runtime_wheel(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    source = tmp_path_factory.mktemp("source")
    for name in IMAGE_SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(
                path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        else:
            shutil.copy(path, source / name)
    out = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    result = subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(source)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    wheels = list(out.glob("learner_ledger-*.whl"))
    assert len(wheels) == 1, [p.name for p in out.iterdir()]
    with zipfile.ZipFile(wheels[0]) as wheel:
        return {name: wheel.read(name) for name in wheel.namelist()}


def test_the_runtime_wheel_holds_the_services_and_the_cli(runtime_wheel: dict[str, bytes]) -> None:
    for module in (
        "learnerledger/gateway/service.py",
        "learnerledger/ledger/service.py",
        "learnerledger/query/service.py",
        "learnerledger/query/projector.py",
        "learnerledger/ctl/main.py",
        "learnerledger/domain/__init__.py",
        "learnerledger/postgres/migrations.py",
    ):
        assert module in runtime_wheel, module
    entry_points = [name for name in runtime_wheel if name.endswith("entry_points.txt")]
    assert entry_points, "no entry points: ledgerctl would be missing from the image"
    assert b"ledgerctl = learnerledger.ctl.main:main" in runtime_wheel[entry_points[0]]


def test_the_runtime_wheel_holds_no_development_stack(runtime_wheel: dict[str, bytes]) -> None:
    devstack_modules = sorted(p.stem for p in DEVSTACK.glob("*.py") if p.stem != "__init__")
    assert {"stack", "kafka_broker", "postgres_server", "processes", "demo"} <= set(
        devstack_modules
    ), devstack_modules
    leaked = [
        name
        for name in runtime_wheel
        if "devstack" in name
        or name.endswith((".xml", ".properties"))
        or name in {f"learnerledger/ctl/{module}.py" for module in devstack_modules}
    ]
    assert leaked == [], f"development stack files in the runtime wheel: {leaked}"
    defining = [
        (name, marker)
        for name, content in runtime_wheel.items()
        if name.endswith(".py")
        for marker in DEVSTACK_MARKERS
        if marker.encode() in content
    ]
    assert defining == [], f"development stack code in the runtime wheel: {defining}"


def test_the_markers_name_what_the_development_stack_defines() -> None:
    """The content check above can fail: each marker is defined in the devstack package."""
    sources = "\n".join(path.read_text() for path in DEVSTACK.glob("*.py"))
    for marker in DEVSTACK_MARKERS:
        assert marker in sources, marker
