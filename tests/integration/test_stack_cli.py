"""``ledgerctl stack`` as a user runs it: up twice, status, down, and nothing left behind."""

from __future__ import annotations

import os

import pytest

from tests.support.cli import ledgerctl, our_processes, own_stack_env

pytestmark = pytest.mark.integration


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
