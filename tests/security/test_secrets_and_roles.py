"""Secrets at rest, secrets and personal data in logs, and database least privilege.

Rule for logs (SECURITY.md, "Logs"): no bearer token, no token hash, no DSN and no learner
personal data. A learner's APAAR id is personal data (it identifies a person across every
institution); so are scores, grades and evidence URLs. Logs may carry issuer and university
ids, event ids (UUIDs, not reversible to a learner without the partner's completion id and the
log itself), partitions, offsets, counts and positions.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import grpc
import pytest

from learnerledger.postgres import catalog
from learnerledger.postgres.catalog import PrincipalKind
from learnerledger.v1 import (
    issuer_gateway_pb2,
    issuer_gateway_pb2_grpc,
    ledger_admin_pb2,
    ledger_admin_pb2_grpc,
    transcript_query_pb2,
    transcript_query_pb2_grpc,
)
from learnerledger_devstack.services import check_services, start_services, stop_services
from tests.support.gateway import completion as wire_completion
from tests.support.ledger import completion, eventually, produce, seed_catalog
from tests.support.pipeline import healthy
from tests.support.ports import free_port

pytestmark = pytest.mark.integration

LEARNERS = ["701234567890", "702345678901", "703456789012"]
INJECTIONS = [
    "x'); DELETE FROM credit_log; --",
    'x" OR "1"="1',
    'x\n{"level":"critical","event":"forged"}',
    "x\r\nSet-Cookie: a=b",
    "x\u2028y\u0085z",
]


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


# ------------------------------------------------------------------------------ tokens at rest
async def test_tokens_are_stored_only_as_sha256_hashes(database_url: str) -> None:
    await seed_catalog(database_url)
    connection = await asyncpg.connect(database_url)
    try:
        issued = [
            await catalog.issue_token(connection, PrincipalKind.ISSUER, "swayam"),
            await catalog.issue_token(connection, PrincipalKind.UNIVERSITY, "du"),
            await catalog.issue_token(connection, PrincipalKind.ADMIN, "ops"),
        ]
        for token_id, token in issued:
            row = await connection.fetchrow(
                "SELECT * FROM api_tokens WHERE token_id = $1", token_id
            )
            assert row is not None
            assert bytes(row["token_hash"]) == hashlib.sha256(token.encode()).digest()
            everything = " ".join(str(v) for v in row.values())
            secret_part = token.split("_", 2)[-1]
            assert token not in everything
            assert secret_part not in everything
            assert await catalog.authenticate(connection, token) is not None
        # The whole database: no column of any table holds a plaintext token.
        tables = await connection.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
        for table in tables:
            dump = await connection.fetchval(
                f"SELECT coalesce(string_agg(t::text, ' '), '') FROM \"{table[0]}\" t"
            )
            for _, token in issued:
                assert token.split("_", 2)[-1] not in dump, table[0]
        # A revoked token stops authenticating.
        await catalog.revoke_token(connection, issued[0][0])
        assert await catalog.authenticate(connection, issued[0][1]) is None
    finally:
        await connection.close()


# ------------------------------------------------------------------------------ database roles
@pytest.mark.parametrize(
    ("role", "statement"),
    [
        ("ll_ledger", "UPDATE credit_log SET kind = kind"),
        ("ll_ledger", "DELETE FROM credit_log"),
        ("ll_ledger", "TRUNCATE credit_log"),
        ("ll_ledger", "UPDATE checkpoints SET position = position"),
        ("ll_ledger", "UPDATE api_tokens SET revoked_at = NULL"),
        ("ll_ledger", "INSERT INTO api_tokens (token_id, token_hash, principal_kind, "
                      "principal_id) VALUES ('x', '\\x00', 'admin', 'x')"),
        ("ll_query", "INSERT INTO credit_log (learner_id) VALUES ('123456789012')"),
        ("ll_query", "UPDATE credit_log SET kind = kind"),
        ("ll_query", "DELETE FROM credit_log"),
        ("ll_query", "UPDATE read_transcripts SET total_credits = 1000"),
        ("ll_query", "INSERT INTO api_tokens (token_id) VALUES ('x')"),
        ("ll_gateway", "INSERT INTO credit_log (learner_id) VALUES ('123456789012')"),
        ("ll_gateway", "UPDATE credit_log SET kind = kind"),
        ("ll_gateway", "DELETE FROM credit_log"),
        # the gateway may insert an issuer's proposal (0046), never its recommendation
        ("ll_gateway", "INSERT INTO courses (course_id, credit_recommendation) "
                       "VALUES ('x', 'approved')"),
        ("ll_gateway", "UPDATE api_tokens SET revoked_at = NULL"),
        ("ll_projector", "INSERT INTO credit_log (learner_id) VALUES ('123456789012')"),
        ("ll_projector", "DELETE FROM credit_log"),
        ("ll_admin", "INSERT INTO credit_log (learner_id) VALUES ('123456789012')"),
        ("ll_admin", "UPDATE credit_log SET kind = kind"),
        ("ll_admin", "DELETE FROM checkpoints"),
        ("ll_ledger", "DELETE FROM tree_heads"),
        ("ll_ledger", "UPDATE merkle_tree_leaves SET position = position"),
        ("ll_query", "INSERT INTO tree_heads (tree_size) VALUES (1)"),
        ("ll_admin", "INSERT INTO tree_heads (tree_size) VALUES (1)"),
        ("ll_admin", "INSERT INTO merkle_tree_leaves (leaf_index) VALUES (0)"),
        ("ll_ledger", "DELETE FROM tree_head_publications"),
        ("ll_admin", "INSERT INTO tree_head_publications (topic) VALUES ('x')"),
    ],
)  # fmt: skip
async def test_service_roles_cannot_write_what_they_must_not(
    database_url: str, role: str, statement: str
) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(f'SET ROLE "{role}"')
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.execute(statement)
    finally:
        await connection.close()


async def test_service_roles_can_do_their_own_work(database_url: str) -> None:
    """Control for the refusals above: each role reads what it needs, and sees every row the
    owner sees (the refusals are not an artefact of a role that can read nothing)."""
    await seed_catalog(database_url)
    connection = await asyncpg.connect(database_url)
    try:
        await catalog.issue_token(connection, PrincipalKind.ADMIN, "ops")
        for role, table in [
            ("ll_ledger", "courses"),
            ("ll_query", "courses"),
            ("ll_gateway", "courses"),
            ("ll_gateway", "api_tokens"),
            ("ll_admin", "api_tokens"),
            ("ll_admin", "issuers"),
        ]:
            everything = await connection.fetchval(f"SELECT count(*) FROM {table}")
            assert everything > 0, f"seed_catalog left {table} empty"
            await connection.execute(f'SET ROLE "{role}"')
            assert await connection.fetchval(f"SELECT count(*) FROM {table}") == everything
            await connection.execute("RESET ROLE")
        # The projector's and query's tables are empty here; reading them must still work.
        for role, table in [("ll_projector", "read_credentials"), ("ll_query", "read_transcripts")]:
            await connection.execute(f'SET ROLE "{role}"')
            assert await connection.fetchval(f"SELECT count(*) FROM {table}") == 0
            await connection.execute("RESET ROLE")
    finally:
        await connection.close()


# --------------------------------------------------------------- no login can rewrite the log
SERVICE_LOGINS = {
    # purpose (login_urls key) -> the group role its pool does SET ROLE to
    "gateway": "ll_gateway",
    "ledger": "ll_ledger",
    "projector": "ll_projector",
    "query": "ll_query",
    "admin": "ll_admin",
}

#: What the owner of credit_log or checkpoints could do to rewrite or unprotect history.
TAMPERING = [
    "ALTER TABLE credit_log DISABLE TRIGGER USER",
    "ALTER TABLE credit_log DISABLE TRIGGER credit_log_no_update_delete",
    "ALTER TABLE credit_log ENABLE REPLICA TRIGGER credit_log_no_update_delete",
    "ALTER TRIGGER credit_log_no_update_delete ON credit_log RENAME TO gone",
    "DROP TRIGGER credit_log_no_update_delete ON credit_log",
    "DROP TRIGGER credit_log_no_truncate ON credit_log",
    "CREATE OR REPLACE FUNCTION credit_log_is_append_only() RETURNS trigger "
    "LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
    "ALTER FUNCTION credit_log_is_append_only() RENAME TO gone",
    "DROP FUNCTION credit_log_is_append_only() CASCADE",
    "DROP TABLE credit_log CASCADE",
    "ALTER TABLE credit_log OWNER TO CURRENT_USER",
    "ALTER TABLE credit_log ADD COLUMN forged text",
    "TRUNCATE credit_log",
    "UPDATE credit_log SET kind = kind",
    "DELETE FROM credit_log",
    "ALTER TABLE checkpoints DISABLE TRIGGER USER",
    "DROP TRIGGER checkpoints_no_update_delete ON checkpoints",
    "DROP TABLE checkpoints CASCADE",
    "ALTER TABLE checkpoints OWNER TO CURRENT_USER",
    "TRUNCATE checkpoints",
    "UPDATE checkpoints SET position = position",
    "DELETE FROM checkpoints",
    "DROP FUNCTION course_recommendation_changes_are_append_only() CASCADE",
    "ALTER TABLE course_recommendation_changes DISABLE TRIGGER USER",
    "UPDATE course_recommendation_changes SET reason = reason",
    "DELETE FROM course_recommendation_changes",
    "ALTER TABLE tree_heads DISABLE TRIGGER USER",
    "DELETE FROM tree_heads",
]


@pytest.mark.parametrize("purpose", sorted(SERVICE_LOGINS))
async def test_no_service_login_can_alter_disable_or_drop_the_log(
    login_urls: dict[str, str], purpose: str
) -> None:
    """Every service login, acting as its group role (as its pool does) and after RESET ROLE
    (as itself, with every membership it has): each statement is refused as
    insufficient_privilege (42501: "must be owner of ..." / "permission denied ...")."""
    connection = await asyncpg.connect(login_urls[purpose])
    try:
        for acting_as in (SERVICE_LOGINS[purpose], None):
            await connection.execute(
                f'SET ROLE "{acting_as}"' if acting_as is not None else "RESET ROLE"
            )
            for statement in TAMPERING:
                transaction = connection.transaction()
                await transaction.start()
                try:
                    with pytest.raises(asyncpg.InsufficientPrivilegeError) as refused:
                        await connection.execute(statement)
                    assert refused.value.sqlstate == "42501", statement
                finally:
                    await transaction.rollback()
    finally:
        await connection.close()


async def test_a_role_that_cannot_log_in_owns_the_schema(
    database_url: str, login_urls: dict[str, str]
) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        owners = dict(
            await connection.fetch(
                """SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')"""
            )
        )
        read_model = {"read_transcripts", "read_credentials", "read_model_replays"}
        assert {"credit_log", "checkpoints", "schema_migrations"} <= set(owners)
        assert {t: o for t, o in owners.items() if t not in read_model} == {
            t: "ll_owner" for t in owners if t not in read_model
        }
        assert {owners[t] for t in read_model} == {"ll_read_model_owner"}
        functions = await connection.fetch(
            """SELECT p.proname, pg_get_userbyid(p.proowner) AS owner FROM pg_proc p
               JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'"""
        )
        function_owners = {row["proname"]: row["owner"] for row in functions}
        assert {
            "credit_log_is_append_only",
            "course_recommendation_changes_are_append_only",
        } <= set(function_owners)
        assert function_owners == dict.fromkeys(function_owners, "ll_owner")
        assert (
            await connection.fetchval(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
            )
            == "ll_owner"
        )
        can_login = dict(
            await connection.fetch(
                "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = ANY($1::text[])",
                ["ll_owner", "ll_read_model_owner", *SERVICE_LOGINS.values()],
            )
        )
        assert can_login == dict.fromkeys(
            ["ll_owner", "ll_read_model_owner", *SERVICE_LOGINS.values()], False
        )
        for purpose in SERVICE_LOGINS:
            login = urlsplit(login_urls[purpose]).username
            assert login == f"ll_{purpose}_login"
            assert not await connection.fetchval(
                "SELECT pg_has_role($1, 'll_owner', 'MEMBER')", login
            )
            assert not await connection.fetchval(
                "SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolbypassrls "
                "FROM pg_roles WHERE rolname = $1",
                login,
            )
            assert not await connection.fetchval(
                """SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE c.relowner = $1::regrole""",
                login,
            )
    finally:
        await connection.close()


async def test_even_the_owner_cannot_change_an_entry(
    kafka_bootstrap: str, database_url: str, admin_database_url: str, topics: Any
) -> None:
    """Privileges bind the services; the trigger binds the owner and a superuser's plain DML."""
    from tests.support.ledger import running_ledger

    await seed_catalog(database_url)
    await produce(kafka_bootstrap, topics.completions, [completion("709999999999", "imm-1")])
    async with running_ledger(kafka_bootstrap, database_url, topics):

        async def appended() -> bool:
            connection = await asyncpg.connect(database_url)
            try:
                return bool(await connection.fetchval("SELECT count(*) FROM credit_log"))
            finally:
                await connection.close()

        await eventually(appended, what="an entry")
    for dsn in (database_url, admin_database_url):
        connection = await asyncpg.connect(dsn)
        try:
            for statement in (
                "UPDATE credit_log SET payload = '{}'::jsonb",
                "DELETE FROM credit_log",
                "TRUNCATE credit_log",
            ):
                with pytest.raises(asyncpg.PostgresError):
                    await connection.execute(statement)
            assert await connection.fetchval("SELECT count(*) FROM credit_log") >= 1
        finally:
            await connection.close()


# ------------------------------------------------------------------------------ logs
async def test_service_logs_hold_no_tokens_no_learner_ids_and_one_json_object_per_line(
    kafka_bootstrap: str, database_url: str, login_urls: dict[str, str], topics: Any
) -> None:
    """The four services as real processes at DEBUG; a scenario with good and bad calls; then
    every line of their logs is searched."""
    await seed_catalog(database_url)
    connection = await asyncpg.connect(database_url)
    try:
        issued = {
            "issuer": await catalog.issue_token(connection, PrincipalKind.ISSUER, "swayam"),
            "university": await catalog.issue_token(connection, PrincipalKind.UNIVERSITY, "du"),
            "admin": await catalog.issue_token(connection, PrincipalKind.ADMIN, "ops"),
        }
    finally:
        await connection.close()
    tokens = {kind: token for kind, (_, token) in issued.items()}
    wrong_token = "lli_deadbeef0000_ThisIsAWrongTokenThatMustNotBeLogged"
    ports = {name: free_port() for name in ("gateway", "query", "ledger", "projector")}
    env = {
        **topics.env(),
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "DATABASE_URL": database_url,
        **{f"{name.upper()}_GRPC_PORT": str(port) for name, port in ports.items()},
        **{f"{name.upper()}_METRICS_PORT": "0" for name in ports},
        "LEDGER_CONSUMER_GROUP": f"ledger-{topics.completions}",
        "PROJECTOR_CONSUMER_GROUP": f"projector-{topics.ledger_entries}",
        "LEDGER_SESSION_TIMEOUT_MS": "6000",
        "PROJECTOR_SESSION_TIMEOUT_MS": "6000",
        "LOG_LEVEL": "DEBUG",
        "LOG_FORMAT": "json",
    }
    state = Path(tempfile.mkdtemp(prefix="ll-logs-"))
    services = start_services(state, env, login_urls)  # each service as its own login
    try:
        for name in ("gateway", "query", "ledger"):
            await healthy(f"127.0.0.1:{ports[name]}")
        check_services(services)
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{ports['gateway']}") as g,
            grpc.aio.insecure_channel(f"127.0.0.1:{ports['query']}") as q,
            grpc.aio.insecure_channel(f"127.0.0.1:{ports['ledger']}") as a,
        ):
            gateway = issuer_gateway_pb2_grpc.IssuerGatewayServiceStub(g)
            query = transcript_query_pb2_grpc.TranscriptQueryServiceStub(q)
            admin = ledger_admin_pb2_grpc.LedgerAdminServiceStub(a)
            gpb = issuer_gateway_pb2
            for learner in LEARNERS:
                await admin.GrantConsent(
                    ledger_admin_pb2.GrantConsentRequest(learner_id=learner, university_id="du"),
                    metadata=bearer(tokens["admin"]),
                )
            for n, learner in enumerate(LEARNERS):
                await gateway.SubmitCompletion(
                    gpb.SubmitCompletionRequest(completion=wire_completion(f"log-{n}", learner)),
                    metadata=bearer(tokens["issuer"]),
                )
            for n, text in enumerate(INJECTIONS):  # refused or stored as data, never as SQL
                c = wire_completion(f"inj-{n}-{text}", LEARNERS[0])
                c.grade = text[:16]
                with_errors = []
                try:
                    await gateway.SubmitCompletion(
                        gpb.SubmitCompletionRequest(completion=c), metadata=bearer(tokens["issuer"])
                    )
                except grpc.aio.AioRpcError as exc:
                    with_errors.append(exc.code())
                assert set(with_errors) <= {grpc.StatusCode.INVALID_ARGUMENT}
            for metadata in (bearer(wrong_token), bearer(tokens["university"])):
                with pytest.raises(grpc.aio.AioRpcError):
                    await gateway.SubmitCompletion(
                        gpb.SubmitCompletionRequest(completion=wire_completion("x", LEARNERS[1])),
                        metadata=metadata,
                    )

            async def readable() -> bool:
                try:
                    reply = await query.GetTranscript(
                        transcript_query_pb2.GetTranscriptRequest(learner_id=LEARNERS[2]),
                        metadata=bearer(tokens["university"]),
                    )
                except grpc.aio.AioRpcError:
                    return False
                return reply.transcript.active_credits > 0

            await eventually(readable, what="a transcript through the whole pipeline")
            with pytest.raises(grpc.aio.AioRpcError):
                await query.GetTranscript(
                    transcript_query_pb2.GetTranscriptRequest(learner_id="799999999999"),
                    metadata=bearer(tokens["university"]),
                )
        check_services(services)
    finally:
        stop_services(state)
        await asyncio.sleep(0)

    lines: list[tuple[str, str]] = []
    for name in ("gateway", "ledger", "projector", "query"):
        text = (state / "services" / f"{name}.log").read_text(errors="replace")
        lines += [(name, line) for line in text.splitlines() if line.strip()]
    assert len(lines) > 10
    forbidden = {
        **{f"{kind} token": token for kind, token in tokens.items()},
        **{f"{kind} token secret": token.split("_", 2)[-1] for kind, token in tokens.items()},
        **{
            f"{kind} token hash": hashlib.sha256(token.encode()).hexdigest()
            for kind, token in tokens.items()
        },
        "wrong token": wrong_token,
        "DSN": "postgresql://",
        **{f"learner {learner}": learner for learner in [*LEARNERS, "799999999999"]},
    }
    structured = 0
    for service, line in lines:
        for what, needle in forbidden.items():
            assert needle not in line, f"{what} in the {service} log: {line[:300]}"
        if line.startswith("{"):
            record = json.loads(line)  # one JSON object per line: an injected newline cannot
            assert isinstance(record, dict)
            assert "event" in record
            assert record.get("level") != "critical"
            structured += 1
    print(f"searched {len(lines)} log lines ({structured} structured) of 4 services")
    assert structured > 10
