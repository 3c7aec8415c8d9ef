"""Rebuilding the read model from the log, beside a raw COPY of the rows it produces.

    .venv/bin/python -m bench.replay [--entries 1000000] [--learners 100000]

On the local stack, in a fresh database: appends ``--entries`` credit entries for
``--learners`` learners through the ledger's appender, then times
``ledgerctl replay projections --source log`` (its own process: build beside the live model,
catch up, switch) and reports ledger entries rebuilt per second. The limit is a COPY of the
resulting read-model rows (transcripts and credentials) into bare tables of the same columns.
Prints a table and writes JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time

import asyncpg

from bench.harness import fresh_database, save_report, seed_issuer, use_kafka_admin
from bench.ledger_append import records
from learnerledger.ledger.appender import CreditLogAppender
from learnerledger.postgres.pool import create_pool
from learnerledger_devstack.stack import StackConfig, stack_up


async def copy_limit(connection: asyncpg.Connection, batch: int) -> tuple[float, int]:
    seconds, rows_copied = 0.0, 0
    for table in ("read_transcripts", "read_credentials"):
        rows = [tuple(r) for r in await connection.fetch(f"SELECT * FROM {table}")]
        columns = [
            r["attname"]
            for r in await connection.fetch(
                "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 "
                "AND NOT attisdropped ORDER BY attnum",
                table,
            )
        ]
        await connection.execute(f"CREATE TABLE bare_{table} AS SELECT * FROM {table} WITH NO DATA")
        started = time.perf_counter()
        for start in range(0, len(rows), batch):
            async with connection.transaction():
                await connection.copy_records_to_table(
                    f"bare_{table}", columns=columns, records=rows[start : start + batch]
                )
        seconds += time.perf_counter() - started
        rows_copied += len(rows)
    return seconds, rows_copied


async def run(args: argparse.Namespace) -> dict[str, object]:
    info = stack_up(StackConfig.from_env())
    use_kafka_admin(info)
    async with fresh_database(info) as dsn:
        connection = await asyncpg.connect(dsn)
        await seed_issuer(connection, "bench-course")
        pool = await create_pool(dsn, role="ll_ledger", max_size=2)
        appender = CreditLogAppender(pool, group_id="bench")
        source = records(args.entries, args.learners)
        for start in range(0, len(source), 2000):
            await appender.process(source[start : start + 2000])
        await pool.close()
        del source
        env = {**os.environ, "DATABASE_URL": dsn, "KAFKA_BOOTSTRAP_SERVERS": info.kafka_bootstrap}
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "learnerledger.ctl.main", "replay", "projections",
             "--source", "log"],
            env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        replay_s = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"replay failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        limit_s, rows = await copy_limit(connection, 5000)
        await connection.close()
    return {
        "scenario": "replay",
        "entries": args.entries,
        "learners": args.learners,
        "ours_entries_per_s": round(args.entries / replay_s),
        "ours_seconds": round(replay_s, 1),
        "limit_read_model_rows": rows,
        "limit_copy_rows_per_s": round(rows / limit_s),
        "ratio_rows": round((rows / replay_s) / (rows / limit_s), 3),
        "cores": "replay process and PostgreSQL share the machine's cores",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--learners", type=int, default=100_000)
    args = parser.parse_args()
    figures = asyncio.run(run(args))
    print(f"{'scenario':<8} {'ours (entries/s)':>17} {'read-model rows':>16} "
          f"{'limit: COPY rows/s':>19} {'ratio (rows/s)':>15}")  # fmt: skip
    print(
        f"{'replay':<8} {figures['ours_entries_per_s']:>17} {figures['limit_read_model_rows']:>16} "
        f"{figures['limit_copy_rows_per_s']:>19} {figures['ratio_rows']:>15}"
    )
    print(f"written {save_report('replay', figures)}")


if __name__ == "__main__":
    main()
