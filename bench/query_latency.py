"""GetTranscript throughput and latency beside a bare grpcio server with the same response.

    .venv/bin/python -m bench.query_latency [--learners 2000] [--credits 10] [--seconds 10]

On the local stack (``ledgerctl stack up``, or KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL /
ADMIN_DATABASE_URL), in a fresh database: appends ``learners x credits`` entries through the
ledger's appender, folds them into the read model, starts ``ledgerctl serve query`` as its own
process, and drives GetTranscript with a university token at concurrency 16 and 64 from this
process (the load generator: grpc.aio, one channel per 8 workers). The limit is the same
generator against a bare grpc.aio server, also its own process, answering every call with one
constant GetTranscriptResponse of the same size. Prints requests/s, p50 and p99, writes JSON
under bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import grpc
import grpc_tools

from bench.harness import (
    free_port,
    fresh_database,
    save_report,
    seed_issuer,
    use_kafka_admin,
    wait_ready,
)
from learnerledger.domain.events import (
    CompletionSubmitted,
    ConsentGrantRequested,
    Envelope,
    LedgerRequest,
    Result,
    completion_event_id,
)
from learnerledger.kafka.codec import encode_completion_event
from learnerledger.ledger.appender import CreditLogAppender, SourceRecord
from learnerledger.postgres import catalog
from learnerledger.postgres.credit_log import entry_from_row
from learnerledger.postgres.pool import create_pool
from learnerledger.postgres.read_model import apply_entries
from learnerledger.v1 import transcript_query_pb2, transcript_query_pb2_grpc
from learnerledger_devstack.stack import StackConfig, stack_up

CONSTANT_SERVER = """
import asyncio, sys
import grpc
from grpc_reflection.v1alpha import reflection
from learnerledger.v1 import transcript_query_pb2, transcript_query_pb2_grpc

payload = open(sys.argv[2], "rb").read()
response = transcript_query_pb2.GetTranscriptResponse.FromString(payload)

class Constant(transcript_query_pb2_grpc.TranscriptQueryServiceServicer):
    async def GetTranscript(self, request, context):
        return response

async def main():
    server = grpc.aio.server()
    transcript_query_pb2_grpc.add_TranscriptQueryServiceServicer_to_server(Constant(), server)
    name = transcript_query_pb2.DESCRIPTOR.services_by_name["TranscriptQueryService"].full_name
    reflection.enable_server_reflection((name, reflection.SERVICE_NAME), server)
    server.add_insecure_port(f"127.0.0.1:{sys.argv[1]}")
    await server.start()
    await server.wait_for_termination()

asyncio.run(main())
"""


def requests_for(learners: list[str], credits: int) -> list[SourceRecord]:
    completed = datetime(2025, 6, 1, tzinfo=UTC)
    items: list[LedgerRequest] = []
    for learner in learners:
        items.append(
            ConsentGrantRequested(Envelope(uuid.uuid4(), 1, completed, "", learner), "bench-univ")
        )
        for n in range(credits):
            completion_id = f"{learner}-{n}"
            envelope = Envelope(
                completion_event_id("bench", completion_id), 1, completed, "bench", learner
            )
            items.append(
                CompletionSubmitted(
                    envelope, completion_id, "bench-course", completed, Result.PASS, 70.0
                )
            )
    return [
        SourceRecord(
            "completions.v1", 0, n, r.envelope.learner_id.encode(), encode_completion_event(r)
        )
        for n, r in enumerate(items)
    ]


async def prepare(dsn: str, learners: list[str], credits: int) -> str:
    connection = await asyncpg.connect(dsn)
    await seed_issuer(connection, "bench-course")
    await catalog.add_university(connection, "bench-univ", "Bench University")
    _, token = await catalog.issue_token(connection, catalog.PrincipalKind.UNIVERSITY, "bench-univ")
    pool = await create_pool(dsn, role="ll_ledger", max_size=2)
    records = requests_for(learners, credits)
    appender = CreditLogAppender(pool, group_id="bench")
    for start in range(0, len(records), 2000):
        await appender.process(records[start : start + 2000])
    await pool.close()
    rows = await connection.fetch(
        "SELECT position, learner_id, sequence, kind, payload, canonical_json, rules_version, "
        "source_event_id, source_partition, source_offset, prev_hash, entry_hash, recorded_at "
        "FROM credit_log ORDER BY learner_id, sequence"
    )
    entries = [entry_from_row(r) for r in rows]
    for start in range(0, len(entries), 5000):
        async with connection.transaction():
            await apply_entries(connection, entries[start : start + 5000])
    await connection.close()
    return token


ROOT = Path(__file__).resolve().parents[1]


def ghz_path() -> str | None:
    """ghz (github.com/bojand/ghz, `bash scripts/bench_tools.sh` installs it) if present."""
    local = ROOT / ".state" / "bin" / "ghz"
    return str(local) if local.exists() else shutil.which("ghz")


def drive_with_ghz(
    ghz: str, address: str, token: str, learners: list[str], concurrency: int, seconds: float
) -> dict[str, float]:
    """The same load from ghz (Go, its own process), learner ids drawn at random per call."""
    first, last = int(learners[0]), int(learners[-1])
    done = subprocess.run(
        [ghz, "--insecure", "--call", "learnerledger.v1.TranscriptQueryService/GetTranscript",
         "--proto", str(ROOT / "proto/learnerledger/v1/transcript_query.proto"),
         "--import-paths", f"{ROOT / 'proto'},{Path(grpc_tools.__file__).parent / '_proto'}",
         "-d", f'{{"learner_id": "{{{{randomInt {first} {last}}}}}"}}',
         "-m", json.dumps({"authorization": f"Bearer {token}"}),
         "-c", str(concurrency), "-z", f"{seconds:g}s",
         "--connections", str(max(1, concurrency // 8)), "--format", "json", address],
        capture_output=True, text=True, check=False, timeout=seconds + 120,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"ghz failed: {done.stderr or done.stdout}")
    report = json.loads(done.stdout)
    latencies = {d["percentage"]: d["latency"] for d in report["latencyDistribution"]}
    # ghz cuts off the calls in flight when the duration ends (reported as Unavailable or
    # Canceled, as many as the concurrency, on the bare server too): those are not errors.
    codes = report.get("statusCodeDistribution", {})
    cut_off = min(concurrency, codes.get("Unavailable", 0) + codes.get("Canceled", 0))
    errors = sum(n for code, n in codes.items() if code != "OK") - cut_off
    return {
        "concurrency": concurrency,
        "requests_per_s": round(report["rps"]),
        "p50_ms": round(latencies[50] / 1e6, 2),
        "p99_ms": round(latencies[99] / 1e6, 2),
        "errors": errors,
        "status_codes": report.get("statusCodeDistribution", {}),
    }


async def drive(
    address: str, token: str, learners: list[str], concurrency: int, seconds: float
) -> dict[str, float]:
    channels = [grpc.aio.insecure_channel(address) for _ in range(max(1, concurrency // 8))]
    stubs = [transcript_query_pb2_grpc.TranscriptQueryServiceStub(c) for c in channels]
    metadata = (("authorization", f"Bearer {token}"),)
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(index: int) -> None:
        nonlocal errors
        stub = stubs[index % len(stubs)]
        chooser = random.Random(index)
        while time.perf_counter() < deadline:
            request = transcript_query_pb2.GetTranscriptRequest(learner_id=chooser.choice(learners))
            started = time.perf_counter()
            try:
                await stub.GetTranscript(request, metadata=metadata, timeout=10)
            except grpc.aio.AioRpcError:
                errors += 1
                continue
            latencies.append(time.perf_counter() - started)

    began = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - began
    for channel in channels:
        await channel.close()
    quantiles = statistics.quantiles(latencies, n=100)
    return {
        "concurrency": concurrency,
        "requests_per_s": round(len(latencies) / elapsed),
        "p50_ms": round(quantiles[49] * 1000, 2),
        "p99_ms": round(quantiles[98] * 1000, 2),
        "errors": errors,
    }


async def run(args: argparse.Namespace) -> dict[str, object]:
    info = stack_up(StackConfig.from_env())
    use_kafka_admin(info)
    learners = [f"{300000000000 + n}" for n in range(args.learners)]
    processes: list[subprocess.Popen[bytes]] = []
    async with fresh_database(info) as dsn:
        try:
            token = await prepare(dsn, learners, args.credits)
            port = free_port()
            env = {**os.environ, "DATABASE_URL": dsn, "QUERY_GRPC_PORT": str(port),
                   "QUERY_METRICS_PORT": "0", "LOG_LEVEL": "WARNING"}  # fmt: skip
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "learnerledger.ctl.main", "serve", "query"], env=env
                )
            )
            await wait_ready(f"127.0.0.1:{port}")
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                sample = await transcript_query_pb2_grpc.TranscriptQueryServiceStub(
                    channel
                ).GetTranscript(
                    transcript_query_pb2.GetTranscriptRequest(learner_id=learners[0]),
                    metadata=(("authorization", f"Bearer {token}"),),
                )
            payload = Path(tempfile.mkdtemp()) / "response.bin"
            payload.write_bytes(sample.SerializeToString())
            script = payload.parent / "constant_server.py"
            script.write_text(CONSTANT_SERVER)
            bare_port = free_port()
            processes.append(
                subprocess.Popen([sys.executable, str(script), str(bare_port), str(payload)])
            )
            await wait_ready(f"127.0.0.1:{bare_port}")
            rows = []
            ghz = ghz_path()
            for concurrency in (16, 64):
                for target in (port, bare_port):
                    address = f"127.0.0.1:{target}"
                    figures = (
                        drive_with_ghz(ghz, address, token, learners, concurrency, args.seconds)
                        if ghz
                        else await drive(address, token, learners, concurrency, args.seconds)
                    )
                    if target == port:
                        ours = figures
                    else:
                        limit = figures
                rows.append(
                    {
                        "concurrency": concurrency,
                        "ours": ours,
                        "limit_bare_grpc": limit,
                        "ratio_rps": round(ours["requests_per_s"] / limit["requests_per_s"], 3),
                    }
                )
            response_bytes = len(sample.SerializeToString())
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=20)
    return {
        "scenario": "query_get_transcript",
        "learners": args.learners,
        "credits_per_learner": args.credits,
        "response_bytes": response_bytes,
        "seconds_per_run": args.seconds,
        "runs": rows,
        "load_generator": "ghz" if ghz_path() else "grpc.aio (python, this process)",
        "cores": "service, load generator and PostgreSQL share the machine's cores",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=2000)
    parser.add_argument("--credits", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    figures = asyncio.run(run(args))
    print(f"{'concurrency':>11} {'ours rps':>9} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'bare rps':>9} {'p50 ms':>7} {'p99 ms':>7} {'ratio':>6}")  # fmt: skip
    for row in figures["runs"]:  # type: ignore[attr-defined]
        ours, limit = row["ours"], row["limit_bare_grpc"]
        print(
            f"{row['concurrency']:>11} {ours['requests_per_s']:>9} {ours['p50_ms']:>7} "
            f"{ours['p99_ms']:>7} {limit['requests_per_s']:>9} {limit['p50_ms']:>7} "
            f"{limit['p99_ms']:>7} {row['ratio_rps']:>6}"
        )
    print(f"written {save_report('query_latency', figures)}")


if __name__ == "__main__":
    main()
