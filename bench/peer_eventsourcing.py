"""Our credit log beside the Python ``eventsourcing`` library's PostgreSQL store, same PostgreSQL.

    .venv/bin/python -m bench.peer_eventsourcing [--entries 100000] [--learners 10000]

What a Python team would reach for instead of us. Both sides store the same number of events,
one aggregate (learner) per stream, in batches of ``--batch``:

- append. Ours: the ledger's whole append path (decode, credit rules, hash chain, COPY, offsets;
  see ``bench.ledger_append``). Peer: ``PostgresApplicationRecorder.insert_events`` with each
  event's state set to the same canonical bytes our entry carries (no rules, no chain).
- replay. Ours: follow the log in commit-safe order (``read_committed_after``) and fold every
  entry into the read model (``apply_entries``), i.e. a projection rebuild from the log. Peer:
  read every event back in notification order (``select_notifications``), without folding.

Prints both and writes JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from urllib.parse import urlsplit

import asyncpg
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

from bench.harness import fresh_database, save_report, seed_issuer, use_kafka_admin
from bench.ledger_append import records
from learnerledger.ledger.appender import CreditLogAppender
from learnerledger.postgres.credit_log import LogCursor, read_committed_after
from learnerledger.postgres.pool import create_pool
from learnerledger.postgres.read_model import apply_entries
from learnerledger_devstack.stack import StackConfig, stack_up


async def ours(
    dsn: str, entries: int, learners: int, batch: int
) -> tuple[float, float, list[bytes]]:
    connection = await asyncpg.connect(dsn)
    await seed_issuer(connection, "bench-course")
    source = records(entries, learners)
    pool = await create_pool(dsn, role="ll_ledger", max_size=2)
    appender = CreditLogAppender(pool, group_id="bench")
    started = time.perf_counter()
    for start in range(0, len(source), batch):
        await appender.process(source[start : start + batch])
    append_s = time.perf_counter() - started
    await pool.close()

    states: list[bytes] = []
    cursor = LogCursor()
    started = time.perf_counter()
    while True:
        chunk, cursor = await read_committed_after(connection, cursor, batch)
        if not chunk:
            break
        async with connection.transaction():
            await apply_entries(connection, chunk)
        states.extend(entry.canonical_json for entry in chunk)
    replay_s = time.perf_counter() - started
    await connection.close()
    return append_s, replay_s, states


def peer(dsn: str, states: list[bytes], learners: int, batch: int) -> tuple[float, float, int]:
    parts = urlsplit(dsn)
    datastore = PostgresDatastore(
        dbname=parts.path.lstrip("/"),
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username or "",
        password=parts.password or "",
        schema="peer",
    )
    with datastore.transaction(commit=True) as curs:
        curs.execute("CREATE SCHEMA IF NOT EXISTS peer")
    recorder = PostgresApplicationRecorder(datastore, events_table_name="peer_events")
    recorder.create_table()
    streams = [uuid.uuid5(uuid.NAMESPACE_OID, f"learner-{n}") for n in range(learners)]
    versions = [0] * learners
    events = []
    for n, state in enumerate(states):
        stream = n % learners
        versions[stream] += 1
        events.append(StoredEvent(streams[stream], versions[stream], "CreditEntry", state))
    started = time.perf_counter()
    for start in range(0, len(events), batch):
        recorder.insert_events(events[start : start + batch])
    append_s = time.perf_counter() - started
    started = time.perf_counter()
    read, last = 0, None
    while True:
        chunk = recorder.select_notifications(start=last, limit=batch, inclusive_of_start=False)
        if not chunk:
            break
        read += len(chunk)
        last = chunk[-1].id
    replay_s = time.perf_counter() - started
    datastore.close()
    return append_s, replay_s, read


async def run(args: argparse.Namespace) -> dict[str, object]:
    info = stack_up(StackConfig.from_env())
    use_kafka_admin(info)
    async with fresh_database(info) as dsn:
        our_append, our_replay, states = await ours(dsn, args.entries, args.learners, args.batch)
        peer_append, peer_replay, read = await asyncio.to_thread(
            peer, dsn, states, args.learners, args.batch
        )
    n = args.entries
    return {
        "scenario": "peer_eventsourcing",
        "events": n,
        "learners": args.learners,
        "batch": args.batch,
        "ours_append_per_s": round(n / our_append),
        "peer_append_per_s": round(n / peer_append),
        "ours_replay_per_s": round(n / our_replay),
        "peer_read_per_s": round(read / peer_replay),
        "note": "ours append includes rules + hash chain; ours replay includes the fold into "
        "the read model; the peer does neither",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--learners", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args()
    figures = asyncio.run(run(args))
    print(f"{'events/s':<10} {'ours':>10} {'eventsourcing':>14}")
    print(f"{'append':<10} {figures['ours_append_per_s']:>10} {figures['peer_append_per_s']:>14}")
    print(f"{'replay':<10} {figures['ours_replay_per_s']:>10} {figures['peer_read_per_s']:>14}")
    print(f"written {save_report('peer_eventsourcing', figures)}")


if __name__ == "__main__":
    main()
