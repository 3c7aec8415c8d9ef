"""Prometheus metrics of the issuer gateway (registered once per process)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ACCEPTED = Counter(
    "gateway_accepted_total",
    "Completions and revocations acknowledged (durable in Kafka)",
    ["kind"],
)
REJECTED = Counter(
    "gateway_rejected_total", "Requests or stream items refused, by reason", ["reason"]
)
LATENCY = Histogram(
    "gateway_request_seconds",
    "Time from receiving a request (or stream item) to answering it",
    ["method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
IN_FLIGHT = Gauge("gateway_in_flight", "Completions being written to Kafka right now")
STREAMS = Gauge("gateway_open_streams", "Open StreamCompletions calls")
RECORDED_LOOKUP_SKIPPED = Counter(
    "gateway_recorded_lookup_skipped_total",
    "Submissions answered ACCEPTED without the already-recorded check: PostgreSQL unreachable",
)
