"""Inclusion and consistency proof latency of the verifiable log.

    .venv/bin/python -m bench.proofs [--entries 20000] [--samples 2000]

On the local stack (``ledgerctl stack up``, or DATABASE_URL / ADMIN_DATABASE_URL), in a fresh
database: appends ``entries`` chained entries (10 per learner) by COPY, grows the Merkle tree
and signs one tree head with the checkpointer's own step, then measures, for ``samples``
random leaves each:

- *server side*, in this process against PostgreSQL over one pooled connection: what a
  request costs the query service between receiving it and answering: the inclusion proof of
  a leaf under the latest head (``GET /proof/inclusion?leaf_index=``), of an entry found by
  its hash (``?entry_hash=``), of a learner's entry (VerifyEntry's proof), and the consistency
  proof between two random sizes (``GET /proof/consistency``);
- *over HTTP*: the same GETs against ``ledgerctl serve query`` (its own process, QUERY_HTTP_PORT)
  from one client, one request at a time (so latency, not throughput).

Prints p50 / p99 / max in milliseconds and the queries per proof, writes JSON under
bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.harness import free_port, fresh_database, save_report
from learnerledger.domain.entries import Entry, EntryDraft, EntryKind
from learnerledger.domain.hash_chain import ChainHead, append_to_chain
from learnerledger.domain.signed_note import NoteSigner
from learnerledger.ledger.tree_heads import take_tree_head
from learnerledger.postgres.credit_log import append_entries
from learnerledger.postgres.merkle_tree import consistency_proof_between
from learnerledger.postgres.tree_heads import (
    inclusion_at,
    inclusion_of_entry_hash,
    inclusion_of_leaf,
)
from learnerledger_devstack.stack import StackConfig, stack_up

PER_LEARNER = 10


def log_entries(count: int) -> list[Entry]:
    """``count`` entries of ``count / 10`` learners, interleaved in log order."""
    learners = max(1, count // PER_LEARNER)
    heads: dict[str, ChainHead | None] = {}
    recorded = datetime(2026, 1, 1, tzinfo=UTC)
    out: list[Entry] = []
    for n in range(count):
        learner = f"{700000000000 + n % learners}"
        draft = EntryDraft(
            learner,
            EntryKind.CONSENT_GRANTED,
            {"university_id": "bench-univ"},
            1,
            uuid.uuid4(),
            recorded,
        )
        entry = append_to_chain(heads.get(learner), draft)
        heads[learner] = ChainHead(entry.learner_id, entry.sequence, entry.entry_hash)
        out.append(entry)
    return out


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


async def run(args: argparse.Namespace) -> dict[str, object]:
    info = stack_up(StackConfig.from_env())
    rng = random.Random(7)
    figures: dict[str, object] = {"entries": args.entries, "samples": args.samples}
    async with fresh_database(info) as dsn:
        entries = log_entries(args.entries)
        connection = await asyncpg.connect(dsn)
        try:
            started = time.perf_counter()
            for start in range(0, len(entries), 5000):
                async with connection.transaction():
                    await append_entries(connection, entries[start : start + 5000])
            signer = NoteSigner("bench.learnerledger/log", Ed25519PrivateKey.generate())
            grown = await take_tree_head(connection, signer)
            while grown.tree_size < len(entries):  # the horizon waits out other writers
                await asyncio.sleep(0.1)
                grown = await take_tree_head(connection, signer)
            figures["seed_s"] = round(time.perf_counter() - started, 2)
            size = grown.tree_size
            await connection.execute("VACUUM ANALYZE")

            leaves = [rng.randrange(size) for _ in range(args.samples)]
            picked = [entries[i] for i in leaves]  # leaf i is entry i: one writer, in order
            pairs = [sorted(rng.sample(range(1, size + 1), 2)) for _ in range(args.samples)]
            counter = QueryCounter(connection)
            server: dict[str, object] = {}

            async def by_leaf(n: int) -> Any:
                return await inclusion_of_leaf(connection, leaves[n])

            async def by_hash(n: int) -> Any:
                return await inclusion_of_entry_hash(connection, picked[n].entry_hash)

            async def by_learner(n: int) -> Any:
                return await inclusion_at(connection, picked[n].learner_id, picked[n].sequence)

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
                        lambda n: f"/proof/inclusion?entry_hash={picked[n].entry_hash.hex()}",
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
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--samples", type=int, default=2000)
    args = parser.parse_args()
    figures = asyncio.run(run(args))
    print(f"proof latency at {args.entries} entries ({args.samples} random leaves each)")
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
