"""Run the four services as background processes for the local demo, and stop them.

Each service is ``ledgerctl serve NAME`` with its log in ``<state>/services/NAME.log`` and its pid
in ``NAME.pid``; ``stop_services`` ends exactly the processes these files name.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from learnerledger_devstack.processes import is_alive

SERVICES = ("ledger", "projector", "gateway", "query")


@dataclass(frozen=True, slots=True)
class RunningService:
    name: str
    pid: int
    log: Path


def _folder(state_dir: Path) -> Path:
    folder = state_dir / "services"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def start_services(
    state_dir: Path,
    env: dict[str, str],
    logins: dict[str, str] | None = None,
    kafka_env: dict[str, dict[str, str]] | None = None,
) -> list[RunningService]:
    """Start each service not already running; return all of them.

    ``logins`` (DSN by service name, e.g. ``StackInfo.logins``) gives each service the
    DATABASE_URL of its own login, and ``kafka_env`` (``StackInfo.kafka_env``) its own Kafka
    principal (query, which has none, gets no credentials); without them every service gets
    ``env``'s.
    """
    folder = _folder(state_dir)
    running = []
    for name in SERVICES:
        pid_file = folder / f"{name}.pid"
        log = folder / f"{name}.log"
        if pid_file.exists() and is_alive(int(pid_file.read_text())):
            running.append(RunningService(name, int(pid_file.read_text()), log))
            continue
        with log.open("ab") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "learnerledger.ctl.main", "serve", name],
                env={**os.environ, **env, **_own_identity(name, logins, kafka_env)},
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        pid_file.write_text(str(process.pid))
        running.append(RunningService(name, process.pid, log))
    return running


def _own_identity(
    name: str, logins: dict[str, str] | None, kafka_env: dict[str, dict[str, str]] | None
) -> dict[str, str]:
    own: dict[str, str] = {}
    if logins and name in logins:
        own["DATABASE_URL"] = logins[name]
    if kafka_env:
        own.update(
            kafka_env.get(
                name,
                {
                    "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
                    "KAFKA_SASL_USERNAME": "",
                    "KAFKA_SASL_PASSWORD": "",
                },
            )
        )
    return own


def check_services(services: list[RunningService]) -> None:
    """Raise with the tail of its log when a service has exited."""
    for service in services:
        if not is_alive(service.pid):
            tail = service.log.read_text(errors="replace").splitlines()[-20:]
            raise RuntimeError(
                f"service {service.name} exited; last lines of {service.log}:\n" + "\n".join(tail)
            )


def stop_services(state_dir: Path, timeout: float = 20.0) -> list[str]:
    """SIGTERM every service started by ``start_services`` (SIGKILL after ``timeout``)."""
    folder = _folder(state_dir)
    stopped = []
    for name in SERVICES:
        pid_file = folder / f"{name}.pid"
        if not pid_file.exists():
            continue
        pid = int(pid_file.read_text())
        if is_alive(pid):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while is_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if is_alive(pid):
                os.kill(pid, signal.SIGKILL)
            stopped.append(name)
        pid_file.unlink()
    return stopped
