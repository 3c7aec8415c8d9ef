"""``ledgerctl transcripts``: reading a registrar's learner file (one id per line, or a CSV
column), before anything is sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from learnerledger.ctl.commands.transcripts import BadLearnerFile, read_learners


def write(tmp_path: Path, text: str | bytes, name: str = "learners.csv") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_one_id_per_line_blank_lines_skipped_repeats_read_once(tmp_path: Path) -> None:
    path = write(tmp_path, "900000000001\n\n 900000000002 \n900000000001\nnot-an-id\n")
    learners = read_learners(path)
    # Invalid ids are kept: the server answers them "invalid", row by row.
    assert learners.learner_ids == ["900000000001", "900000000002", "not-an-id"]
    assert learners.duplicates == 1


def test_a_csv_column_by_its_header_name(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "\ufeffname,learner_id,programme\nAsha,900000000001,BSc\nRavi,,BSc\nMira,900000000003,MA\n",
    )
    assert read_learners(path).learner_ids == ["900000000001", "900000000003"]
    other = write(tmp_path, "apaar\n900000000007\n", "other.csv")
    assert read_learners(other, column="apaar").learner_ids == ["900000000007"]


def test_problems_name_the_line(tmp_path: Path) -> None:
    no_column = write(tmp_path, "name,apaar\nAsha,900000000001\n")
    with pytest.raises(BadLearnerFile, match="line 1: 2 columns and none is named 'learner_id'"):
        read_learners(no_column)
    ragged = write(tmp_path, "name,learner_id\nAsha,900000000001\nRavi\n", "ragged.csv")
    with pytest.raises(BadLearnerFile, match="line 3: 1 fields, expected 2"):
        read_learners(ragged)
    latin1 = write(tmp_path, "learner_id\n9000000000\xe9\n".encode("latin-1"), "latin1.csv")
    with pytest.raises(BadLearnerFile, match="not UTF-8"):
        read_learners(latin1)


def test_an_empty_file_has_no_learners(tmp_path: Path) -> None:
    assert read_learners(write(tmp_path, "\n\n")).learner_ids == []
