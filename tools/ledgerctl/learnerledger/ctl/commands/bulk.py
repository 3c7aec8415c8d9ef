"""``ledgerctl submit FILE``: upload a partner's completions from CSV or JSON Lines.

The file is read twice, a row at a time (constant memory whatever its size): first to check it
(header, encoding, every value that can be checked without the server; any problem stops the
run before anything is sent, naming line and column), then to stream it through the client
library. The report has one line per row: accepted, duplicate, or rejected with the gateway's
reason and field. Re-running the same file is safe: completion ids make every row the same
event again, so nothing is credited twice.
"""

from __future__ import annotations

import argparse
import codecs
import csv
import json
import math
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TextIO

from learnerledger.ctl.client_options import add_tls_options, client_tls, required_token
from learnerledger.v1 import common_pb2

REQUIRED_COLUMNS = ("completion_id", "learner_id", "course_id", "completed_at", "result")
OPTIONAL_COLUMNS = ("score", "grade", "evidence_url")
COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
RESULTS = {"pass": common_pb2.COMPLETION_RESULT_PASS, "fail": common_pb2.COMPLETION_RESULT_FAIL}
REPORT_COLUMNS = ("line", "completion_id", "outcome", "event_id", "reason", "field", "message")
#: At most this many problems are listed before the check gives up.
MAX_PROBLEMS = 20

EXIT_OK, EXIT_REJECTED_ROWS, EXIT_BAD_FILE = 0, 1, 2


class BadFile(ValueError):
    """The file cannot be uploaded as it is; ``problems`` name line and column."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        super().__init__(f"{path}: " + "; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    completion: common_pb2.Completion


def _parse_instant(text: str) -> datetime:
    """RFC 3339 / ISO 8601 with an offset ("2026-03-01T12:00:00Z"), or a date (midnight UTC)."""
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
    instant = datetime.fromisoformat(text)
    if instant.tzinfo is None:
        raise ValueError("has no time zone (add Z or +05:30)")
    return instant.astimezone(UTC)


def _completion(values: dict[str, Any], line: int) -> common_pb2.Completion:
    """One row as a Completion; ValueError naming the column when a value cannot be read."""

    def text(column: str) -> str:
        value = values.get(column)
        if value is None:
            return ""
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ValueError(f"line {line}, column {column}: not a string")
        return str(value).strip()

    completion = common_pb2.Completion(
        completion_id=text("completion_id"),
        learner_id=text("learner_id"),
        course_id=text("course_id"),
        evidence_url=text("evidence_url"),
    )
    if not completion.completion_id:
        raise ValueError(f"line {line}, column completion_id: empty")
    completed_at = text("completed_at")
    try:
        completion.completed_at.FromDatetime(_parse_instant(completed_at))
    except ValueError as error:
        raise ValueError(
            f"line {line}, column completed_at: {completed_at!r} is not a date-time like"
            f" 2026-03-01T12:00:00Z ({error})"
        ) from None
    result = text("result").lower()
    if result not in RESULTS:
        raise ValueError(f"line {line}, column result: {result!r} is not pass or fail")
    completion.result = RESULTS[result]
    score, grade = text("score"), text("grade")
    if score and grade:
        raise ValueError(f"line {line}, columns score and grade: give at most one")
    if score:
        try:
            completion.score = float(score)
        except ValueError:
            raise ValueError(f"line {line}, column score: {score!r} is not a number") from None
        if not math.isfinite(completion.score):
            raise ValueError(f"line {line}, column score: {score!r} is not a number")
    elif grade:
        completion.grade = grade
    return completion


def _check_columns(path: Path, columns: list[str], line: int) -> None:
    unknown = [c for c in columns if c not in COLUMNS]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    problems = []
    if unknown:
        problems.append(f"line {line}: unknown column(s) {', '.join(unknown)}")
    if missing:
        problems.append(f"line {line}: missing column(s) {', '.join(missing)}")
    if problems:
        expected = ",".join(COLUMNS)
        raise BadFile(
            path, [*problems, f"the header is: {expected} (score..evidence_url optional)"]
        )


def _csv_rows(path: Path, handle: TextIO) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.reader(handle)
    header = next(reader, None)
    if header is None:
        raise BadFile(path, ["line 1: empty file (no header)"])
    columns = [c.strip().lstrip("\ufeff") for c in header]
    _check_columns(path, columns, 1)
    for fields in reader:
        line = reader.line_num
        if not fields or fields == [""]:
            continue
        if len(fields) != len(columns):
            raise ValueError(f"line {line}: {len(fields)} fields, the header has {len(columns)}")
        yield line, dict(zip(columns, fields, strict=True))


def _jsonl_rows(path: Path, handle: TextIO) -> Iterator[tuple[int, dict[str, Any]]]:
    for line, text in enumerate(handle, start=1):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"line {line}, column {error.colno}: not JSON ({error.msg})") from None
        if not isinstance(value, dict):
            raise ValueError(f"line {line}: not a JSON object")
        _check_columns(path, list(value), line)
        yield line, value


def read_rows(path: Path) -> Iterator[Row | str]:
    """Every row of the file as a Row, or a problem (str) naming its line and column.

    Raises BadFile for a header or encoding problem (nothing after it can be read)."""
    rows = _jsonl_rows if path.suffix.lower() in (".jsonl", ".ndjson") else _csv_rows
    # Strict UTF-8 (a BOM is accepted); decoding a line at a time keeps memory constant.
    with path.open(encoding="utf-8-sig", errors="strict", newline="") as handle:
        items = rows(path, handle)
        while True:
            try:
                line, values = next(items)
            except StopIteration:
                return
            except UnicodeDecodeError as error:
                raise BadFile(path, [_encoding_problem(path, error)]) from None
            except ValueError as error:
                if isinstance(error, BadFile):
                    raise
                yield str(error)
                continue
            try:
                yield Row(line, _completion(values, line))
            except ValueError as error:
                yield str(error)


def _encoding_problem(path: Path, error: UnicodeDecodeError) -> str:
    """Name the line and column of the first byte that is not UTF-8."""
    line, column = 1, 1
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as handle:
        for raw in handle:
            try:
                decoder.decode(raw)
            except UnicodeDecodeError as bad:
                column = bad.start + 1
                break
            line += 1
    return f"line {line}, column {column}: not UTF-8 ({error.reason}); save the file as UTF-8"


def check_file(path: Path) -> int:
    """Read the whole file once; return the row count or raise BadFile with the problems."""
    problems: list[str] = []
    count = 0
    for item in read_rows(path):
        if isinstance(item, str):
            problems.append(item)
        else:
            count += 1
        if len(problems) >= MAX_PROBLEMS:
            problems.append("(more problems not listed)")
            break
    if problems:
        raise BadFile(path, problems)
    return count


class Progress:
    """Progress lines on stderr ("done/total rows, rate, ETA"), at most one a second; plain
    lines, so it reads the same in a terminal, a log file or CI."""

    def __init__(
        self,
        total: int,
        stream: TextIO,
        every_s: float = 1.0,
        *,
        label: str = "submit",
        unit: str = "rows",
    ) -> None:
        self.total, self.stream, self.every_s = total, stream, every_s
        self.label, self.unit = label, unit
        self.started = self.last = time.monotonic()
        self.done = 0

    def advance(self) -> None:
        """One more row done."""
        self.done += 1
        self.update(self.done)

    def finish(self) -> None:
        self.update(self.done, final=True)

    def update(self, done: int, *, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.last < self.every_s:
            return
        self.last = now
        elapsed = max(now - self.started, 1e-9)
        rate = done / elapsed
        eta = (self.total - done) / rate if rate > 0 else float("inf")
        share = 100.0 * done / self.total if self.total else 100.0
        eta_text = f"{eta:.0f}s" if math.isfinite(eta) else "?"
        print(
            f"{self.label}: {done}/{self.total} {self.unit} ({share:.0f}%) {rate:.0f}"
            f" {self.unit}/s ETA {eta_text}",
            file=self.stream,
            flush=True,
        )


@dataclass(slots=True)
class Tally:
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0


async def submit_file(
    path: Path, config: Any, report: TextIO, progress: Progress | None = None
) -> Tally:
    """Stream the (checked) file through the client library and write the report."""
    from learnerledger_client import Acceptance
    from learnerledger_client.aio import IssuerClient

    lines: deque[int] = deque()  # the line of every row sent and not yet answered (<= window)

    def completions() -> Iterator[common_pb2.Completion]:
        for item in read_rows(path):
            if isinstance(item, str):  # the file changed since it was checked
                raise BadFile(path, [item])
            lines.append(item.line)
            yield item.completion

    writer = csv.writer(report, lineterminator="\n")
    writer.writerow(REPORT_COLUMNS)
    tally = Tally()
    async with IssuerClient(config) as client:
        async for outcome in client.submit_stream(completions()):
            line = lines.popleft()
            field = outcome.field_problems[0].field if outcome.field_problems else ""
            writer.writerow(
                (
                    line,
                    outcome.completion_id,
                    outcome.acceptance.value,
                    outcome.event_id,
                    outcome.reason,
                    field,
                    outcome.message,
                )
            )
            if outcome.acceptance is Acceptance.ACCEPTED:
                tally.accepted += 1
            elif outcome.acceptance is Acceptance.DUPLICATE:
                tally.duplicate += 1
            else:
                tally.rejected += 1
            if progress is not None:
                progress.advance()
    if progress is not None:
        progress.finish()
    return tally


async def cmd_submit(args: argparse.Namespace) -> int:
    try:
        from learnerledger_client import CallFailed, ClientConfig
    except ImportError:
        print("ledgerctl submit: needs learnerledger-client (pip install clients/python)",
              file=sys.stderr)  # fmt: skip
        return EXIT_BAD_FILE

    token = required_token("submit", args.issuer_token, "--issuer-token", "LEDGERCTL_ISSUER_TOKEN")
    if token is None:
        return EXIT_BAD_FILE
    path = Path(args.file)
    try:
        total = check_file(path)
    except BadFile as error:
        print(f"ledgerctl submit: {path} was not sent:", file=sys.stderr)
        for problem in error.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_BAD_FILE
    config = ClientConfig(
        target=args.gateway, token=token, tls=client_tls(args), window=args.window
    )
    report_path = Path(args.report) if args.report else path.with_name(path.stem + ".report.csv")
    with report_path.open("w", encoding="utf-8", newline="") as report:
        try:
            tally = await submit_file(path, config, report, Progress(total, sys.stderr))
        except BadFile as error:
            print(f"ledgerctl submit: stopped: {error}", file=sys.stderr)
            return EXIT_BAD_FILE
        except CallFailed as error:
            print(f"ledgerctl submit: stopped: {error}; rows without a report line were not"
                  " acknowledged: re-run the same file (safe)", file=sys.stderr)  # fmt: skip
            return EXIT_BAD_FILE
    print(
        f"ledgerctl submit: {total} rows: {tally.accepted} accepted, {tally.duplicate} duplicate,"
        f" {tally.rejected} rejected; report: {report_path}",
        file=sys.stderr,
    )
    return EXIT_REJECTED_ROWS if tally.rejected else EXIT_OK


def add_submit_command(commands: Any) -> None:
    """Register ``ledgerctl submit`` on the top-level subparsers."""
    sub = commands.add_parser(
        "submit", help="upload completions from CSV or JSON Lines, with a per-row report"
    )
    sub.set_defaults(handler=cmd_submit)
    sub.add_argument("file", help="FILE.csv or FILE.jsonl; header: " + ",".join(COLUMNS))
    sub.add_argument("--issuer-token", help="default: LEDGERCTL_ISSUER_TOKEN")
    sub.add_argument("--gateway", default="127.0.0.1:50051", help="issuer gateway host:port")
    sub.add_argument("--report", help="report CSV (default: FILE.report.csv beside FILE)")
    sub.add_argument("--window", type=int, default=256, help="completions awaiting an answer")
    add_tls_options(sub, "the gateway")
