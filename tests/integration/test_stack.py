"""The local stack works for real: Kafka round-trip, PostgreSQL read/write, clear errors."""

from __future__ import annotations

import importlib.util
import socket
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from learnerledger.kafka.security import client_options
from learnerledger_devstack.kafka_broker import KafkaBroker, find_java, new_cluster_id
from learnerledger_devstack.stack import (
    PortInUse,
    PostgresAuthFailed,
    StackConfig,
    StackInfo,
    check_postgres,
    stack_status,
    stack_up,
)
from tests.support.ports import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.integration


def _with_password(dsn: str, password: str) -> str:
    parts = urlsplit(dsn)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{password}@{host}"))


@pytest.fixture
def listening_socket() -> Iterator[int]:
    """A port something else (this socket) is listening on."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


async def test_kafka_round_trip_keeps_key_value_and_headers(
    kafka_bootstrap: str, topics: Any
) -> None:
    topic = topics.completions
    key = b"123456789012"
    value = uuid.uuid4().bytes + b"payload"
    headers = [("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]

    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        **client_options(),
    )
    await producer.start()
    try:
        meta = await producer.send_and_wait(topic, value=value, key=key, headers=headers)
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"pytest-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **client_options(),
    )
    await consumer.start()
    try:
        record = await consumer.getone()
    finally:
        await consumer.stop()

    assert (record.partition, record.offset) == (meta.partition, meta.offset)
    assert record.key == key
    assert record.value == value
    assert list(record.headers) == headers


async def test_postgres_write_and_read_in_the_test_database(
    database_url: str, admin_database_url: str
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("CREATE TABLE stack_probe (id int PRIMARY KEY, note text NOT NULL)")
        await conn.execute("INSERT INTO stack_probe VALUES ($1, $2)", 1, "hello ledger")
        assert await conn.fetchval("SELECT note FROM stack_probe WHERE id = 1") == "hello ledger"
        db = await conn.fetchval("SELECT current_database()")
        if importlib.util.find_spec("learnerledger.postgres.migrations") is not None:
            # The fixture migrated the fresh database.
            assert await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    finally:
        await conn.close()
    assert db.startswith("test_")

    admin = await asyncpg.connect(admin_database_url)
    try:
        assert await admin.fetchval("SELECT current_database()") == db
        assert await admin.fetchval("SELECT count(*) FROM stack_probe") == 1
    finally:
        await admin.close()


def test_stack_up_on_an_occupied_port_names_the_setting(
    listening_socket: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    cfg = StackConfig(
        state_dir=tmp_path / "state",
        kafka_port=listening_socket,
        kafka_controller_port=free_port(),
        postgres_port=free_port(),
    )
    with pytest.raises(PortInUse) as caught:
        stack_up(cfg)
    assert caught.value.setting == "LOCAL_KAFKA_PORT"
    assert caught.value.port == listening_socket
    assert "LOCAL_KAFKA_PORT" in str(caught.value)
    # Nothing was started.
    assert not (tmp_path / "state" / "kafka.pid").exists()
    assert not (tmp_path / "state" / "postgres.pid").exists()
    assert not any(status.pid for status in stack_status(cfg))


def test_occupied_postgres_port_names_its_setting(
    listening_socket: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    cfg = StackConfig(
        state_dir=tmp_path / "state",
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        postgres_port=listening_socket,
    )
    with pytest.raises(PortInUse, match="LOCAL_POSTGRES_PORT"):
        stack_up(cfg)
    assert not (tmp_path / "state" / "kafka.pid").exists()


def test_wrong_database_password_is_a_clear_error(stack: StackInfo) -> None:
    wrong = _with_password(stack.database_url, "not-the-password")
    with pytest.raises(PostgresAuthFailed) as caught:
        check_postgres(wrong, timeout=10)
    message = str(caught.value)
    assert "DATABASE_URL" in message
    assert "not-the-password" not in message  # the password is masked
    assert "***" in message


def test_external_servers_with_wrong_password_fail_stack_up(
    stack: StackInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", stack.kafka_bootstrap)
    monkeypatch.setenv("DATABASE_URL", _with_password(stack.database_url, "wrong"))
    with pytest.raises(PostgresAuthFailed, match="DATABASE_URL"):
        stack_up(StackConfig(state_dir=tmp_path / "unused"))
    assert not (tmp_path / "unused").exists()  # external mode starts nothing


def test_external_servers_are_checked_not_started(
    stack: StackInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", stack.kafka_bootstrap)
    monkeypatch.setenv("DATABASE_URL", stack.database_url)
    info = stack_up(StackConfig(state_dir=tmp_path / "unused"))
    assert info.external
    assert (info.kafka_bootstrap, info.database_url) == (stack.kafka_bootstrap, stack.database_url)
    assert info.kafka_pid is None
    statuses = stack_status(StackConfig(state_dir=tmp_path / "unused"))
    assert [s.name for s in statuses] == ["kafka", "postgres"]
    assert all(s.healthy for s in statuses)


def test_storage_formats_with_a_cluster_id_that_begins_with_a_dash(tmp_path: Path) -> None:
    """URL-safe base64 ids can begin with "-"; the storage tool must not read one as an option
    (it did about one start in 64: "argument --cluster-id/-t: expected one argument")."""
    cfg = StackConfig.from_env()
    broker = KafkaBroker(
        state_dir=tmp_path, libs_dir=cfg.libs_dir, port=free_port(), controller_port=free_port()
    )
    broker.write_config()
    cluster_id = "-" + new_cluster_id()[1:]
    (broker.home / "cluster.id").write_text(cluster_id + "\n")

    broker.format_storage(find_java())

    meta = (broker.data_dir / "meta.properties").read_text()
    assert f"cluster.id={cluster_id}\n" in meta


def test_new_cluster_ids_never_begin_with_a_dash() -> None:
    ids = [new_cluster_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
