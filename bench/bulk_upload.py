"""Bulk upload end to end: ``ledgerctl submit`` of a CSV file, beside the raw ingest stream.

    .venv/bin/python -m bench.bulk_upload [--rows 100000]

On the local stack (``ledgerctl stack up``, or KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL /
ADMIN_DATABASE_URL): a fresh database and 12-partition topic, ``ledgerctl serve gateway`` as its
own process (rate limit lifted), a CSV of ``--rows`` rows written to a temporary directory, and
``ledgerctl submit`` as a process of its own: from reading the file (checked whole first, then
streamed through learnerledger-client) to the last report line, every row acknowledged by the
gateway (acks=all). The figure to set beside it is ``bench.ingest`` (the same gateway fed by
in-memory requests). Also reports the peak resident memory of ``ledgerctl submit`` (constant
memory: it does not grow with the file). Prints a table and writes JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from bench.harness import (
    fresh_database,
    running_gateway,
    save_report,
    seed_issuer,
    use_kafka_admin,
)
from learnerledger.kafka.topics import TopicSpec, ensure_topics
from learnerledger.postgres import catalog
from learnerledger_devstack.stack import StackConfig, stack_up

HEADER = "completion_id,learner_id,course_id,completed_at,result,score,grade,evidence_url"


def write_csv(path: Path, rows: int) -> None:
    when = (datetime.now(UTC) - timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with path.open("w", encoding="utf-8") as handle:
        handle.write(HEADER + "\n")
        for n in range(rows):
            learner = 400000000000 + (n * 7) % 100_000
            handle.write(
                f"bulk-{n},{learner},bulk-course,{when},pass,80,,"
                f"https://bench.example/certificates/{n}\n"
            )


def submit(path: Path, report: Path, address: str, token: str) -> tuple[float, float]:
    """Run ``ledgerctl submit``; its wall time (s) and its own peak RSS (MiB, from wait4)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "learnerledger.ctl.main", "submit", str(path),
         "--gateway", address, "--report", str(report)],
        env={**os.environ, "LEDGERCTL_ISSUER_TOKEN": token},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"ledgerctl submit failed ({process.returncode})")
    return elapsed, round(usage.ru_maxrss / 1024, 1)


async def run(args: argparse.Namespace) -> dict[str, object]:
    info = stack_up(StackConfig.from_env())
    use_kafka_admin(info)
    topic = f"bench.bulk.{secrets.token_hex(4)}"
    await ensure_topics(info.kafka_bootstrap, [TopicSpec(topic, 12, -1)])
    async with fresh_database(info) as dsn:
        connection = await asyncpg.connect(dsn)
        await seed_issuer(connection, "bulk-course")
        _, token = await catalog.issue_token(connection, catalog.PrincipalKind.ISSUER, "bench")
        await connection.close()
        async with running_gateway(info, dsn, topic) as (address, _):
            with tempfile.TemporaryDirectory(prefix="bench-bulk-") as folder:
                path, report = Path(folder) / "rows.csv", Path(folder) / "report.csv"
                write_csv(path, args.rows)
                elapsed, peak_mib = await asyncio.to_thread(submit, path, report, address, token)
                with report.open(encoding="utf-8", newline="") as handle:
                    outcomes = [row["outcome"] for row in csv.DictReader(handle)]
    accepted = outcomes.count("accepted") + outcomes.count("duplicate")
    if accepted != args.rows:
        raise RuntimeError(f"{accepted} of {args.rows} rows acknowledged")
    return {
        "scenario": "bulk_upload",
        "rows": args.rows,
        "acknowledged": accepted,
        "seconds": round(elapsed, 2),
        "ours_rows_per_s": round(args.rows / elapsed),
        "ledgerctl_submit_peak_rss_mib": peak_mib,
        "compare_with": "bench.ingest ours_completions_per_s (same gateway, in-memory requests)",
        "cores": "ledgerctl, the gateway, Kafka and PostgreSQL share the machine's cores",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    figures = asyncio.run(run(args))
    print(f"{'scenario':<12} {'rows':>8} {'seconds':>8} {'rows/s':>8} {'submit RSS MiB':>15}")
    print(
        f"{'bulk_upload':<12} {figures['rows']:>8} {figures['seconds']:>8} "
        f"{figures['ours_rows_per_s']:>8} {figures['ledgerctl_submit_peak_rss_mib']:>15}"
    )
    print(f"written {save_report('bulk_upload', figures)}")


if __name__ == "__main__":
    main()
