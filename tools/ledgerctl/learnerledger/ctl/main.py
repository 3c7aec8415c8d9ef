"""``ledgerctl``: run the services, manage the local stack, the catalog and the ledger.

Every subcommand reads its settings from the environment (``DATABASE_URL``,
``KAFKA_BOOTSTRAP_SERVERS``, ...). Without ``DATABASE_URL``, a command on the local stack logs in
with the login meant for it (``ll_admin_login`` for admin commands, ``ll_migrator`` for
``db migrate``, each service's own for ``serve``; see :mod:`learnerledger.ctl.db_logins`).
Errors a user can fix are printed as one message naming the setting or argument to change,
with exit code 2; a broken ledger (``verify``) exits 1, and a ledger whose chains verify but
that no signed checkpoint covers (yet) exits 3.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from learnerledger.config import CommonSettings

Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int] | int]


class UsageProblem(Exception):
    """Something the user can fix; printed without a traceback."""


def _settings() -> CommonSettings:
    return CommonSettings()


def _use_local_kafka_principal(principal: str) -> None:
    """Without KAFKA_SECURITY_PROTOCOL set, a command on the local stack authenticates to its
    Kafka as ``principal`` (``admin`` for ledgerctl's own commands, a service's for ``serve``;
    credentials from ``<state>/kafka/credentials.json``)."""
    from learnerledger.ctl.kafka_broker import PRINCIPALS
    from learnerledger.ctl.stack import StackConfig, external_servers

    if os.environ.get("KAFKA_SECURITY_PROTOCOL", "").strip() or external_servers() is not None:
        return
    broker = StackConfig.from_env().kafka()
    if broker.credentials_file.exists() and principal in PRINCIPALS:
        os.environ.update(broker.client_env(principal))


def _use_local_learner_sign_in() -> None:
    """Without LEARNER_OIDC_ISSUER set, a service on the local stack accepts learners' ID
    tokens from the local development provider (``ledgerctl learner token``), if the stack has
    one (``stack up`` makes it). A deployment configures its own provider instead."""
    from learnerledger.ctl.dev_identity import for_state_dir
    from learnerledger.ctl.stack import StackConfig, external_servers

    if os.environ.get("LEARNER_OIDC_ISSUER", "").strip() or external_servers() is not None:
        return
    provider = for_state_dir(StackConfig.from_env().state_dir)
    if provider.exists():
        os.environ.update(provider.settings_env())


def _database_url(purpose: str) -> str:
    """DATABASE_URL when set; else the local stack's login for ``purpose`` (``admin``,
    ``migrator`` or a service name) when the stack has made its logins; else the default."""
    from learnerledger.ctl.stack import StackConfig

    if not os.environ.get("DATABASE_URL", "").strip():
        postgres = StackConfig.from_env().postgres()
        if postgres.logins_file.exists():
            return postgres.login_urls()[purpose]
    return _settings().database_url


# stack ---------------------------------------------------------------------------------------
def cmd_stack_up(args: argparse.Namespace) -> int:
    from learnerledger.ctl.stack import StackConfig, stack_up

    cfg = StackConfig.from_env()
    info = stack_up(cfg)
    os.environ.update(info.kafka_env.get("admin", {}))  # topics are created as the Kafka admin
    asyncio.run(_prepare(info.kafka_bootstrap, info.database_url))
    where = "external servers" if info.external else "local stack"
    if not info.external:
        from learnerledger.ctl.dev_identity import for_state_dir

        # the development identity provider: `ledgerctl learner token` signs with it and the
        # local services (`ledgerctl serve`) accept its tokens
        for_state_dir(cfg.state_dir).ensure()
    print(f"{where} ready: kafka {info.kafka_bootstrap}, postgres {_redact(info.database_url)}")
    print("use it from a shell with:")
    if info.external:
        print(
            f"  export KAFKA_BOOTSTRAP_SERVERS={info.kafka_bootstrap} "
            f"DATABASE_URL={info.database_url}"
        )
    else:
        # No DATABASE_URL: each ledgerctl command then logs in as the login meant for it.
        admin = info.kafka_env.get("admin", {})
        print(
            f"  export KAFKA_BOOTSTRAP_SERVERS={info.kafka_bootstrap} "
            + " ".join(f"{name}={value}" for name, value in admin.items())
        )
        print(
            f"PostgreSQL logins (one per service, ll_admin_login for admin work) are in "
            f"{cfg.postgres().logins_file}; ledgerctl picks the right one. As the admin:"
        )
        print(f"  DATABASE_URL={info.login_url('admin')}")
    return 0


async def _prepare(bootstrap: str, database_url: str) -> None:
    """Schema migrations and topics: what every service expects to find."""
    from learnerledger.kafka.topics import ensure_topics, topic_specs
    from learnerledger.postgres.migrations import migrate

    settings = CommonSettings(kafka_bootstrap_servers=bootstrap, database_url=database_url)
    for name in await migrate(database_url):
        print(f"migrated: {name}")
    for topic in await ensure_topics(bootstrap, topic_specs(settings)):
        print(f"created topic: {topic}")


def cmd_stack_down(args: argparse.Namespace) -> int:
    from learnerledger.ctl.services import stop_services
    from learnerledger.ctl.stack import StackConfig, stack_down

    cfg = StackConfig.from_env()
    for name in stop_services(cfg.state_dir):
        print(f"stopped service {name}")
    stack_down(cfg)
    print("local stack stopped")
    return 0


def cmd_stack_status(args: argparse.Namespace) -> int:
    from learnerledger.ctl.stack import StackConfig, format_status, stack_status

    statuses = stack_status(StackConfig.from_env())
    print(format_status(statuses))
    return 0 if all(s.healthy for s in statuses) else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from learnerledger.ctl.demo import run_demo
    from learnerledger.ctl.stack import StackConfig, stack_up
    from learnerledger.ledger.verification import generate_signing_key

    cfg = StackConfig.from_env()
    info = stack_up(cfg)
    os.environ.update(info.kafka_env.get("admin", {}))  # the demo's own clients act as admin
    asyncio.run(_prepare(info.kafka_bootstrap, info.database_url))
    key = cfg.state_dir / "checkpoint-signing.key"
    if not key.exists():
        generate_signing_key(key)
    credential_key = cfg.state_dir / "credential-signing.key"  # its own key, not the checkpoint's
    if not credential_key.exists():
        generate_signing_key(credential_key)
    from learnerledger.domain.signed_note import NoteVerifier
    from learnerledger.ledger.settings import LedgerSettings
    from learnerledger.ledger.verification import load_signing_key, public_key_of

    ledger = LedgerSettings()
    vkey = NoteVerifier.for_key(
        ledger.log_origin, public_key_of(load_signing_key(key))
    ).verifier_key()
    env = {
        **info.env(),
        "LEDGER_CHECKPOINT_SIGNING_KEY_FILE": str(key),
        "LEDGER_CHECKPOINT_INTERVAL_S": "30",
        "QUERY_CREDENTIAL_SIGNING_KEY_FILE": str(credential_key),
        # the web pages (/verify, /learner) on the query service's HTTP server
        "QUERY_HTTP_PORT": os.environ.get("QUERY_HTTP_PORT") or str(_http_port(8080)),
        "QUERY_WEB_CHECKPOINT_VKEYS": os.environ.get("QUERY_WEB_CHECKPOINT_VKEYS") or vkey,
        "QUERY_WEB_LEDGER_ADDRESS": f"127.0.0.1:{ledger.grpc_port}",
    }
    os.environ["QUERY_HTTP_PORT"] = env["QUERY_HTTP_PORT"]  # the demo prints its URLs
    asyncio.run(
        run_demo(
            state_dir=cfg.state_dir,
            bootstrap=info.kafka_bootstrap,
            database_url=info.login_url("admin"),
            env=env,
            total=args.completions,
            logins=info.logins,
            kafka_env=info.kafka_env,
        )
    )
    return 0


def _http_port(preferred: int) -> int:
    """``preferred`` when it is free on 127.0.0.1, else any free port."""
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# db / topics ---------------------------------------------------------------------------------
async def cmd_db_migrate(args: argparse.Namespace) -> int:
    from learnerledger.postgres.migrations import migrate

    applied = await migrate(_database_url("migrator"))
    print("\n".join(f"applied {name}" for name in applied) or "schema is up to date")
    return 0


async def cmd_topics_create(args: argparse.Namespace) -> int:
    from learnerledger.kafka.topics import ensure_topics, topic_specs

    settings = _settings()
    created = await ensure_topics(
        settings.kafka_bootstrap_servers,
        topic_specs(settings),
        replication_factor=args.replication_factor,
        min_insync_replicas=args.min_insync_replicas,
    )
    print("\n".join(f"created {name}" for name in created) or "all topics exist")
    return 0


# serve ---------------------------------------------------------------------------------------
SERVICE_ENTRYPOINTS = {
    "gateway": "learnerledger.gateway.service",
    "ledger": "learnerledger.ledger.service",
    "query": "learnerledger.query.service",
    "projector": "learnerledger.query.projector",
}


def cmd_serve(args: argparse.Namespace) -> int:
    # Each service logs in as its own login (the ledger's also serves the admin API), and to
    # Kafka as its own principal.
    os.environ["DATABASE_URL"] = _database_url(args.service)
    _use_local_kafka_principal(args.service)
    _use_local_learner_sign_in()
    importlib.import_module(SERVICE_ENTRYPOINTS[args.service]).main()
    return 0


# catalog, partners and tokens ------------------------------------------------------------------
async def _with_connection(action: Callable[[Any], Coroutine[Any, Any, int]]) -> int:
    from learnerledger.postgres.pool import create_pool

    pool = await create_pool(_database_url("admin"), role="ll_admin", max_size=1)
    try:
        async with pool.acquire() as connection:
            return await action(connection)
    finally:
        await pool.close()


async def cmd_issuer_add(args: argparse.Namespace) -> int:
    from learnerledger.postgres import catalog

    async def add(connection: Any) -> int:
        await catalog.add_issuer(connection, args.issuer_id, args.name or args.issuer_id)
        print(f"issuer {args.issuer_id} added")
        return 0

    return await _with_connection(add)


async def cmd_university_add(args: argparse.Namespace) -> int:
    from learnerledger.postgres import catalog

    async def add(connection: Any) -> int:
        await catalog.add_university(
            connection, args.university_id, args.name or args.university_id
        )
        print(f"university {args.university_id} added")
        return 0

    return await _with_connection(add)


def _token_command(kind: str) -> Handler:
    async def issue(args: argparse.Namespace) -> int:
        from learnerledger.postgres import catalog

        async def create(connection: Any) -> int:
            principal = getattr(args, "principal_id", None) or "ops"
            token_id, token = await catalog.issue_token(
                connection, catalog.PrincipalKind(kind), principal
            )
            print(f"token {token_id} for {kind} {principal} (shown once, stored only as a hash):")
            print(token)
            return 0

        return await _with_connection(create)

    return issue


async def cmd_token_revoke(args: argparse.Namespace) -> int:
    from learnerledger.postgres import catalog

    async def revoke(connection: Any) -> int:
        await catalog.revoke_token(connection, args.token_id)
        print(f"token {args.token_id} revoked")
        return 0

    return await _with_connection(revoke)


async def cmd_course_add(args: argparse.Namespace) -> int:
    from learnerledger.domain.catalog import (
        NCRF_ALL_LEVELS,
        Course,
        CourseCategory,
        CreditRecommendation,
        HoursBasis,
        parse_level,
    )
    from learnerledger.postgres import catalog

    components = (args.theory_hours, args.practical_hours, args.experiential_hours)
    course = Course(
        course_id=args.course_id,
        issuer_id=args.issuer,
        title=args.title,
        level=parse_level(args.level, allowed=NCRF_ALL_LEVELS),
        notional_hours=args.hours if args.hours is not None else sum(components),
        hours_basis=HoursBasis(args.basis),
        theory_hours=args.theory_hours,
        practical_hours=args.practical_hours,
        experiential_hours=args.experiential_hours,
        credit_recommendation=CreditRecommendation.APPROVED
        if args.approved
        else CreditRecommendation.PENDING,
        skills=tuple(args.skill or ()),
        counts_as=args.counts_as or "",
        category=CourseCategory(args.category),
    )

    async def add(connection: Any) -> int:
        await catalog.add_course(connection, course)
        print(
            f"course {course.course_id} added ({course.credit_recommendation.value}, "
            f"{course.category.value})"
        )
        return 0

    return await _with_connection(add)


async def cmd_course_categorise(args: argparse.Namespace) -> int:
    from learnerledger.domain.catalog import CourseCategory
    from learnerledger.postgres import catalog

    async def update(connection: Any) -> int:
        course = await catalog.set_category(
            connection, args.course_id, CourseCategory(args.category), reason=args.reason
        )
        print(
            f"course {course.course_id}: category {course.category.value} (for redemptions "
            "decided from now on)"
        )
        return 0

    return await _with_connection(update)


def _course_state_command(state: str) -> Handler:
    async def change(args: argparse.Namespace) -> int:
        from learnerledger.domain.catalog import CreditRecommendation, InvalidCourse
        from learnerledger.postgres import catalog

        async def update(connection: Any) -> int:
            try:
                course, change = await catalog.set_recommendation(
                    connection,
                    args.course_id,
                    CreditRecommendation(state),
                    effective_at=args.effective_at,
                    reason=args.reason,
                )
            except InvalidCourse as exc:
                print(f"ledgerctl: {exc}", file=sys.stderr)
                return 2
            print(
                f"course {course.course_id}: credit recommendation {state} "
                f"effective {change.effective_at.isoformat()} (change {change.change_id})"
            )
            return 0

        return await _with_connection(update)

    return change


async def cmd_course_list(args: argparse.Namespace) -> int:
    from learnerledger.postgres import catalog

    async def show(connection: Any) -> int:
        courses = await catalog.list_courses(connection, issuer_id=args.issuer, limit=10_000)
        print(
            f"{'course':<24} {'issuer':<16} {'level':>5} {'hours':>6}  state      "
            f"{'category':<18} title"
        )
        for c in courses:
            print(
                f"{c.course_id:<24} {c.issuer_id:<16} {c.level!s:>5} {c.notional_hours:>6}  "
                f"{c.credit_recommendation.value:<10} {c.category.value:<18} {c.title}"
            )
        return 0

    return await _with_connection(show)


# ledger --------------------------------------------------------------------------------------
EXIT_UNPROTECTED = 3  # verify: every chain verifies, but no signed checkpoint covers it


async def cmd_verify(args: argparse.Namespace) -> int:
    from learnerledger.ledger.settings import LedgerSettings
    from learnerledger.ledger.verification import load_signing_key, public_key_of, verify_ledger

    settings = LedgerSettings()
    trusted: bytes | None = None
    if args.public_key:
        trusted = bytes.fromhex(args.public_key)
    elif settings.checkpoint_signing_key_file is not None:
        trusted = public_key_of(load_signing_key(settings.checkpoint_signing_key_file))

    async def check(connection: Any) -> int:
        report = await verify_ledger(
            connection, learner_id=args.learner, trusted_public_key=trusted
        )
        print(
            f"checked {report.entries_checked} entries of {report.learners_checked} learners, "
            f"{report.checkpoints_checked} checkpoint(s)"
        )
        if report.first_break is not None:
            b = report.first_break
            print(f"BROKEN: learner {b.learner_id} sequence {b.sequence}: {b.reason}")
            print(f"  expected {b.expected_hash.hex()}\n  stored   {b.stored_hash.hex()}")
        for problem in report.checkpoint_problems:
            print(f"BROKEN: {problem.describe()}")
        if report.tree_checked and report.tree_size == 0:
            print("Merkle tree: no signed tree head yet (nothing to recompute)")
        elif report.tree_checked and report.tree_ok:
            print(
                f"Merkle tree: the root recomputed over the log's first {report.tree_size} "
                f"entries matches the latest signed tree head (size {report.tree_size})"
                + ("" if trusted is not None else ", whose signature was not checked (no key)")
            )
        if trusted is None and report.checkpoints_checked:
            print(
                "note: the checkpoints were checked against the key stored beside them, which a "
                "database insider could replace; pass --public-key or set "
                "LEDGER_CHECKPOINT_SIGNING_KEY_FILE"
            )
        return _verify_verdict(report, args.learner)

    return await _with_connection(check)


def _verify_verdict(report: Any, learner: str | None) -> int:
    """Print the verdict of ``verify``; exit 0 verified, 1 broken, 3 chains fine but unsigned."""
    from learnerledger.domain.checkpoints import Coverage

    if not report.ok:
        print("ledger NOT verified: see BROKEN above")
        return 1
    chains = f"learner {learner}'s chain verifies" if learner else "every chain verifies"
    if report.coverage is Coverage.NO_CHECKPOINT:
        print(
            f"NOT PROTECTED: {chains}, but no signed checkpoint exists, so a consistent rewrite "
            "of history would not show (is LEDGER_CHECKPOINT_SIGNING_KEY_FILE set on the ledger?)"
        )
        return EXIT_UNPROTECTED
    if report.coverage is Coverage.NOT_COVERED:
        print(
            f"NOT PROTECTED: {chains}, but no signed checkpoint covers learner {learner} yet, "
            "so a consistent rewrite of it would not show"
        )
        return EXIT_UNPROTECTED
    what = f"learner {learner}'s chain" if learner else "every chain"
    print(
        f"ledger verified: {what} and all {report.checkpoints_checked} signed checkpoint(s) "
        "match, each extending the one before"
    )
    return 0


def cmd_keys_generate(args: argparse.Namespace) -> int:
    from learnerledger.ledger.verification import generate_signing_key

    path = Path(args.path)
    if path.exists():
        raise UsageProblem(f"{path} exists; refusing to overwrite a signing key")
    public = generate_signing_key(path)
    print(f"signing key written to {path}; public key (give to verifiers): {public.hex()}")
    return 0


def cmd_learner_token(args: argparse.Namespace) -> int:
    from learnerledger.ctl.dev_identity import for_state_dir
    from learnerledger.ctl.stack import StackConfig

    provider = for_state_dir(StackConfig.from_env().state_dir).ensure()
    try:
        token = provider.mint(args.learner_id, lifetime_s=args.lifetime_s)
    except ValueError as exc:
        raise UsageProblem(str(exc)) from exc
    print(
        f"ID token for learner {args.learner_id} from the local development provider "
        f"(valid {args.lifetime_s} s; key set {provider.jwks_file}):",
        file=sys.stderr,
    )
    print(token)
    return 0


# replay, re-drive, lag -----------------------------------------------------------------------
def _instant_arg(value: str) -> datetime:
    """An ISO 8601 instant for ``--since`` / ``--until``; without an offset it is UTC."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO 8601 instant (e.g. 2026-03-01T00:00:00Z)"
        ) from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


async def cmd_replay_rejected(args: argparse.Namespace) -> int:
    from learnerledger.kafka.producer import durable_producer
    from learnerledger.ledger.redrive import RejectionFilter, plan, redrive, select_rejections

    settings = _settings()
    selection = RejectionFilter(args.reason, args.issuer, args.since, args.until)

    async def run(connection: Any) -> int:
        rejections = await select_rejections(connection, selection, limit=args.limit)
        if args.dry_run:
            print(f"{'rejection':>9}  {'learner':<12} {'issuer':<12} {'completion':<20} "
                  f"{'was':<28} would be now")  # fmt: skip
            for item in await plan(connection, rejections):
                r = item.rejection
                print(
                    f"{r.rejection_id:>9}  {r.learner_id or '-':<12} {r.issuer_id or '-':<12} "
                    f"{r.completion_id or '-':<20} {r.reason:<28} {item.outcome} ({item.detail})"
                )
            print(f"{len(rejections)} rejected request(s) would be re-driven to "
                  f"{settings.topic_completions} (dry run: nothing sent)")  # fmt: skip
            return 0
        if not rejections:
            print("no rejected requests match")
            return 0
        producer = durable_producer(settings.kafka_bootstrap_servers, client_id="ledgerctl-redrive")
        await producer.start()
        try:
            sent = await redrive(producer, settings.topic_completions, rejections)
        finally:
            await producer.stop()
        print(f"re-drove {sent} rejected request(s) to {settings.topic_completions}")
        return 0

    return await _with_connection(run)


async def cmd_replay_projections(args: argparse.Namespace) -> int:
    from learnerledger.ctl.replay import replay_projections

    settings = _settings()
    final = await replay_projections(
        _database_url("admin"),
        source=args.source,
        learner_ids=args.learner or (),
        bootstrap_servers=settings.kafka_bootstrap_servers,
        entries_topic=settings.topic_ledger_entries,
        batch=args.batch,
    )
    return 0 if final.state == "succeeded" else 1


async def cmd_lag(args: argparse.Namespace) -> int:
    from learnerledger.ctl.lag import collect, format_report
    from learnerledger.ledger.settings import LedgerSettings
    from learnerledger.query.settings import ProjectorSettings

    settings = _settings()

    async def show(connection: Any) -> int:
        report = await collect(
            connection,
            bootstrap=settings.kafka_bootstrap_servers,
            ledger_group=args.ledger_group or LedgerSettings().consumer_group,
            completions_topic=settings.topic_completions,
            projector_group=args.projector_group or ProjectorSettings().consumer_group,
            entries_topic=settings.topic_ledger_entries,
        )
        print(format_report(report))
        return 0

    return await _with_connection(show)


def _redact(dsn: str) -> str:
    from learnerledger.postgres.errors import redact

    return redact(dsn)


# parser --------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ledgerctl", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(group: Any, name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = group.add_parser(name, help=help_text)
        sub.set_defaults(handler=handler)
        return sub

    def group(name: str, help_text: str) -> Any:
        sub = commands.add_parser(name, help=help_text)
        return sub.add_subparsers(dest=f"{name}_command", required=True, metavar="ACTION")

    stack = group("stack", "the local Kafka + PostgreSQL stack")
    command(stack, "up", cmd_stack_up, "start (or reuse) Kafka and PostgreSQL, migrate, topics")
    command(stack, "down", cmd_stack_down, "stop what `stack up` started")
    command(stack, "status", cmd_stack_status, "each component, its address, pid and health")

    demo = command(commands, "demo", cmd_demo, "the whole pipeline locally, with demo data")
    demo.add_argument("--completions", type=int, default=10_000)

    db = group("db", "the PostgreSQL schema")
    command(db, "migrate", cmd_db_migrate, "apply pending schema migrations")

    topics = group("topics", "Kafka topics")
    create = command(topics, "create", cmd_topics_create, "create missing topics with retention")
    create.add_argument("--replication-factor", type=int, default=1)
    create.add_argument("--min-insync-replicas", type=int, default=1)

    serve = command(commands, "serve", cmd_serve, "run one service in the foreground")
    serve.add_argument("service", choices=sorted(SERVICE_ENTRYPOINTS))

    issuer = group("issuer", "partners that certify learning")
    add = command(issuer, "add", cmd_issuer_add, "register an issuer")
    add.add_argument("issuer_id")
    add.add_argument("--name", help="display name")
    token = command(issuer, "token", _token_command("issuer"), "create an API token (shown once)")
    token.add_argument("principal_id", metavar="issuer_id")

    university = group("university", "universities that read transcripts")
    add = command(university, "add", cmd_university_add, "register a university")
    add.add_argument("university_id")
    add.add_argument("--name", help="display name")
    token = command(
        university, "token", _token_command("university"), "create an API token (shown once)"
    )
    token.add_argument("principal_id", metavar="university_id")

    tokens = group("token", "API tokens")
    command(tokens, "admin", _token_command("admin"), "create an admin API token (shown once)")
    revoke = command(tokens, "revoke", cmd_token_revoke, "revoke a token by its id")
    revoke.add_argument("token_id")

    course = group("course", "the course catalog")
    add = command(course, "add", cmd_course_add, "add a course (pending unless --approved)")
    add.add_argument("course_id")
    add.add_argument("--issuer", required=True)
    add.add_argument("--title", required=True)
    add.add_argument(
        "--level",
        required=True,
        help="NCrF level: 4.5, 5, 5.5, 6, 6.5, 7 or 8; skilling courses 1 to 8 in half steps",
    )
    add.add_argument(
        "--hours", type=int, help="notional learning hours (default: the sum of the components)"
    )
    add.add_argument(
        "--basis",
        choices=("ncrf", "nheqf"),
        default="ncrf",
        help="hours per credit: ncrf 30 h; nheqf 15 h theory, 30 h practical, 45 h experiential",
    )
    for component in ("theory", "practical", "experiential"):
        add.add_argument(
            f"--{component}-hours", type=int, default=0, help=f"hours of {component} (nheqf)"
        )
    add.add_argument("--skill", action="append")
    add.add_argument("--approved", action="store_true", help="approve its credit recommendation")
    add.add_argument(
        "--counts-as",
        metavar="COURSE_ID",
        help="a version of this course: a learner earns credit once for both",
    )
    categories = ("swayam_mooc", "micro_credential", "university_course", "skilling")
    add.add_argument(
        "--category",
        choices=categories,
        default="university_course",
        help="where its credit comes from, for the redemption caps (default university_course)",
    )
    categorise = command(
        course,
        "categorise",
        cmd_course_categorise,
        "set a course's category (for redemptions decided from now on)",
    )
    categorise.add_argument("course_id")
    categorise.add_argument("--category", required=True, choices=categories)
    categorise.add_argument("--reason", default="", help="why, for the audit trail")
    for state, verb in (("approved", "approve"), ("withdrawn", "withdraw")):
        change = command(course, verb, _course_state_command(state), f"{verb} a course")
        change.add_argument("course_id")
        change.add_argument(
            "--effective-at",
            type=_instant_arg,
            help="when the change takes effect (ISO 8601, with zone); default now",
        )
        change.add_argument("--reason", default="", help="why (required when backdating)")
    listing = command(course, "list", cmd_course_list, "list courses")
    listing.add_argument("--issuer")

    verify = command(commands, "verify", cmd_verify, "recompute every chain and checkpoint")
    verify.add_argument("--learner", help="only this learner's chain")
    verify.add_argument("--public-key", help="trusted checkpoint key (hex); default from settings")

    from learnerledger.ctl.bulk import add_submit_command
    from learnerledger.ctl.credential import add_credential_commands
    from learnerledger.ctl.proof import add_proof_commands
    from learnerledger.ctl.redeem import add_redemption_commands
    from learnerledger.ctl.transcripts import add_transcripts_command
    from learnerledger.ctl.witness import add_witness_commands

    add_proof_commands(commands)
    add_witness_commands(commands)
    add_submit_command(commands)
    add_transcripts_command(commands)
    add_redemption_commands(commands)

    learner = group("learner", "learners (the local development identity provider)")
    learner_token = command(
        learner, "token", cmd_learner_token, "sign a learner's ID token (local development only)"
    )
    learner_token.add_argument("learner_id", metavar="APAAR_ID")
    learner_token.add_argument("--lifetime-s", type=int, default=3600)
    add_credential_commands(commands)

    keys = group("keys", "signing keys (checkpoints, credentials)")
    generate = command(keys, "generate", cmd_keys_generate, "write a new Ed25519 signing key")
    generate.add_argument("path")

    replay = group("replay", "replay and re-drive")
    rejected = command(
        replay, "rejected", cmd_replay_rejected, "re-drive rejected requests to completions.v1"
    )
    rejected.add_argument("--reason", help="only this rejection reason, e.g. unknown_course")
    rejected.add_argument("--issuer", help="only this issuer's requests")
    rejected.add_argument("--since", type=_instant_arg, help="rejected at or after (ISO 8601)")
    rejected.add_argument("--until", type=_instant_arg, help="rejected before (ISO 8601)")
    rejected.add_argument("--limit", type=int, help="at most this many requests")
    rejected.add_argument(
        "--dry-run", action="store_true", help="show what would be re-driven and decided now"
    )

    projections = command(
        replay,
        "projections",
        cmd_replay_projections,
        "rebuild the read model beside the live one, then switch to it (resumable)",
    )
    projections.add_argument("--source", choices=("log", "kafka"), default="log")
    projections.add_argument(
        "--learner", action="append", help="only this learner (repeat); default: everyone"
    )
    projections.add_argument("--batch", type=int, default=2000, help="entries per transaction")

    lag = command(commands, "lag", cmd_lag, "consumer lag per group and partition; read model lag")
    lag.add_argument("--ledger-group", help="default: LEDGER_CONSUMER_GROUP or ledger")
    lag.add_argument("--projector-group", help="default: PROJECTOR_CONSUMER_GROUP or projector")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.handler is not cmd_serve:  # serve picks its service's principal itself
        _use_local_kafka_principal("admin")
    sys.exit(run(args))


def run(args: argparse.Namespace) -> int:
    from learnerledger.ctl.stack_errors import StackError
    from learnerledger.domain.catalog import InvalidCourse
    from learnerledger.postgres.catalog import AlreadyExists, NotFound
    from learnerledger.postgres.pool import DatabaseUnavailable

    try:
        result = args.handler(args)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        return int(result)
    except ValidationError as exc:
        for error in exc.errors():
            name = str(error["loc"][0]).upper() if error["loc"] else "settings"
            print(f"ledgerctl: setting {name}: {error['msg']}", file=sys.stderr)
        return 2
    except (
        StackError,
        DatabaseUnavailable,
        AlreadyExists,
        NotFound,
        InvalidCourse,
        UsageProblem,
        OSError,
        TimeoutError,
        RuntimeError,
    ) as exc:
        print(f"ledgerctl: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    main()
