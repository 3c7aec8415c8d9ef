"""Every benchmark in one command: ``python -m bench [--size smoke|full]``.

Runs each scenario as its own process (so each one's load generator is separate from the
service it measures), prints each table as it comes, and writes one combined JSON
(bench/results/all-<time>.json) holding every scenario's report. Needs the stack
(``ledgerctl stack up``) or KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL / ADMIN_DATABASE_URL.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from bench.harness import RESULTS, save_report

SIZES: dict[str, dict[str, list[str]]] = {
    "smoke": {
        "ingest": ["--completions", "2000"],
        "ledger_append": ["--entries", "2000", "--learners", "200"],
        "query_latency": ["--learners", "50", "--credits", "3", "--seconds", "1"],
        "peer_eventsourcing": ["--entries", "2000", "--learners", "200"],
        "stream_consumers": ["--records", "5000"],
        "end_to_end": ["--completions", "2000", "--rate", "50", "--seconds", "2"],
        "replay": ["--entries", "2000", "--learners", "200"],
        "bulk_upload": ["--rows", "2000"],
        "proofs": ["--entries", "2000", "--samples", "100"],
        "redemption": ["--learners", "50", "--courses", "2"],
        "credential_status": ["--credentials", "20", "--revocations", "5"],
    },
    "full": {
        "ingest": ["--completions", "200000"],
        "ledger_append": ["--entries", "200000", "--learners", "20000"],
        "query_latency": ["--learners", "2000", "--credits", "10", "--seconds", "10"],
        "peer_eventsourcing": ["--entries", "1000000", "--learners", "100000"],
        "stream_consumers": ["--records", "100000"],
        "end_to_end": ["--completions", "20000", "--rate", "200", "--seconds", "30"],
        "replay": ["--entries", "1000000", "--learners", "100000"],
        "bulk_upload": ["--rows", "100000"],
        "proofs": ["--entries", "200000", "--samples", "2000"],
        "redemption": ["--learners", "2000", "--courses", "4"],
        "credential_status": ["--credentials", "200", "--revocations", "50"],
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="smoke")
    args = parser.parse_args()
    reports: dict[str, object] = {}
    for scenario, scenario_args in SIZES[args.size].items():
        print(f"\n## {scenario} {' '.join(scenario_args)}", flush=True)
        done = subprocess.run(
            [sys.executable, "-m", f"bench.{scenario}", *scenario_args],
            capture_output=True,
            text=True,
            check=False,
        )
        print(done.stdout, end="", flush=True)
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            sys.exit(f"benchmark {scenario} failed")
        written = done.stdout.strip().splitlines()[-1].removeprefix("written ")
        reports[scenario] = json.loads(Path(written).read_text())
    print(f"\nwritten {save_report('all', {'size': args.size, 'scenarios': reports})}")
    print(f"(per-scenario JSON in {RESULTS})")


if __name__ == "__main__":
    main()
