"""``ledgerctl lag``: how far each consumer, the outbox relay and the read model are behind.

* Consumer groups (``ledger`` on ``completions.v1``, ``projector`` on ``ledger.entries.v1``):
  per partition the committed offset, the log end offset and the difference. For the ledger,
  the offsets that count are in PostgreSQL (``consumer_offsets``, committed with the entries);
  Kafka's copy is updated after every batch, for dashboards, and is shown beside it.
* The relay: log entries not yet published to ``ledger.entries.v1`` (``relay_progress``).
* The read model: entries in the credit log not yet applied to ``read_transcripts``, and how
  many learners they belong to. This is what a university may not see yet.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from learnerledger.kafka.security import client_options
from learnerledger.postgres import Connection


@dataclass(frozen=True, slots=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    source: str  # "postgres" (the ledger's real offsets) or "kafka" (the group's commits)
    committed: int | None  # None: the group has committed nothing for this partition
    end: int

    @property
    def lag(self) -> int:
        return self.end - (self.committed or 0)


@dataclass(frozen=True, slots=True)
class LogLag:
    log_entries: int
    log_head_position: int
    unpublished: int
    unapplied_entries: int
    learners_behind: int


@dataclass(frozen=True, slots=True)
class LagReport:
    partitions: list[PartitionLag]
    log: LogLag


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="ledgerctl-lag", **client_options()
    )
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = sorted(
        p["partition"] for t in described if t["error_code"] == 0 for p in t["partitions"]
    )
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, client_id="ledgerctl-lag", **client_options()
    )
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
    finally:
        await consumer.stop()
    return {tp.partition: offset for tp, offset in ends.items()}


async def kafka_committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="ledgerctl-lag", **client_options()
    )
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {
        tp.partition: meta.offset
        for tp, meta in offsets.items()
        if tp.topic == topic and meta.offset >= 0
    }


async def postgres_committed(connection: Connection, group: str, topic: str) -> dict[int, int]:
    rows = await connection.fetch(
        "SELECT partition, next_offset FROM consumer_offsets WHERE group_id = $1 AND topic = $2",
        group,
        topic,
    )
    return {r["partition"]: r["next_offset"] for r in rows}


async def log_lag(connection: Connection, relay_topic: str) -> LogLag:
    head = await connection.fetchrow(
        "SELECT count(*) AS n, coalesce(max(position), 0) AS head FROM credit_log"
    )
    cursor = await connection.fetchrow(
        "SELECT last_tx_id::text AS tx, last_position FROM relay_progress WHERE topic = $1",
        relay_topic,
    )
    unpublished = await connection.fetchval(
        "SELECT count(*) FROM credit_log WHERE (tx_id, position) > ($1::text::xid8, $2::bigint)",
        cursor["tx"] if cursor else "0",
        cursor["last_position"] if cursor else 0,
    )
    behind = await connection.fetchrow(
        """SELECT coalesce(sum(h.head - coalesce(r.last_sequence, 0)), 0) AS entries,
                  count(*) AS learners
             FROM (SELECT learner_id, max(sequence) AS head FROM credit_log
                    GROUP BY learner_id) AS h
             LEFT JOIN read_transcripts AS r USING (learner_id)
            WHERE h.head > coalesce(r.last_sequence, 0)"""
    )
    assert head is not None  # aggregates always return a row
    assert behind is not None
    return LogLag(
        log_entries=int(head["n"]),
        log_head_position=int(head["head"]),
        unpublished=int(unpublished),
        unapplied_entries=int(behind["entries"]),
        learners_behind=int(behind["learners"]),
    )


async def collect(
    connection: Connection,
    *,
    bootstrap: str,
    ledger_group: str,
    completions_topic: str,
    projector_group: str,
    entries_topic: str,
) -> LagReport:
    partitions: list[PartitionLag] = []
    completions_end = await end_offsets(bootstrap, completions_topic)
    sources = (
        ("postgres", await postgres_committed(connection, ledger_group, completions_topic)),
        ("kafka", await kafka_committed(bootstrap, ledger_group, completions_topic)),
    )
    for source, committed in sources:
        partitions += [
            PartitionLag(ledger_group, completions_topic, p, source, committed.get(p), end)
            for p, end in sorted(completions_end.items())
        ]
    entries_end = await end_offsets(bootstrap, entries_topic)
    projector = await kafka_committed(bootstrap, projector_group, entries_topic)
    partitions += [
        PartitionLag(projector_group, entries_topic, p, "kafka", projector.get(p), end)
        for p, end in sorted(entries_end.items())
    ]
    return LagReport(partitions, await log_lag(connection, entries_topic))


def format_report(report: LagReport) -> str:
    lines = [
        f"{'group':<12} {'topic':<28} {'part':>4} {'offsets in':<10} "
        f"{'committed':>10} {'end':>10} {'lag':>8}"
    ]
    for p in report.partitions:
        committed = "-" if p.committed is None else str(p.committed)
        lines.append(
            f"{p.group:<12} {p.topic:<28} {p.partition:>4} {p.source:<10} "
            f"{committed:>10} {p.end:>10} {p.lag:>8}"
        )
    log = report.log
    lines += [
        f"credit log: {log.log_entries} entries, head position {log.log_head_position}",
        f"relay: {log.unpublished} entries not yet published to ledger.entries.v1",
        f"read model: {log.unapplied_entries} entries not yet applied "
        f"({log.learners_behind} learners behind)",
    ]
    return "\n".join(lines)
