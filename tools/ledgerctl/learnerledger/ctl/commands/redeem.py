"""A registrar's commands over ``RedemptionService`` (the ledger process, 127.0.0.1:50053):
``ledgerctl programme create|list`` and ``ledgerctl redeem``.

``redeem`` asks the ledger to redeem a learner's credits toward one of the university's
programmes, waits until the ledger decided it, and prints the outcome per credential like a
transcript. The redemption id is the idempotency key: run the same command again with the same
``--redemption-id`` and the first outcome is printed, never a second debit. Exit codes: 0
something was redeemed; 1 decided and nothing redeemed (refused or rejected); 2 the request or
the call failed (the message says why; bad fields are named); 3 not decided within ``--wait``
(run it again with the same id).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TextIO

from learnerledger.ctl.client_options import add_tls_options

EXIT_REDEEMED, EXIT_NOTHING_REDEEMED, EXIT_FAILED, EXIT_PENDING = 0, 1, 2, 3

LEVELS = ("4.5", "5", "5.5", "6", "6.5", "7", "8")


def _channel(args: argparse.Namespace) -> Any:
    import grpc

    if not (args.ca or args.cert or args.key):
        return grpc.aio.insecure_channel(args.ledger)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=Path(args.ca).read_bytes() if args.ca else None,
        private_key=Path(args.key).read_bytes() if args.key else None,
        certificate_chain=Path(args.cert).read_bytes() if args.cert else None,
    )
    return grpc.aio.secure_channel(args.ledger, credentials)


def _metadata(args: argparse.Namespace) -> tuple[tuple[str, str]]:
    token = args.university_token or os.environ.get("LEDGERCTL_UNIVERSITY_TOKEN", "")
    if not token:
        raise _Failed("--university-token or LEDGERCTL_UNIVERSITY_TOKEN is required")
    return (("authorization", f"Bearer {token}"),)


class _Failed(Exception):
    """A problem the user can fix; printed without a traceback (exit 2)."""


def describe_rpc_error(error: Any) -> str:
    """``CODE: message`` and, for a bad request, each field and what is wrong with it."""
    from google.rpc import error_details_pb2

    from learnerledger.rpc.errors import decode_details

    lines = [f"{error.code().name}: {error.details()}"]
    for detail in decode_details(error.trailing_metadata()):
        if isinstance(detail, error_details_pb2.BadRequest):
            lines += [f"  {v.field}: {v.description}" for v in detail.field_violations]
        elif isinstance(detail, error_details_pb2.ErrorInfo):
            lines.append(f"  reason: {detail.reason}")
    return "\n".join(lines)


def _name(enum_value_name: str, prefix: str) -> str:
    return enum_value_name.removeprefix(prefix)


def format_redemption(redemption: Any, out: TextIO) -> None:
    """Print a redemption like a transcript: a header line, then one line per credential."""
    from learnerledger.v1 import common_pb2, redemption_pb2

    state = _name(redemption_pb2.RedemptionState.Name(redemption.state), "REDEMPTION_STATE_")
    print(
        f"redemption {redemption.redemption_id}: learner {redemption.learner_id}, programme "
        f"{redemption.programme_id} ({redemption.university_id}): {state}, "
        f"{redemption.redeemed_credits:.1f} credits redeemed",
        file=out,
    )
    if redemption.rejection_reason:
        print(f"  rejected by the ledger: {redemption.rejection_reason}", file=out)
    if redemption.lines:
        print(f"  {'seq':>5}  {'course':<20} {'category':<18} {'credits':>7}  outcome", file=out)
    revoked = set(redemption.revoked_after_redemption)
    for line in redemption.lines:
        category = _name(common_pb2.CourseCategory.Name(line.category), "COURSE_CATEGORY_")
        outcome = _name(common_pb2.RedemptionOutcome.Name(line.outcome), "REDEMPTION_OUTCOME_")
        note = "  (revoked after redemption)" if line.sequence in revoked else ""
        print(
            f"  {line.sequence:>5}  {line.course_id or '-':<20} {category.lower():<18} "
            f"{line.credits:>7.1f}  {outcome}{note}",
            file=out,
        )


async def redeem(args: argparse.Namespace, out: TextIO) -> int:
    import grpc

    from learnerledger.v1 import redemption_pb2, redemption_pb2_grpc

    metadata = _metadata(args)
    redemption_id = args.redemption_id or f"ledgerctl-{uuid.uuid4()}"
    if not args.redemption_id:
        print(f"redemption id {redemption_id} (give it as --redemption-id to retry)", file=out)
    ask = redemption_pb2.RedeemCreditsRequest(
        redemption_id=redemption_id,
        learner_id=args.learner,
        programme_id=args.programme,
        credential_sequences=args.sequence or [],
        all_eligible=args.all,
        allow_partial=not args.all_or_nothing,
    )
    async with _channel(args) as channel:
        stub = redemption_pb2_grpc.RedemptionServiceStub(channel)
        try:
            reply = await stub.RedeemCredits(ask, metadata=metadata, timeout=30)
            redemption = reply.redemption
            deadline = time.monotonic() + args.wait
            while (
                redemption.state == redemption_pb2.REDEMPTION_STATE_PENDING
                and time.monotonic() < deadline
            ):
                await asyncio.sleep(0.2)  # polling the ledger's answer, not synchronizing
                got = await stub.GetRedemption(
                    redemption_pb2.GetRedemptionRequest(redemption_id=redemption_id),
                    metadata=metadata,
                    timeout=30,
                )
                redemption = got.redemption
        except grpc.aio.AioRpcError as error:
            raise _Failed(describe_rpc_error(error)) from error
    format_redemption(redemption, out)
    if redemption.state == redemption_pb2.REDEMPTION_STATE_PENDING:
        print(f"not decided within {args.wait:.0f} s; run again with the same id", file=out)
        return EXIT_PENDING
    if redemption.state == redemption_pb2.REDEMPTION_STATE_REDEEMED:
        return EXIT_REDEEMED
    return EXIT_NOTHING_REDEEMED


async def programme_create(args: argparse.Namespace, out: TextIO) -> int:
    import grpc

    from learnerledger.v1 import redemption_pb2, redemption_pb2_grpc
    from learnerledger.wire.enums import LEVEL_TO_PROTO

    try:
        credits = float(Decimal(args.credits))
    except InvalidOperation as exc:
        raise _Failed(f"--credits {args.credits!r} is not a number") from exc
    programme = redemption_pb2.Programme(
        programme_id=args.programme_id,
        university_id=args.university,
        title=args.title,
        level=LEVEL_TO_PROTO[args.level],
        total_credits=credits,
        validity_years=args.validity_years or 0,
    )
    async with _channel(args) as channel:
        stub = redemption_pb2_grpc.RedemptionServiceStub(channel)
        try:
            reply = await stub.CreateProgramme(
                redemption_pb2.CreateProgrammeRequest(programme=programme),
                metadata=_metadata(args),
                timeout=30,
            )
        except grpc.aio.AioRpcError as error:
            raise _Failed(describe_rpc_error(error)) from error
    p = reply.programme
    print(
        f"programme {p.programme_id} of {p.university_id} registered: {p.title}, level "
        f"{args.level}, {p.total_credits:.1f} credits",
        file=out,
    )
    return 0


async def programme_list(args: argparse.Namespace, out: TextIO) -> int:
    import grpc

    from learnerledger.v1 import redemption_pb2, redemption_pb2_grpc
    from learnerledger.wire.enums import PROTO_TO_LEVEL

    print(f"{'programme':<24} {'university':<16} {'level':>5} {'credits':>7}  title", file=out)
    async with _channel(args) as channel:
        stub = redemption_pb2_grpc.RedemptionServiceStub(channel)
        token = ""
        while True:
            try:
                page = await stub.ListProgrammes(
                    redemption_pb2.ListProgrammesRequest(
                        university_id=args.university or "", page_size=200, page_token=token
                    ),
                    metadata=_metadata(args),
                    timeout=30,
                )
            except grpc.aio.AioRpcError as error:
                raise _Failed(describe_rpc_error(error)) from error
            for p in page.programmes:
                level = PROTO_TO_LEVEL.get(p.level, "?")
                print(
                    f"{p.programme_id:<24} {p.university_id:<16} {level:>5} "
                    f"{p.total_credits:>7.1f}  {p.title}",
                    file=out,
                )
            token = page.next_page_token
            if not token:
                return 0


def _runner(action: Any) -> Any:
    async def run(args: argparse.Namespace) -> int:
        try:
            return int(await action(args, sys.stdout))
        except _Failed as failed:
            print(f"ledgerctl {args.command}: {failed}", file=sys.stderr)
            return EXIT_FAILED

    return run


def _connection_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--university-token", help="default: LEDGERCTL_UNIVERSITY_TOKEN")
    sub.add_argument(
        "--ledger", default="127.0.0.1:50053", help="the ledger's API (RedemptionService) host:port"
    )
    add_tls_options(sub)


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a credential sequence (1 or more)")
    return number


def add_redemption_commands(commands: Any) -> None:
    """Register ``ledgerctl programme create|list`` and ``ledgerctl redeem``."""
    programme = commands.add_parser("programme", help="a university's programmes (registrars)")
    actions = programme.add_subparsers(dest="programme_command", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="register a programme of your university")
    create.set_defaults(handler=_runner(programme_create))
    create.add_argument("programme_id")
    create.add_argument("--university", required=True, help="your university's id")
    create.add_argument("--title", required=True)
    create.add_argument("--level", required=True, choices=LEVELS, help="NCrF level")
    create.add_argument("--credits", required=True, help="total credits (1 to 320)")
    create.add_argument(
        "--validity-years", type=int, help="your shelf life for credits if under 7 years"
    )
    _connection_options(create)
    listing = actions.add_parser("list", help="your programmes (an admin token: every one)")
    listing.set_defaults(handler=_runner(programme_list))
    listing.add_argument("--university", help="only this university's (admins)")
    _connection_options(listing)

    redeem_cmd = commands.add_parser(
        "redeem", help="redeem a learner's credits toward your programme; prints each outcome"
    )
    redeem_cmd.set_defaults(handler=_runner(redeem))
    redeem_cmd.add_argument("--learner", required=True, help="the learner's APAAR id")
    redeem_cmd.add_argument("--programme", required=True, help="one of your programmes")
    which = redeem_cmd.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--sequence",
        type=_positive,
        nargs="+",
        action="extend",
        metavar="N",
        help="the learner's credit entries by sequence (as the transcript shows them)",
    )
    which.add_argument("--all", action="store_true", help="every eligible credential")
    redeem_cmd.add_argument(
        "--all-or-nothing",
        action="store_true",
        help="redeem nothing if any credential is refused (default: redeem what can be)",
    )
    redeem_cmd.add_argument("--redemption-id", help="your id for it (default: a new one)")
    redeem_cmd.add_argument(
        "--wait", type=float, default=30.0, help="seconds to wait for the decision (default 30)"
    )
    _connection_options(redeem_cmd)
