"""The protobuf contract: generated code is current, the sources pass `buf lint`, and the
messages the topics carry survive the wire."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from google.protobuf import timestamp_pb2

from learnerledger.v1 import (
    common_pb2,
    events_pb2,
    issuer_gateway_pb2,
    learner_consent_pb2,
    ledger_admin_pb2,
    redemption_pb2,
    transcript_query_pb2,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
GEN_PROTO = REPO_ROOT / "scripts" / "gen_proto.py"
PACKAGE = Path("learnerledger") / "v1"


def _run(
    *args: str | Path, cwd: Path = REPO_ROOT, env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=120,
    )


def _buf() -> str:
    candidate = Path(sys.executable).parent / "buf"
    found = str(candidate) if candidate.exists() else shutil.which("buf")
    assert found, "buf not found: install the dev extras (buf-bin)"
    return found


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """A copy of buf.yaml, proto/ and the generated package, to break without harm."""
    shutil.copy(REPO_ROOT / "buf.yaml", tmp_path / "buf.yaml")
    shutil.copytree(REPO_ROOT / "proto", tmp_path / "proto")
    shutil.copytree(
        REPO_ROOT / "common" / PACKAGE,
        tmp_path / "common" / PACKAGE,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return tmp_path


def _check(copy: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return _run(
        sys.executable,
        GEN_PROTO,
        "--check",
        "--proto-dir",
        copy / "proto",
        "--out-dir",
        copy / "common",
        *extra,
        env_extra={"BUF_CACHE_DIR": str(copy / ".buf-cache")},
    )


def test_committed_generated_code_is_current() -> None:
    result = _run(sys.executable, GEN_PROTO, "--check")
    assert result.returncode == 0, result.stderr


def test_check_passes_on_an_unchanged_copy(repo_copy: Path) -> None:
    result = _check(repo_copy)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("old", "new", "stale"),
    [
        pytest.param(
            "// Why the issuer revokes it, in the issuer's words",
            "// Why the issuer revokes it, as free text",
            ["events_pb2.pyi"],
            id="comment-changed",
        ),
        pytest.param(
            "  string reason = 2;\n}",
            "  string reason = 2;\n  // Added without regenerating.\n  string note = 3;\n}",
            ["events_pb2.py", "events_pb2.pyi"],
            id="field-added",
        ),
    ],
)
def test_check_fails_when_a_proto_changes_without_regeneration(
    repo_copy: Path, old: str, new: str, stale: list[str]
) -> None:
    events = repo_copy / "proto" / PACKAGE / "events.proto"
    text = events.read_text()
    assert old in text
    events.write_text(text.replace(old, new, 1))

    result = _check(repo_copy)

    assert result.returncode == 1
    for name in stale:
        assert f"learnerledger/v1/{name} (out of date)" in result.stderr
    assert "scripts/gen_proto.py" in result.stderr  # the hint to regenerate


def test_check_fails_on_missing_and_orphaned_files(repo_copy: Path) -> None:
    generated = repo_copy / "common" / PACKAGE
    (generated / "common_pb2.py").unlink()
    (generated / "retired_pb2.py").write_text("# left behind by a deleted .proto\n")

    result = _check(repo_copy)

    assert result.returncode == 1
    assert "learnerledger/v1/common_pb2.py (missing)" in result.stderr
    assert "learnerledger/v1/retired_pb2.py (no longer generated" in result.stderr


def test_generation_is_reproducible(repo_copy: Path) -> None:
    generated = repo_copy / "common" / PACKAGE
    shutil.rmtree(generated)
    generated.mkdir(parents=True)

    result = _run(
        sys.executable,
        GEN_PROTO,
        "--proto-dir",
        repo_copy / "proto",
        "--out-dir",
        repo_copy / "common",
    )

    assert result.returncode == 0, result.stderr
    assert (generated / "__init__.py").exists()
    assert not (generated / "events_pb2_grpc.py").exists()  # no services, no grpc module
    for path in sorted((REPO_ROOT / "common" / PACKAGE).glob("*_pb2*.py*")):
        assert (generated / path.name).read_bytes() == path.read_bytes(), path.name


def test_buf_lint_passes(tmp_path: Path) -> None:
    result = _run(_buf(), "lint", env_extra={"BUF_CACHE_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stdout + result.stderr


def test_lint_option_fails_on_a_lint_error(repo_copy: Path) -> None:
    admin = repo_copy / "proto" / PACKAGE / "ledger_admin.proto"
    admin.write_text(
        admin.read_text().replace(
            "  REPLAY_SOURCE_KAFKA = 2;", "  // Not prefixed.\n  KAFKA_TOPIC = 2;"
        )
    )

    result = _check(repo_copy, "--lint")

    assert result.returncode == 1
    assert "buf lint failed" in result.stderr
    assert 'Enum value name "KAFKA_TOPIC" should be prefixed' in result.stderr


def _ts(seconds: int, nanos: int = 0) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def test_completion_event_round_trips() -> None:
    event = events_pb2.CompletionEvent(
        envelope=events_pb2.EventEnvelope(
            event_id="0b5d6f1e-3f5c-5a2e-9a43-5d1f0e6c7b21",
            schema_version=1,
            occurred_at=_ts(1_767_225_600, 123_456_000),
            issuer_id="nptel",
            learner_id="123456789012",
        ),
        completion_submitted=events_pb2.CompletionSubmitted(
            completion=common_pb2.Completion(
                completion_id="c-1",
                learner_id="123456789012",
                course_id="NPTEL-CS101",
                completed_at=_ts(1_767_000_000),
                result=common_pb2.COMPLETION_RESULT_PASS,
                score=87.5,
                evidence_url="https://example.org/cert/c-1",
            )
        ),
    )

    decoded = events_pb2.CompletionEvent.FromString(event.SerializeToString())

    assert decoded == event
    assert decoded.WhichOneof("event") == "completion_submitted"
    completion = decoded.completion_submitted.completion
    assert completion.WhichOneof("assessment") == "score"
    assert completion.score == 87.5
    assert decoded.envelope.occurred_at.nanos == 123_456_000


def test_ledger_entry_round_trips() -> None:
    canonical = b'{"kind":"credit_awarded","learner_id":"123456789012","sequence":2}'
    entry = events_pb2.LedgerEntry(
        position=42,
        learner_id="123456789012",
        sequence=2,
        kind=events_pb2.ENTRY_KIND_CREDIT_AWARDED,
        rules_version=1,
        source_event_id="0b5d6f1e-3f5c-5a2e-9a43-5d1f0e6c7b21",
        source_partition=7,
        source_offset=1_234,
        prev_hash=bytes(range(32)),
        entry_hash=bytes(reversed(range(32))),
        recorded_at=_ts(1_767_225_601),
        canonical_json=canonical,
        credit_awarded=events_pb2.CreditAwarded(
            issuer_id="nptel",
            completion_id="c-1",
            course_id="NPTEL-CS101",
            level=common_pb2.NCRF_LEVEL_6_5,
            notional_hours=45,
            credits=1.5,
            hours_basis=common_pb2.HOURS_BASIS_NCRF,
            completed_at=_ts(1_767_000_000),
            valid_until=_ts(1_767_000_000 + 7 * 365 * 86_400),
            result=common_pb2.COMPLETION_RESULT_PASS,
            grade="A+",
        ),
    )

    decoded = events_pb2.LedgerEntry.FromString(entry.SerializeToString())

    assert decoded == entry
    assert decoded.WhichOneof("detail") == "credit_awarded"
    assert decoded.canonical_json == canonical
    assert decoded.prev_hash == bytes(range(32))
    assert decoded.credit_awarded.WhichOneof("assessment") == "grade"
    assert decoded.credit_awarded.credits == 1.5


def test_dead_letter_keeps_original_bytes() -> None:
    letter = events_pb2.DeadLetter(
        original_key=b"123456789012",
        original_value=b"\xff\x00not protobuf",
        reason="invalid_event",
        source_topic="completions.v1",
        source_partition=3,
        source_offset=99,
    )
    assert events_pb2.DeadLetter.FromString(letter.SerializeToString()) == letter


@pytest.mark.parametrize(
    ("module", "service", "methods"),
    [
        (
            issuer_gateway_pb2,
            "IssuerGatewayService",
            {
                "SubmitCompletion",
                "StreamCompletions",
                "RevokeCompletion",
                "GetCompletionStatus",
                "ProposeCourse",
            },
        ),
        (
            transcript_query_pb2,
            "TranscriptQueryService",
            {
                "GetTranscript",
                "BatchGetTranscripts",
                "ListCredentials",
                "GetCreditSummary",
                "WatchTranscript",
                "VerifyEntry",
                "GetCheckpoint",
                "GetConsistencyProof",
                "ListRecordAccesses",
                "ExportCredential",
                "ExportTranscript",
            },
        ),
        (
            learner_consent_pb2,
            "LearnerConsentService",
            {"GrantReaderConsent", "RevokeReaderConsent"},
        ),
        (
            ledger_admin_pb2,
            "LedgerAdminService",
            {
                "CreateCourse",
                "ApproveCourse",
                "WithdrawCourse",
                "ListCourses",
                "CreateIssuer",
                "CreateIssuerToken",
                "CreateUniversity",
                "CreateUniversityToken",
                "GrantConsent",
                "RevokeConsent",
                "VerifyLedger",
                "StartReplay",
                "GetReplayStatus",
                "SetCourseCategory",
            },
        ),
        (
            redemption_pb2,
            "RedemptionService",
            {
                "CreateProgramme",
                "ListProgrammes",
                "RedeemCredits",
                "GetRedemption",
                "ListRedemptions",
            },
        ),
    ],
)
def test_services_expose_the_designed_rpcs(
    module: ModuleType, service: str, methods: set[str]
) -> None:
    descriptor = module.DESCRIPTOR.services_by_name[service]
    assert {method.name for method in descriptor.methods} == methods
    for method in descriptor.methods:
        assert method.input_type.name == f"{method.name}Request"
        assert method.output_type.name == f"{method.name}Response"


def test_streaming_shapes() -> None:
    gateway = issuer_gateway_pb2.DESCRIPTOR.services_by_name["IssuerGatewayService"]
    stream = gateway.methods_by_name["StreamCompletions"]
    assert stream.client_streaming
    assert stream.server_streaming
    query = transcript_query_pb2.DESCRIPTOR.services_by_name["TranscriptQueryService"]
    watch = query.methods_by_name["WatchTranscript"]
    assert not watch.client_streaming
    assert watch.server_streaming
