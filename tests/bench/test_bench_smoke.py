"""Each benchmark runs at a tiny size on the test stack and writes its report (figures are not
asserted: they are measured by hand at full size, see BENCHMARKS.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import SIZES
from learnerledger_devstack.stack import StackInfo

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SMOKE = SIZES["smoke"]


@pytest.mark.parametrize("scenario", sorted(SMOKE))
def test_benchmark_runs_and_reports(scenario: str, stack: StackInfo, tmp_path: Path) -> None:
    env = {**os.environ, **stack.env()}
    before = set((ROOT / "bench" / "results").glob(f"{scenario}-*.json"))
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{scenario}", *SMOKE[scenario]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    written = set((ROOT / "bench" / "results").glob(f"{scenario}-*.json")) - before
    assert len(written) == 1, done.stdout
    report = json.loads(written.pop().read_text())
    assert report["machine"]["cores"] == os.cpu_count()
    assert "written" in done.stdout
