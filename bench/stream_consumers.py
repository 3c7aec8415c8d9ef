"""faust-streaming beside plain aiokafka, consuming the same topic on the same broker.

    .venv/bin/python -m bench.stream_consumers [--records 100000] [--size 400]

Why the projection worker uses aiokafka and not faust (the measurement behind the choice):
fills a fresh 3-partition topic, then consumes it once with a faust agent
(``stream.take(2000, within=0.5)``, memory store, no web server) in a separate process and
once with ``AIOKafkaConsumer.getmany(max_records=2000)``. Prints records/s for both and writes
JSON under bench/results/. Needs KAFKA_BOOTSTRAP_SERVERS (``ledgerctl stack up`` prints it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.harness import save_report
from learnerledger.kafka.security import client_options

FAUST_WORKER = """
import os, sys, time
import faust
topic_name, expected, result_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
credentials = None
if os.environ.get("KAFKA_SASL_USERNAME"):  # the local stack's Kafka requires SCRAM
    credentials = faust.SASLCredentials(
        username=os.environ["KAFKA_SASL_USERNAME"],
        password=os.environ["KAFKA_SASL_PASSWORD"],
        mechanism=os.environ.get("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
    )
app = faust.App("bench-" + topic_name, broker="kafka://" + os.environ["KAFKA_BOOTSTRAP_SERVERS"],
                broker_credentials=credentials,
                store="memory://", web_enabled=False, consumer_auto_offset_reset="earliest")
topic = app.topic(topic_name, value_serializer="raw", key_serializer="raw")
state = {"seen": 0, "start": None}
@app.agent(topic)
async def count(stream):
    async for batch in stream.take(2000, within=0.5):
        state["start"] = state["start"] or time.perf_counter()
        state["seen"] += len(batch)
        if state["seen"] >= expected:
            with open(result_file, "w") as out:  # faust captures stdout into its logs
                out.write(f"{state['seen']} {time.perf_counter() - state['start']}")
            os._exit(0)
sys.argv = [sys.argv[0], "worker", "-l", "warn"]
app.main()
"""


async def fill(bootstrap: str, topic: str, records: int, size: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_options())
    await admin.start()
    await admin.create_topics([NewTopic(topic, 3, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, **client_options())
    await producer.start()
    sends = [
        await producer.send(topic, key=str(n % 1000).encode(), value=b"x" * size)
        for n in range(records)
    ]
    await asyncio.gather(*sends)
    await producer.stop()


async def aiokafka_rate(bootstrap: str, topic: str, records: int) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"aiokafka-{topic}",
        auto_offset_reset="earliest",
        **client_options(),
    )
    await consumer.start()
    seen, start = 0, None
    try:
        while seen < records:
            batch = await consumer.getmany(timeout_ms=500, max_records=2000)
            if batch and start is None:
                start = time.perf_counter()
            seen += sum(len(messages) for messages in batch.values())
    finally:
        await consumer.stop()
    assert start is not None
    return seen / (time.perf_counter() - start)


def faust_rate(topic: str, records: int) -> float:
    with tempfile.TemporaryDirectory() as workdir:
        script = Path(workdir) / "worker.py"
        script.write_text(FAUST_WORKER)
        result = Path(workdir) / "result"
        done = subprocess.run(
            [sys.executable, str(script), topic, str(records), str(result)],
            cwd=workdir, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        if not result.exists():
            raise RuntimeError("the faust worker did not finish:\n" + done.stderr[-2000:])
        seen, seconds = result.read_text().split()
    return int(seen) / float(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=400)
    args = parser.parse_args()
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    topic = f"bench.consumers.{int(time.time())}"
    asyncio.run(fill(bootstrap, topic, args.records, args.size))
    faust = faust_rate(topic, args.records)
    plain = asyncio.run(aiokafka_rate(bootstrap, topic, args.records))
    report = {
        "scenario": "stream_consumers",
        "records": args.records,
        "record_bytes": args.size,
        "faust_records_per_s": round(faust),
        "aiokafka_records_per_s": round(plain),
        "ratio_faust_to_aiokafka": round(faust / plain, 4),
        "cores": os.cpu_count(),
    }
    print(f"{'consumer':<12} {'records/s':>12}")
    print(f"{'faust':<12} {report['faust_records_per_s']:>12}")
    print(f"{'aiokafka':<12} {report['aiokafka_records_per_s']:>12}")
    print(f"written {save_report('stream_consumers', report)}")


if __name__ == "__main__":
    main()
