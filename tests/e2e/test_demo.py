"""The README's main command, ``ledgerctl demo``, as a user runs it (scripts/demo.sh runs
bootstrap and then exactly this), on its own stack and ports, then ``stack down``."""

from __future__ import annotations

import re
import shutil
import urllib.request

import pytest

from tests.support.cli import ledgerctl, our_processes, own_stack_env
from tests.support.ports import free_ports

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

COMPLETIONS = 300
SERVICES = ("GATEWAY", "QUERY", "LEDGER", "PROJECTOR")


def test_demo_streams_completions_into_transcripts_and_stops_clean() -> None:
    state, env = own_stack_env("ll-demo-")
    ports = free_ports(len(SERVICES))
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
        # The registrar's redemption: the university course and one SWAYAM course redeemed,
        # the other SWAYAM course refused for the 40% cap, printed per credential.
        assert re.search(r"^redemption demo-\S+: learner \d{12}, programme demo-bsc "
                         r"\(demo-university\): REDEEMED", out, flags=re.MULTILINE)  # fmt: skip
        outcomes = re.findall(
            r"^\s+\d+\s+(\S+)\s+(\S+)\s+[\d.]+\s+(REDEEMED|CAP_EXCEEDED)$", out, re.MULTILINE
        )
        assert sorted(o for _, _, o in outcomes) == ["CAP_EXCEEDED", "REDEEMED", "REDEEMED"]
        assert [(c[:7], cat) for c, cat, o in outcomes if o == "CAP_EXCEEDED"] == [
            ("swayam-", "swayam_mooc")
        ]
        # One credit printed as a verifiable credential, and the command that checks it works.
        assert "One credit as a verifiable credential" in out
        assert '"OpenBadgeCredential"' in out
        jwt_file = re.search(r"ledgerctl credential verify (\S+) --http", out)
        assert jwt_file is not None, out[-3000:]
        verified = ledgerctl(env, "credential", "verify", jwt_file.group(1), "--http")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "not revoked" in verified.stdout
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
