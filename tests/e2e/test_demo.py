"""The README's main command, ``ledgerctl demo``, as a user runs it (scripts/demo.sh runs
bootstrap and then exactly this), on its own stack and ports, then ``stack down``."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from learnerledger.ctl.stack import StackConfig
from tests.conftest import _free_ports
from tests.integration.test_stack_cli import ledgerctl, our_processes

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

COMPLETIONS = 300
SERVICES = ("GATEWAY", "QUERY", "LEDGER", "PROJECTOR")


def test_demo_streams_completions_into_transcripts_and_stops_clean() -> None:
    state = Path(tempfile.mkdtemp(prefix="ll-demo-"))
    state.chmod(0o755)
    ports = _free_ports(3 + len(SERVICES))
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "ADMIN_DATABASE_URL")
    }
    env |= {
        "LEDGER_STATE_DIR": str(state),
        "LOCAL_KAFKA_PORT": str(ports[0]),
        "LOCAL_KAFKA_CONTROLLER_PORT": str(ports[1]),
        "LOCAL_POSTGRES_PORT": str(ports[2]),
        "LOCAL_KAFKA_LIBS_DIR": str(StackConfig.from_env().libs_dir),
        **{f"{name}_GRPC_PORT": str(port) for name, port in zip(SERVICES, ports[3:], strict=True)},
        **{f"{name}_METRICS_PORT": "0" for name in SERVICES},
    }
    try:
        demo = ledgerctl(env, "demo", "--completions", str(COMPLETIONS), timeout=600)
        assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
        out = demo.stdout
        assert f"gateway: {COMPLETIONS} accepted, 0 rejected" in out
        assert f"{COMPLETIONS} completions from 3 partners are in the ledger" in out
        assert f"127.0.0.1:{ports[4]} list" in out  # the query API address it tells the user
        # The printed learner completed every course once: five credits, the unapproved
        # course recorded without credit.
        courses = re.findall(r"^\s+demo-\S+\s+(\S+)\s+level", out, flags=re.MULTILINE)
        assert sorted(courses) == sorted(set(courses))
        assert len(courses) == 5
        assert "completions without credit 1" in out
    finally:
        down = ledgerctl(env, "stack", "down")
        leftovers = our_processes(state)
        shutil.rmtree(state, ignore_errors=True)
    assert down.returncode == 0, down.stderr
    assert leftovers == []
