"""``ledgerctl transcripts --learners FILE``: a registrar's batch read of transcript totals.

The learner file is UTF-8 text: one learner id per line, or a CSV whose header has a
``learner_id`` column (``--column`` names another). Blank lines are skipped and a learner
named twice is read once. The ids are read through the client library's
``batch_get_transcripts`` (BatchGetTranscripts calls of at most the server's maximum), and the
output CSV has one row per learner, in file order: ``status`` is ``ok``, ``permission_denied``
(no consent stands), ``not_found`` (no entries in the ledger), ``invalid`` (not an APAAR id) or
``error``; the totals are the transcript's active (available to redeem), expired, revoked and
redeemed credits now (redeemed toward any university's programme: debited for good).
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from learnerledger.ctl.client_options import add_tls_options, client_tls, required_token
from learnerledger.ctl.commands.bulk import Progress

OUTPUT_COLUMNS = (
    "learner_id",
    "status",
    "active_credits",
    "expired_credits",
    "revoked_credits",
    "redeemed_credits",
    "reason",
    "message",
)
EXIT_OK, EXIT_SOME_REFUSED, EXIT_FAILED = 0, 1, 2


class BadLearnerFile(ValueError):
    """The learner file cannot be read; the message names the line."""


@dataclass(frozen=True, slots=True)
class LearnerList:
    learner_ids: list[str]
    duplicates: int


def _rows(handle: TextIO) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(handle)
    for fields in reader:
        stripped = [field.strip() for field in fields]
        if not any(stripped):
            continue
        yield reader.line_num, stripped


def read_learners(path: Path, column: str = "learner_id") -> LearnerList:
    """The distinct learner ids of the file, in file order (first occurrence)."""
    ids: list[str] = []
    seen: set[str] = set()
    duplicates = 0
    try:
        with path.open(encoding="utf-8-sig", errors="strict", newline="") as handle:
            rows = _rows(handle)
            first = next(rows, None)
            if first is None:
                return LearnerList([], 0)
            line, header = first
            index = 0
            if column in header:
                index = header.index(column)
                width = len(header)
            elif len(header) == 1:
                width = 1
                rows = _chain(first, rows)  # no header: the first line is a learner id
            else:
                raise BadLearnerFile(
                    f"{path}, line {line}: {len(header)} columns and none is named {column!r}"
                    f" (the header needs a {column} column, or give one learner id per line)"
                )
            for line, fields in rows:
                if len(fields) != width:
                    raise BadLearnerFile(
                        f"{path}, line {line}: {len(fields)} fields, expected {width}"
                    )
                learner_id = fields[index]
                if not learner_id:
                    continue
                if learner_id in seen:
                    duplicates += 1
                    continue
                seen.add(learner_id)
                ids.append(learner_id)
    except UnicodeDecodeError as error:
        raise BadLearnerFile(f"{path}: not UTF-8 ({error.reason}); save it as UTF-8") from None
    except csv.Error as error:
        raise BadLearnerFile(f"{path}: not readable as CSV ({error})") from None
    return LearnerList(ids, duplicates)


def _chain(
    first: tuple[int, list[str]], rest: Iterator[tuple[int, list[str]]]
) -> Iterator[tuple[int, list[str]]]:
    yield first
    yield from rest


@dataclass(slots=True)
class Tally:
    by_status: dict[str, int]

    def add(self, status: str) -> None:
        self.by_status[status] = self.by_status.get(status, 0) + 1

    @property
    def refused(self) -> int:
        return sum(n for status, n in self.by_status.items() if status != "ok")


def _credits(value: float) -> str:
    return f"{value:.1f}"


async def write_transcripts(
    learner_ids: list[str], config: Any, out: TextIO, progress: Progress | None = None
) -> Tally:
    """Read every learner through the client library and write one CSV row per learner."""
    from learnerledger_client.aio import RegistrarClient

    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(OUTPUT_COLUMNS)
    tally = Tally({})
    # A NUL cannot travel in a request (the server refuses the whole call): such an id is
    # answered here, as the server would answer any other invalid id.
    sendable = [learner_id for learner_id in learner_ids if "\x00" not in learner_id]
    async with RegistrarClient(config) as client:
        results = aiter(client.batch_get_transcripts_stream(sendable))
        for learner_id in learner_ids:
            if "\x00" in learner_id:
                row = (learner_id.replace("\x00", "\\0"), "invalid", "", "", "", "",
                       "INVALID_ARGUMENT", "contains a NUL character")  # fmt: skip
            else:
                result = await anext(results)
                transcript = result.transcript
                if transcript is not None:
                    row = (
                        result.learner_id,
                        result.status.value,
                        _credits(transcript.active_credits),
                        _credits(transcript.expired_credits),
                        _credits(transcript.revoked_credits),
                        _credits(transcript.redeemed_credits),
                        "",
                        "",
                    )
                else:
                    row = (result.learner_id, result.status.value, "", "", "", "",
                           result.reason, result.message)  # fmt: skip
            writer.writerow(row)
            tally.add(row[1])
            if progress is not None:
                progress.advance()
    if progress is not None:
        progress.finish()
    return tally


async def cmd_transcripts(args: argparse.Namespace) -> int:
    try:
        from learnerledger_client import ClientConfig, LedgerClientError
    except ImportError:
        print("ledgerctl transcripts: needs learnerledger-client (pip install clients/python)",
              file=sys.stderr)  # fmt: skip
        return EXIT_FAILED
    token = required_token(
        "transcripts", args.university_token, "--university-token", "LEDGERCTL_UNIVERSITY_TOKEN"
    )
    if token is None:
        return EXIT_FAILED
    path = Path(args.learners)
    try:
        learners = read_learners(path, args.column)
    except (BadLearnerFile, OSError) as error:
        print(f"ledgerctl transcripts: {error}", file=sys.stderr)
        return EXIT_FAILED
    config = ClientConfig(target=args.query, token=token, tls=client_tls(args))
    out_path = Path(args.out) if args.out else path.with_name(path.stem + ".transcripts.csv")
    total = len(learners.learner_ids)
    progress = Progress(total, sys.stderr, label="transcripts", unit="learners")
    with out_path.open("w", encoding="utf-8", newline="") as out:
        try:
            tally = await write_transcripts(learners.learner_ids, config, out, progress)
        except LedgerClientError as error:  # CallFailed, RetriesExhausted, ProtocolViolation
            print(f"ledgerctl transcripts: stopped: {error}", file=sys.stderr)
            return EXIT_FAILED
    order = ("ok", "permission_denied", "not_found", "invalid")
    counts = ", ".join(
        f"{n} {status}"
        for status, n in sorted(
            tally.by_status.items(), key=lambda i: order.index(i[0]) if i[0] in order else 9
        )
    )
    skipped = f" ({learners.duplicates} repeated id(s) read once)" if learners.duplicates else ""
    print(
        f"ledgerctl transcripts: {total} learners{skipped}: {counts or 'none'}; output: {out_path}",
        file=sys.stderr,
    )
    return EXIT_SOME_REFUSED if tally.refused else EXIT_OK


def add_transcripts_command(commands: Any) -> None:
    """Register ``ledgerctl transcripts`` on the top-level subparsers."""
    sub = commands.add_parser(
        "transcripts", help="a registrar's batch read: transcript totals per learner, as CSV"
    )
    sub.set_defaults(handler=cmd_transcripts)
    sub.add_argument(
        "--learners",
        required=True,
        metavar="FILE",
        help="learner ids: one per line, or a CSV with a learner_id column",
    )
    sub.add_argument("--column", default="learner_id", help="the CSV column of the learner ids")
    sub.add_argument("--university-token", help="default: LEDGERCTL_UNIVERSITY_TOKEN")
    sub.add_argument("--query", default="127.0.0.1:50052", help="query service host:port")
    sub.add_argument("--out", help="output CSV (default: FILE.transcripts.csv beside FILE)")
    add_tls_options(sub)
