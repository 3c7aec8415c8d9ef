"""The README's main command, ``ledgerctl demo``, as a user runs it (scripts/demo.sh runs
bootstrap and then exactly this), on its own stack and ports, then ``stack down``."""

from __future__ import annotations

import re
import shutil
import urllib.request

import pytest

from tests.conftest import _free_ports
from tests.integration.test_stack_cli import ledgerctl, our_processes, own_stack_env

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

COMPLETIONS = 300
SERVICES = ("GATEWAY", "QUERY", "LEDGER", "PROJECTOR")


def test_demo_streams_completions_into_transcripts_and_stops_clean() -> None:
    state, env = own_stack_env("ll-demo-")
    ports = _free_ports(len(SERVICES))
    env |= {
        **{f"{name}_GRPC_PORT": str(port) for name, port in zip(SERVICES, ports, strict=True)},
        **{f"{name}_METRICS_PORT": "0" for name in SERVICES},
    }
    try:
        demo = ledgerctl(env, "demo", "--completions", str(COMPLETIONS), timeout=600)
        assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
        out = demo.stdout
        assert f"gateway: {COMPLETIONS} accepted, 0 rejected" in out
        assert f"{COMPLETIONS} completions from 3 partners are in the ledger" in out
        assert f"127.0.0.1:{ports[1]} list" in out  # the query API address it tells the user
        # The printed learner completed every course and repeated each partner's first one:
        # six credits, one per course (the pending course's by re-decision after its backdated
        # approval), and the three repeats recorded without credit (already_credited).
        assert "iitm-thesis approved, backdated with a reason;" in out
        courses = re.findall(r"^\s+demo-\S+\s+(\S+)\s+level", out, flags=re.MULTILINE)
        assert sorted(courses) == sorted(set(courses))
        assert len(courses) == 6
        assert "iitm-thesis" in courses
        assert "completions without credit 3" in out
        # the web pages: the learner's page and the sample learner's verification link
        link = re.search(r"(http://127\.0\.0\.1:\d+)/verify\?entry=([0-9a-f]{64})", out)
        assert link is not None, out[-2000:]
        assert f"{link.group(1)}/learner" in out
        with urllib.request.urlopen(link.group(0), timeout=30) as page:
            html = page.read().decode()
        assert 'data-verdict="' in html
        verdict = re.search(r'data-verdict="([a-z_]+)"', html)
        assert verdict is not None
        assert verdict.group(1) in ("active", "not_yet_sealed")  # sealed within 30 s
    finally:
        down = ledgerctl(env, "stack", "down")
        leftovers = our_processes(state)
        shutil.rmtree(state, ignore_errors=True)
    assert down.returncode == 0, down.stderr
    assert leftovers == []
