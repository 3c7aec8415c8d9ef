"""Ledger append rate beside its limit: a raw COPY of the same rows into a bare table.

    .venv/bin/python -m bench.ledger_append [--entries 200000] [--learners 20000] [--batch 2000]

Runs on the local stack (``ledgerctl stack up``; or KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL /
ADMIN_DATABASE_URL for other servers) in a fresh database. "Ours" is the ledger's whole append
path for decoded Kafka records: decode, look up facts, decide with the credit rules, chain
(SHA-256 over RFC 8785 bytes), COPY into ``credit_log`` with its unique keys, store the offsets,
one transaction per batch. "Limit" is a COPY of the resulting rows into a table with the same
columns and no constraints or indexes. Prints a table and writes JSON under bench/results/.

Beside it, what the verifiable log adds to appending: the checkpointer's tree step
(``take_tree_head``: read the new entries commit-safely, hash them into the Merkle tree, COPY
the leaves and nodes, check consistency with the last head and sign one) over the same entries,
timed on its own. The checkpointer runs it apart from the appender (once a tick), so its cost
per entry is added to the append path's: ``tree_overhead`` = tree seconds / append seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from datetime import UTC, datetime

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.harness import fresh_database, save_report, seed_issuer, use_kafka_admin
from learnerledger.domain.events import (
    CompletionSubmitted,
    Envelope,
    Result,
    completion_event_id,
)
from learnerledger.domain.signed_note import NoteSigner
from learnerledger.kafka.codec import encode_completion_event
from learnerledger.ledger.appender import CreditLogAppender, SourceRecord
from learnerledger.ledger.tree_heads import take_tree_head
from learnerledger.postgres.pool import create_pool
from learnerledger_devstack.stack import StackConfig, stack_up


def records(entries: int, learners: int) -> list[SourceRecord]:
    completed = datetime(2026, 1, 15, tzinfo=UTC)
    out = []
    for n in range(entries):
        learner = f"{600000000000 + n % learners}"
        request = CompletionSubmitted(
            Envelope(completion_event_id("bench", f"b-{n}"), 1, completed, "bench", learner),
            f"b-{n}",
            "bench-course",
            completed,
            Result.PASS,
            80.0,
        )
        out.append(
            SourceRecord(
                "completions.v1",
                n % 12,
                n // 12,
                learner.encode(),
                encode_completion_event(request),
            )
        )
    return out


async def run(entries: int, learners: int, batch: int) -> dict[str, object]:
    info = stack_up(StackConfig.from_env())
    use_kafka_admin(info)
    async with fresh_database(info) as dsn:
        connection = await asyncpg.connect(dsn)
        await seed_issuer(connection, "bench-course")
        source = records(entries, learners)
        pool = await create_pool(dsn, role="ll_ledger", max_size=2)
        appender = CreditLogAppender(pool, group_id="bench")
        started = time.perf_counter()
        for start in range(0, len(source), batch):
            await appender.process(source[start : start + batch])
        ours = time.perf_counter() - started
        await pool.close()

        signer = NoteSigner("bench.learnerledger/log", Ed25519PrivateKey.generate())
        started = time.perf_counter()
        grown = await take_tree_head(connection, signer)
        while grown.tree_size < entries:  # the horizon waits out other writers
            await asyncio.sleep(0.01)
            grown = await take_tree_head(connection, signer)
        tree = time.perf_counter() - started

        rows = await connection.fetch(
            "SELECT learner_id, sequence, kind, issuer_id, completion_id, payload::text, "
            "canonical_json, rules_version, source_event_id, source_partition, source_offset, "
            "prev_hash, entry_hash, recorded_at FROM credit_log ORDER BY position"
        )
        columns = [
            "learner_id", "sequence", "kind", "issuer_id", "completion_id", "payload",
            "canonical_json", "rules_version", "source_event_id", "source_partition",
            "source_offset", "prev_hash", "entry_hash", "recorded_at",
        ]  # fmt: skip
        await connection.execute(  # same columns and types, no constraints, no indexes
            f"CREATE TABLE bare AS SELECT {', '.join(columns)} FROM credit_log WITH NO DATA"
        )
        tuples = [tuple(r) for r in rows]
        started = time.perf_counter()
        for start in range(0, len(tuples), batch):
            async with connection.transaction():
                await connection.copy_records_to_table(
                    "bare", columns=columns, records=tuples[start : start + batch]
                )
        limit = time.perf_counter() - started
        stored = await connection.fetchval("SELECT count(*) FROM credit_log")
        await connection.close()
    return {
        "scenario": "ledger_append",
        "entries": entries,
        "learners": learners,
        "batch": batch,
        "stored": stored,
        "ours_entries_per_s": round(entries / ours),
        "limit_copy_rows_per_s": round(entries / limit),
        "ratio": round((entries / ours) / (entries / limit), 3),
        "ours_seconds": round(ours, 3),
        "limit_seconds": round(limit, 3),
        "tree_entries_per_s": round(entries / tree),
        "tree_seconds": round(tree, 3),
        "tree_us_per_entry": round(tree / entries * 1e6, 1),
        "append_us_per_entry": round(ours / entries * 1e6, 1),
        "tree_overhead": round(tree / ours, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--entries", type=int, default=int(os.environ.get("BENCH_ENTRIES", 200_000))
    )
    parser.add_argument("--learners", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args()
    figures = asyncio.run(run(args.entries, args.learners, args.batch))
    print(
        f"{'scenario':<16} {'ours (entries/s)':>18} {'limit: raw COPY (rows/s)':>26} {'ratio':>7}"
    )
    print(
        f"{'ledger append':<16} {figures['ours_entries_per_s']:>18} "
        f"{figures['limit_copy_rows_per_s']:>26} {figures['ratio']:>7}"
    )
    print(
        f"tree step (checkpointer): {figures['tree_entries_per_s']} entries/s, "
        f"{figures['tree_us_per_entry']} µs/entry beside {figures['append_us_per_entry']} µs/entry "
        f"appending: overhead {figures['tree_overhead']:.1%}"
    )
    print(f"written {save_report('ledger_append', figures)}")


if __name__ == "__main__":
    main()
