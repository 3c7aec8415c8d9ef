"""``ledgerctl`` run as a user runs it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import EXTERNAL_SERVER_VARIABLES, fresh_stack_config


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


async def ledgerctl_output(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """Run ``ledgerctl ARGS`` as a user does; its exit code, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "learnerledger.ctl.main", *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()
