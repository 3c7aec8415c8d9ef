"""Inclusion and consistency proof latency of the verifiable log.

    .venv/bin/python -m bench.proofs [--entries 20000] [--samples 2000]
        [--keep-database NAME [--measure-only]] [--round 1000000]

On the local stack (``ledgerctl stack up``, or DATABASE_URL / ADMIN_DATABASE_URL), in a fresh
database (or ``--keep-database NAME``: that database, created if missing and kept afterwards,
so one build is measured several times; a partial build is continued, or with
``--measure-only`` measured as it stands): appends ``entries`` chained entries (10 per
learner, interleaved) by COPY and grows the Merkle tree with the checkpointer's own store
(``merkle_tree.grow_from_log``) after every ``round`` entries, then signs one tree head with
the checkpointer's own step (``take_tree_head``). It prints each phase's rate: log rows/s
(chaining and COPY), tree leaves/s (reading the log commit-safely, hashing, COPY of leaves and
nodes), and the VACUUM ANALYZE after the build. Then it measures,
for ``samples`` random leaves each:

- *server side*, in this process against PostgreSQL over one pooled connection: what a
  request costs the query service between receiving it and answering: the inclusion proof of
  a leaf under the latest head (``GET /proof/inclusion?leaf_index=``), of an entry found by
  its hash (``?entry_hash=``), of a learner's entry (VerifyEntry's proof), and the consistency
  proof between two random sizes (``GET /proof/consistency``);
- *over HTTP*: the same GETs against ``ledgerctl serve query`` (its own process, QUERY_HTTP_PORT)
  from one client, one request at a time (so latency, not throughput).

Prints p50 / p99 / max in milliseconds and the queries per proof, and the storage the log and
the tree take (bytes per entry, MB per million entries), and writes JSON under bench/results/.

The entries are real chained entries (``consent_granted``, the same payload each): their
canonical bytes come from a template, checked against ``hash_chain.append_to_chain`` on a
sample of every round, so the 10-million-entry log is built in minutes rather than hours; their
``source_event_id`` counts up (a UUID from the entry's number) instead of being random, which
spares the unique index random inserts while building. The proofs are measured through the
query service's own functions, on the real tables and indexes.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.harness import free_port, fresh_database, kept_database, save_report
from learnerledger.domain.entries import EntryDraft, EntryKind
from learnerledger.domain.hash_chain import GENESIS_HASH, ChainHead, append_to_chain
from learnerledger.domain.instants import format_instant
from learnerledger.domain.signed_note import NoteSigner
from learnerledger.ledger.tree_heads import take_tree_head
from learnerledger.postgres.merkle_tree import consistency_proof_between, grow_from_log
from learnerledger.postgres.tree_heads import (
    inclusion_at,
    inclusion_of_entry_hash,
    inclusion_of_leaf,
)
from learnerledger_devstack.stack import StackConfig, stack_up

PER_LEARNER = 10
FIRST_LEARNER = 700000000000
RECORDED = datetime(2026, 1, 1, tzinfo=UTC)
PAYLOAD = {"university_id": "bench-univ"}
PAYLOAD_JSON = '{"university_id":"bench-univ"}'
EVENT_ID_PREFIX = "be4c0000-0000-4000-8000-"  # + the entry's number in 12 hex digits
COLUMNS = (
    "learner_id", "sequence", "kind", "payload", "canonical_json", "rules_version",
    "source_event_id", "prev_hash", "entry_hash", "recorded_at",
)  # fmt: skip
#: RFC 8785 bytes of the entries built here: keys sorted, no whitespace (checked in
#: ``check_rows`` against the chain's own ``canonical_bytes`` via ``append_to_chain``).
CANONICAL = (
    '{"kind":"consent_granted","learner_id":"%s","payload":{"university_id":"bench-univ"},'
    f'"recorded_at":"{format_instant(RECORDED)}","rules_version":1,"sequence":%d,'
    '"source_event_id":"%s"}'
)
COPY_TRANSACTION = 100_000  # rows per COPY transaction
TREE_BATCH = 100_000  # entries per read of grow_from_log
CHECK_EVERY = 20_011  # every so many entries, one is chained again by append_to_chain


class Log:
    """The entries of ``learners`` learners, interleaved: entry ``n`` (from 0) is entry
    ``n // learners + 1`` of learner ``n % learners``; ``heads`` holds each learner's last hash."""

    def __init__(self, learners: int) -> None:
        self.learners = learners
        self.heads = [GENESIS_HASH] * learners
        self.size = 0

    def learner(self, n: int) -> str:
        return str(FIRST_LEARNER + n % self.learners)

    def rows(self, count: int) -> Iterator[tuple[object, ...]]:
        """The COPY rows of the next ``count`` entries, chained."""
        heads, learners, sha256 = self.heads, self.learners, hashlib.sha256
        for n in range(self.size, self.size + count):
            learner, sequence = n % learners, n // learners + 1
            event = f"{EVENT_ID_PREFIX}{n:012x}"
            learner_id = str(FIRST_LEARNER + learner)
            canonical = (CANONICAL % (learner_id, sequence, event)).encode()
            prev = heads[learner]
            entry_hash = sha256(prev + canonical).digest()
            heads[learner] = entry_hash
            row = (
                learner_id, sequence, "consent_granted", PAYLOAD_JSON, canonical, 1, event, prev,
                entry_hash, RECORDED,
            )  # fmt: skip
            if n % CHECK_EVERY == 0:
                self.check(n, row)
            yield row
        self.size += count

    def check(self, n: int, row: tuple[object, ...]) -> None:
        """Entry ``n``'s row is what the ledger's own chaining makes of it."""
        learner_id, sequence = row[0], row[1]
        assert isinstance(learner_id, str)
        assert isinstance(sequence, int)
        prev = row[7]
        assert isinstance(prev, bytes)
        head = None if sequence == 1 else ChainHead(learner_id, sequence - 1, prev)
        draft = EntryDraft(
            learner_id, EntryKind.CONSENT_GRANTED, PAYLOAD, 1, uuid.UUID(str(row[6])),
            RECORDED,
        )  # fmt: skip
        entry = append_to_chain(head, draft)
        if (entry.canonical_json, entry.entry_hash) != (row[4], row[8]):
            raise AssertionError(f"entry {n} is not chained as the ledger chains it")

    async def resume(self, connection: asyncpg.Connection) -> None:
        """Continue a log built before: its size and each learner's head, from the last
        ``learners`` rows (one per learner, the log being interleaved)."""
        rows = await connection.fetch(
            "SELECT learner_id, sequence, entry_hash FROM credit_log ORDER BY position DESC "
            "LIMIT $1",
            self.learners,
        )
        for row in rows:
            learner = int(row["learner_id"]) - FIRST_LEARNER
            if not 0 <= learner < self.learners:
                raise SystemExit("the kept database holds another log (--entries differs)")
            self.heads[learner] = bytes(row["entry_hash"])
            self.size = max(self.size, (row["sequence"] - 1) * self.learners + learner + 1)


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 3),
        "max_ms": round(ordered[-1] * 1000, 3),
        "samples": len(ordered),
    }


async def timed(samples: int, call: Callable[[int], Awaitable[Any]]) -> list[float]:
    for n in range(min(50, samples)):  # warm-up: plans, caches
        await call(n)
    took = []
    for n in range(samples):
        started = time.perf_counter()
        await call(n)
        took.append(time.perf_counter() - started)
    return took


class QueryCounter:
    """Counts the statements sent on one asyncpg connection (its query logger)."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.count = 0
        connection.add_query_logger(self._seen)

    def _seen(self, _: Any) -> None:
        self.count += 1


TABLES = (
    "credit_log",
    "merkle_tree_nodes",
    "merkle_tree_leaves",
    "merkle_tree_edges",
    "tree_heads",
)


async def build(connection: asyncpg.Connection, entries: int, round_size: int) -> dict[str, object]:
    """Append the log's entries not there yet and grow the tree after every ``round_size``."""
    log = Log(max(1, entries // PER_LEARNER))
    await log.resume(connection)
    if log.size > entries:
        raise SystemExit(f"the kept database holds {log.size} entries, more than {entries}")
    resumed_at, log_s, tree_s, leaves = log.size, 0.0, 0.0, 0
    while log.size < entries:
        this_round = min(round_size, entries - log.size)
        started = time.perf_counter()
        for first in range(0, this_round, COPY_TRANSACTION):
            async with connection.transaction():
                await connection.copy_records_to_table(
                    "credit_log",
                    columns=COLUMNS,
                    records=log.rows(min(COPY_TRANSACTION, this_round - first)),
                )
        took = time.perf_counter() - started
        log_s += took
        started = time.perf_counter()
        async with connection.transaction():
            before = await connection.fetchval("SELECT count(*) FROM merkle_tree_leaves")
            edge = await grow_from_log(connection, batch=TREE_BATCH)
        tree_took = time.perf_counter() - started
        tree_s += tree_took
        leaves += edge.size - before
        print(
            f"built {log.size:>10} entries: log {this_round / took:>8,.0f} rows/s, tree "
            f"{(edge.size - before) / tree_took:>8,.0f} leaves/s (tree size {edge.size})",
            flush=True,
        )
    appended = log.size - resumed_at
    return {
        "appended": appended,
        "log_s": round(log_s, 1),
        "log_rows_per_s": round(appended / log_s) if log_s else None,
        "tree_s": round(tree_s, 1),
        "tree_leaves_per_s": round(leaves / tree_s) if leaves else None,
    }


async def storage(connection: asyncpg.Connection, entries: int) -> dict[str, object]:
    """Bytes on disk of the log and the tree (heap with TOAST, and each index), and per entry."""
    rows = await connection.fetch(
        """SELECT t.relname AS name, pg_table_size(t.oid) AS heap,
                  pg_total_relation_size(t.oid) AS total
             FROM pg_class t WHERE t.relname = ANY($1::text[]) AND t.relkind = 'r'""",
        list(TABLES),
    )
    indexes = await connection.fetch(
        """SELECT t.relname AS of_table, i.relname AS name, pg_relation_size(i.oid) AS bytes
             FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
             JOIN pg_class t ON t.oid = x.indrelid
            WHERE t.relname = ANY($1::text[]) ORDER BY 1, 2""",
        list(TABLES),
    )
    per_million = 1_000_000 / entries

    def sized(total: int) -> dict[str, float]:
        return {
            "bytes": total,
            "bytes_per_entry": round(total / entries, 1),
            "mb_per_million": round(total * per_million / 1e6, 1),
        }

    tables = {r["name"]: {**sized(r["total"]), "heap_bytes": r["heap"]} for r in rows}
    for r in indexes:
        tables[r["of_table"]].setdefault("indexes", {})[r["name"]] = sized(r["bytes"])  # type: ignore[union-attr]
    tree = sum(int(r["total"]) for r in rows if r["name"] != "credit_log")
    return {"tables": tables, "tree_total": sized(tree)}


#: One key across runs, so that a kept database's tree head verifies on the next run.
SIGNER_KEY = hashlib.sha256(b"bench.proofs checkpointer").digest()


async def run(args: argparse.Namespace) -> dict[str, object]:
    info = stack_up(StackConfig.from_env())
    rng = random.Random(7)
    figures: dict[str, object] = {"entries": args.entries, "samples": args.samples}
    if args.keep_database:
        figures["database"] = args.keep_database
    async with AsyncExitStack() as stack:
        if args.keep_database:
            dsn = await kept_database(info, args.keep_database)
        else:
            dsn = await stack.enter_async_context(fresh_database(info))
        figures["load_before"] = os.getloadavg()
        connection = await asyncpg.connect(dsn)
        try:
            started = time.perf_counter()
            if args.measure_only:  # the log as it stands, e.g. a build stopped part way
                target = await connection.fetchval("SELECT count(*) FROM credit_log")
                figures["entries"] = target
            else:
                target = args.entries
                figures["build"] = await build(connection, args.entries, args.round)
            signer = NoteSigner(
                "bench.learnerledger/log", Ed25519PrivateKey.from_private_bytes(SIGNER_KEY)
            )
            grown = await take_tree_head(connection, signer)
            while grown.tree_size < target:  # the horizon waits out other writers
                await asyncio.sleep(0.1)
                grown = await take_tree_head(connection, signer)
            figures["seed_s"] = round(time.perf_counter() - started, 2)
            size = grown.tree_size
            started = time.perf_counter()
            await connection.execute("VACUUM ANALYZE")
            figures["vacuum_analyze_s"] = round(time.perf_counter() - started, 1)
            print(
                f"built in {figures['seed_s']} s, VACUUM ANALYZE {figures['vacuum_analyze_s']} s",
                flush=True,
            )
            figures["storage"] = await storage(connection, size)

            leaves = [rng.randrange(size) for _ in range(args.samples)]
            rows = await connection.fetch(
                """SELECT l.leaf_index, c.learner_id, c.sequence, c.entry_hash
                     FROM merkle_tree_leaves l JOIN credit_log c USING (position)
                    WHERE l.leaf_index = ANY($1::bigint[])""",
                leaves,
            )
            of_leaf = {r["leaf_index"]: r for r in rows}
            picked = [of_leaf[i] for i in leaves]
            pairs = [sorted(rng.sample(range(1, size + 1), 2)) for _ in range(args.samples)]
            counter = QueryCounter(connection)
            server: dict[str, object] = {}

            async def by_leaf(n: int) -> Any:
                return await inclusion_of_leaf(connection, leaves[n])

            async def by_hash(n: int) -> Any:
                return await inclusion_of_entry_hash(connection, bytes(picked[n]["entry_hash"]))

            async def by_learner(n: int) -> Any:
                return await inclusion_at(
                    connection, picked[n]["learner_id"], picked[n]["sequence"]
                )

            async def consistency(n: int) -> Any:
                return await consistency_proof_between(connection, *pairs[n])

            for name, call in [
                ("inclusion_by_leaf_index", by_leaf),
                ("inclusion_by_entry_hash", by_hash),
                ("inclusion_by_learner_sequence", by_learner),
                ("consistency", consistency),
            ]:
                took = await timed(args.samples, call)
                before = counter.count  # after the warm-up: type introspection is done
                await call(0)
                server[name] = {**summary(took), "queries": counter.count - before}
            figures["server_side"] = server
        finally:
            await connection.close()

        port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": dsn,
            "QUERY_GRPC_PORT": str(free_port()),
            "QUERY_HTTP_PORT": str(port),
            "QUERY_METRICS_PORT": "0",
            "LOG_LEVEL": "WARNING",
        }
        service = subprocess.Popen(
            [sys.executable, "-m", "learnerledger.ctl.main", "serve", "query"], env=env
        )
        try:
            base = f"http://127.0.0.1:{port}"
            async with aiohttp.ClientSession() as session:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        async with session.get(f"{base}/checkpoint") as response:
                            if response.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    if time.monotonic() > deadline or service.poll() is not None:
                        raise RuntimeError("the query service did not answer GET /checkpoint")
                    await asyncio.sleep(0.2)

                def getter(url_of: Callable[[int], str]) -> Callable[[int], Awaitable[Any]]:
                    async def get(n: int) -> Any:
                        async with session.get(base + url_of(n)) as response:
                            assert response.status == 200, await response.text()
                            return await response.read()

                    return get

                http: dict[str, object] = {}
                for name, url_of in [
                    ("checkpoint", lambda n: "/checkpoint"),
                    (
                        "inclusion_by_leaf_index",
                        lambda n: f"/proof/inclusion?leaf_index={leaves[n]}",
                    ),
                    (
                        "inclusion_by_entry_hash",
                        lambda n: (
                            f"/proof/inclusion?entry_hash={bytes(picked[n]['entry_hash']).hex()}"
                        ),
                    ),
                    (
                        "consistency",
                        lambda n: f"/proof/consistency?from={pairs[n][0]}&to={pairs[n][1]}",
                    ),
                ]:
                    http[name] = summary(await timed(args.samples, getter(url_of)))
                figures["http"] = http
        finally:
            service.terminate()
            service.wait(timeout=30)
    figures["load_after"] = os.getloadavg()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument(
        "--keep-database",
        metavar="NAME",
        help="build into (or reuse, or continue) database NAME and keep it afterwards",
    )
    parser.add_argument(
        "--measure-only",
        action="store_true",
        help="with --keep-database: append nothing, measure the log as it stands",
    )
    parser.add_argument(
        "--round", type=int, default=1_000_000, help="grow the tree after every ROUND entries"
    )
    args = parser.parse_args()
    if args.measure_only and not args.keep_database:
        parser.error("--measure-only needs --keep-database")
    figures = asyncio.run(run(args))
    print(f"build: {figures.get('build')}")
    print(f"storage at {figures['entries']} entries (MB per million entries, bytes per entry):")
    stored: Any = figures["storage"]
    for table, sizes in stored["tables"].items():
        print(f"  {table:32} {sizes['mb_per_million']:>9} MB/M {sizes['bytes_per_entry']:>8} B")
        for index, isize in sizes.get("indexes", {}).items():
            print(
                f"    {index:30} {isize['mb_per_million']:>9} MB/M {isize['bytes_per_entry']:>8} B"
            )
    tree = stored["tree_total"]
    print(f"  {'the tree (all four tables)':32} {tree['mb_per_million']:>9} MB/M")
    print(f"load average before {figures['load_before']}, after {figures['load_after']}")
    print(f"proof latency at {figures['entries']} entries ({args.samples} random leaves each)")
    print(f"{'':34} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'queries':>8}")
    for side in ("server_side", "http"):
        for name, row in figures[side].items():  # type: ignore[attr-defined]
            queries = row.get("queries", "")
            print(
                f"{side + ' ' + name:34} {row['p50_ms']:>8} {row['p99_ms']:>8} "
                f"{row['max_ms']:>8} {queries!s:>8}"
            )
    print(f"written {save_report('proofs', figures)}")


if __name__ == "__main__":
    main()
