"""``ledgerctl stack`` as a user runs it: up twice, status, down, and nothing left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXTERNAL_SERVER_VARIABLES, fresh_stack_config

pytestmark = pytest.mark.integration


def ledgerctl(
    env: dict[str, str], *args: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "learnerledger.ctl.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def our_processes(state: Path) -> list[str]:
    listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    return [line for line in listing.stdout.splitlines() if str(state) in line]


def own_stack_env(prefix: str) -> tuple[Path, dict[str, str]]:
    """A fresh state directory and this environment set for a stack of its own on free ports
    (external servers named by KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL are dropped)."""
    cfg = fresh_stack_config(prefix)
    env = {k: v for k, v in os.environ.items() if k not in EXTERNAL_SERVER_VARIABLES}
    return cfg.state_dir, env | {
        "LEDGER_STATE_DIR": str(cfg.state_dir),
        "LOCAL_KAFKA_PORT": str(cfg.kafka_port),
        "LOCAL_KAFKA_CONTROLLER_PORT": str(cfg.kafka_controller_port),
        "LOCAL_POSTGRES_PORT": str(cfg.postgres_port),
        "LOCAL_KAFKA_LIBS_DIR": str(cfg.libs_dir),
    }


def test_up_twice_status_down_leaves_no_process() -> None:
    state, env = own_stack_env("ll-cli-")
    try:
        first = ledgerctl(env, "stack", "up")
        assert first.returncode == 0, first.stderr
        assert "migrated: 0001_catalog_and_credit_log" in first.stdout
        assert "created topic: completions.v1" in first.stdout
        second = ledgerctl(env, "stack", "up")
        assert second.returncode == 0, second.stderr
        assert "migrated" not in second.stdout  # nothing to do the second time
        status = ledgerctl(env, "stack", "status")
        assert status.returncode == 0, status.stdout
        assert f"127.0.0.1:{env['LOCAL_KAFKA_PORT']}" in status.stdout
        assert f"127.0.0.1:{env['LOCAL_POSTGRES_PORT']}" in status.stdout
        assert our_processes(state), "the stack should be running"
    finally:
        down = ledgerctl(env, "stack", "down")
    assert down.returncode == 0, down.stderr
    assert our_processes(state) == []
    after = ledgerctl(env, "stack", "status")
    assert after.returncode == 1  # nothing healthy


def test_bad_settings_are_named_not_traced() -> None:
    env = {**os.environ, "DATABASE_URL": "mysql://somewhere/db"}
    result = ledgerctl(env, "db", "migrate")
    assert result.returncode == 2
    assert "DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr

    env = {**os.environ, "DATABASE_URL": "postgresql://nobody:wrong@127.0.0.1:1/none"}
    result = ledgerctl(env, "course", "list")
    assert result.returncode == 2
    assert "DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr
