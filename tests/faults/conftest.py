"""The fault suite's counts go to the terminal summary, so CI output shows them without ``-s``."""

from __future__ import annotations

from typing import Any

import pytest

_REPORT = pytest.StashKey[list[str]]()


@pytest.fixture
def fault_report(request: pytest.FixtureRequest) -> list[str]:
    """Lines appended here are printed at the end of the run, pass or fail."""
    return request.config.stash.setdefault(_REPORT, [])


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    lines = config.stash.get(_REPORT, [])
    if lines:
        terminalreporter.write_sep("-", "fault suite: what was sent, acknowledged and stored")
        for line in lines:
            terminalreporter.write_line(line)
