"""`ledgerctl submit` reads partner files: the documented header, problems named by line and
column, nothing sent from a bad file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from learnerledger.ctl.commands.bulk import BadFile, Row, check_file, read_rows
from learnerledger.ctl.main import main
from learnerledger.v1 import common_pb2

HEADER = "completion_id,learner_id,course_id,completed_at,result,score,grade,evidence_url\n"


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_a_good_csv_becomes_completions_with_their_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "ok.csv",
        HEADER
        + "c-1,111111111111,ml-101,2026-03-01T12:00:00Z,pass,82.5,,https://x.example/1\n"
        + "\n"
        + "c-2,111111111111,ml-101,2026-03-02,FAIL,,B+,\n",
    )
    rows = list(read_rows(path))
    first, second = rows
    assert isinstance(first, Row)
    assert isinstance(second, Row)
    assert (first.line, second.line) == (2, 4)
    assert first.completion.score == 82.5
    assert first.completion.result == common_pb2.COMPLETION_RESULT_PASS
    assert first.completion.completed_at.ToDatetime(UTC) == datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert second.completion.grade == "B+"
    assert second.completion.result == common_pb2.COMPLETION_RESULT_FAIL
    assert second.completion.completed_at.ToDatetime(UTC) == datetime(2026, 3, 2, tzinfo=UTC)
    assert check_file(path) == 2


def test_json_lines_use_the_same_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "ok.jsonl",
        '{"completion_id": "j-1", "learner_id": "111111111111", "course_id": "ml-101",'
        ' "completed_at": "2026-03-01T17:30:00+05:30", "result": "pass", "score": 90}\n',
    )
    (row,) = list(read_rows(path))
    assert isinstance(row, Row)
    assert row.completion.score == 90.0
    assert row.completion.completed_at.ToDatetime(UTC) == datetime(2026, 3, 1, 12, tzinfo=UTC)


def test_a_wrong_header_names_the_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.csv", "completion_id,learner,course_id,completed_at,result\n")
    with pytest.raises(BadFile) as error:
        check_file(path)
    assert "line 1: unknown column(s) learner" in error.value.problems
    assert "line 1: missing column(s) learner_id" in error.value.problems


def test_bad_encoding_names_line_and_column(tmp_path: Path) -> None:
    good = b"c-1,111111111111,ml-101,2026-03-01T12:00:00Z,pass,1,,\n"
    bad = b"c-2,11111111111\xe9,ml-101,2026-03-01T12:00:00Z,pass,1,,\n"
    path = write(tmp_path, "latin1.csv", HEADER.encode() + good + bad)
    with pytest.raises(BadFile) as error:
        check_file(path)
    assert error.value.problems[0].startswith("line 3, column 16: not UTF-8")


def test_value_problems_name_line_and_column_and_are_all_listed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "values.csv",
        HEADER
        + "c-1,111111111111,ml-101,01/03/2026,pass,,,\n"
        + "c-2,111111111111,ml-101,2026-03-01T12:00:00,pass,,,\n"
        + "c-3,111111111111,ml-101,2026-03-01,passed,,,\n"
        + "c-4,111111111111,ml-101,2026-03-01,pass,high,,\n"
        + "c-5,111111111111,ml-101,2026-03-01,pass,80,A,\n"
        + "c-6,111111111111,ml-101\n",
    )
    with pytest.raises(BadFile) as error:
        check_file(path)
    problems = error.value.problems
    assert problems[0].startswith("line 2, column completed_at: '01/03/2026' is not a date-time")
    assert problems[1].startswith("line 3, column completed_at:")
    assert "has no time zone" in problems[1]
    assert problems[2] == "line 4, column result: 'passed' is not pass or fail"
    assert problems[3] == "line 5, column score: 'high' is not a number"
    assert problems[4] == "line 6, columns score and grade: give at most one"
    assert problems[5] == "line 7: 3 fields, the header has 8"


def test_the_command_refuses_a_bad_file_before_connecting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "bad.csv", HEADER + "c-1,111111111111,ml-101,yesterday,pass,,,\n")
    with pytest.raises(SystemExit) as exited:
        # Port 9 (discard): nothing listens; a bad file must fail before any connection.
        main(["submit", str(path), "--issuer-token", "t", "--gateway", "127.0.0.1:9"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "was not sent" in err
    assert "line 2, column completed_at: 'yesterday'" in err
    assert not (tmp_path / "bad.report.csv").exists()
