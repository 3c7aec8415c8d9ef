"""Soak: a sustained stream through the whole pipeline, sampling memory, disk and lag over time.

    .venv/bin/python -m bench.soak [--rate 1000] [--minutes 10] [--sample-s 30]

Starts the four services (as ``bench.end_to_end`` does) and streams completions at ``--rate``
per second from 4 partner streams for ``--minutes``. Every ``--sample-s`` it records each
service's resident memory, the database's size, the Kafka data directory's size (local stack
only), completions acknowledged, entries in the ledger and credentials in the read model. The
point is boundedness: memory flat, lag flat, disk growing with the data and nothing else.
Prints the samples and writes JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import time
from collections.abc import AsyncIterator

import grpc

from bench.end_to_end import Pipeline, running_pipeline
from bench.harness import save_report, use_kafka_admin
from bench.ingest import completions, rss_mib
from learnerledger.v1 import issuer_gateway_pb2, issuer_gateway_pb2_grpc
from learnerledger_devstack.stack import StackConfig, stack_up


def du_mib(path: str) -> float | None:
    done = subprocess.run(["du", "-sm", path], capture_output=True, text=True, check=False)
    return float(done.stdout.split()[0]) if done.returncode == 0 else None


async def paced_stream(
    pipeline: Pipeline, client: int, rate: float, seconds: float, acked: list[int]
) -> None:
    items = completions(client, int(rate * seconds))
    for item in items:
        item.completion_id = item.completion_id.replace("ingest-", f"soak{client}-")

    async def requests() -> AsyncIterator[issuer_gateway_pb2.StreamCompletionsRequest]:
        began = time.perf_counter()
        for n, item in enumerate(items):
            delay = began + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            yield issuer_gateway_pb2.StreamCompletionsRequest(completion=item)

    async with grpc.aio.insecure_channel(pipeline.gateway) as channel:
        stub = issuer_gateway_pb2_grpc.IssuerGatewayServiceStub(channel)
        call = stub.StreamCompletions(
            requests(), metadata=(("authorization", f"Bearer {pipeline.token}"),)
        )
        async for ack in call:
            acked[0] += ack.status == issuer_gateway_pb2.ACCEPTANCE_STATUS_ACCEPTED


async def run(args: argparse.Namespace) -> dict[str, object]:
    cfg = StackConfig.from_env()
    info = stack_up(cfg)
    use_kafka_admin(info)
    # LEDGER_STATE_DIR names the local stack's state even when it is used as an external one.
    kafka_dir = str(cfg.kafka().data_dir) if cfg.kafka().data_dir.exists() else None
    seconds = args.minutes * 60
    samples: list[dict[str, object]] = []
    async with running_pipeline(info) as pipeline:
        acked = [0]
        streams = asyncio.gather(
            *(paced_stream(pipeline, c, args.rate / 4, seconds, acked) for c in range(4))
        )
        started = time.perf_counter()
        while not streams.done():
            await asyncio.sleep(args.sample_s)
            connection = pipeline.connection
            samples.append(
                {
                    "t_s": round(time.perf_counter() - started),
                    "acked": acked[0],
                    "in_ledger": await connection.fetchval("SELECT count(*) FROM credit_log"),
                    "in_read_model": await connection.fetchval(
                        "SELECT count(*) FROM read_credentials"
                    ),
                    "rss_mib": {s.name: rss_mib(s.pid) for s in pipeline.services},
                    "database_mib": round(
                        await connection.fetchval("SELECT pg_database_size(current_database())")
                        / 2**20,
                        1,
                    ),
                    "kafka_data_mib": du_mib(kafka_dir) if kafka_dir else None,
                }
            )
            print(samples[-1], flush=True)
        await streams
    return {
        "scenario": "soak",
        "offered_per_s": args.rate,
        "minutes": args.minutes,
        "acked": acked[0],
        "samples": samples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--sample-s", type=float, default=30.0)
    args = parser.parse_args()
    figures = asyncio.run(run(args))
    print(f"written {save_report('soak', figures)}")


if __name__ == "__main__":
    main()
