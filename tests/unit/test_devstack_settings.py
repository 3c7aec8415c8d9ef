"""The development stack's settings, and ``ledgerctl`` where the development stack is absent."""

from __future__ import annotations

import builtins
import os
import sys
from pathlib import Path

import pytest

from learnerledger.ctl.main import main
from learnerledger_devstack.settings import REPO_ROOT
from learnerledger_devstack.stack import StackConfig, StackError

LOCAL_NAMES = (
    "LEDGER_STATE_DIR",
    "LOCAL_KAFKA_PORT",
    "LOCAL_KAFKA_CONTROLLER_PORT",
    "LOCAL_POSTGRES_PORT",
    "LOCAL_STACK_START_TIMEOUT",
    "LOCAL_STACK_STOP_TIMEOUT",
    "LOCAL_KAFKA_LIBS_DIR",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in LOCAL_NAMES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults(clean_env: pytest.MonkeyPatch) -> None:
    cfg = StackConfig.from_env()
    assert cfg.state_dir == REPO_ROOT / ".state"
    assert (cfg.kafka_port, cfg.kafka_controller_port, cfg.postgres_port) == (9092, 9093, 5432)
    assert (cfg.start_timeout, cfg.stop_timeout) == (90.0, 30.0)
    assert cfg.libs_dir == cfg.state_dir / "kafka-libs"


def test_the_environment_sets_each_field(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("LEDGER_STATE_DIR", str(tmp_path / "state"))
    clean_env.setenv("LOCAL_KAFKA_PORT", "19092")
    clean_env.setenv("LOCAL_KAFKA_CONTROLLER_PORT", "19093")
    clean_env.setenv("LOCAL_POSTGRES_PORT", "15432")
    clean_env.setenv("LOCAL_STACK_START_TIMEOUT", "12.5")
    clean_env.setenv("LOCAL_STACK_STOP_TIMEOUT", "3")
    clean_env.setenv("LOCAL_KAFKA_LIBS_DIR", str(tmp_path / "libs"))
    cfg = StackConfig.from_env()
    assert cfg.state_dir == tmp_path / "state"
    assert (cfg.kafka_port, cfg.kafka_controller_port, cfg.postgres_port) == (19092, 19093, 15432)
    assert (cfg.start_timeout, cfg.stop_timeout) == (12.5, 3.0)
    assert cfg.libs_dir == tmp_path / "libs"


def test_an_empty_variable_counts_as_unset(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("LOCAL_KAFKA_PORT", "")
    clean_env.setenv("LEDGER_STATE_DIR", "")
    cfg = StackConfig.from_env()
    assert cfg.kafka_port == 9092
    assert cfg.state_dir == REPO_ROOT / ".state"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LOCAL_KAFKA_PORT", "kafka"),
        ("LOCAL_POSTGRES_PORT", "70000"),
        ("LOCAL_STACK_STOP_TIMEOUT", "-1"),
    ],
)
def test_a_bad_value_names_its_variable(
    clean_env: pytest.MonkeyPatch, name: str, value: str
) -> None:
    clean_env.setenv(name, value)
    with pytest.raises(StackError, match=name):
        StackConfig.from_env()


def test_ports_must_differ(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("LOCAL_POSTGRES_PORT", "9092")
    with pytest.raises(StackError, match="must differ"):
        StackConfig.from_env()


@pytest.mark.parametrize(
    "argv",
    [
        ["stack", "up"],
        ["stack", "down"],
        ["stack", "status"],
        ["demo"],
        ["learner", "token", "1" * 12],
    ],
)
def test_ledgerctl_without_the_development_stack_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    # None in sys.modules makes every import of the package fail as if it were not installed.
    for name in [m for m in sys.modules if m.startswith("learnerledger_devstack")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "learnerledger_devstack", None)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "is not installed" in err[0]
    assert "pip install -e tools/devstack" in err[0]
    assert f"`ledgerctl {' '.join(argv[:2])}`" in err[0]


def test_production_commands_use_their_settings_without_the_development_stack(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from learnerledger.ctl import cli

    monkeypatch.setitem(sys.modules, "learnerledger_devstack", None)
    monkeypatch.setitem(sys.modules, "learnerledger_devstack.local", None)
    monkeypatch.setenv("DATABASE_URL", "postgresql://ops@db.example:5432/ledger")
    monkeypatch.delenv("KAFKA_SECURITY_PROTOCOL", raising=False)
    monkeypatch.delenv("LEARNER_OIDC_ISSUER", raising=False)
    assert not cli.devstack_installed()
    assert cli.database_url("admin") == "postgresql://ops@db.example:5432/ledger"
    cli.use_local_kafka_principal("admin")
    cli.use_local_learner_sign_in()
    assert "KAFKA_SECURITY_PROTOCOL" not in os.environ
    assert "LEARNER_OIDC_ISSUER" not in os.environ
    with pytest.raises(cli.DevStackMissing, match="stack up"):
        cli.require_devstack("stack up")


def test_a_broken_development_stack_is_not_mistaken_for_a_missing_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only the package itself missing means "not installed"; its own import errors show."""
    from learnerledger.ctl import cli

    def broken_import(name: str, *args: object, **kwargs: object) -> object:
        if name == "learnerledger_devstack":
            raise ModuleNotFoundError(
                "No module named 'pydantic_settings'", name="pydantic_settings"
            )
        return real_import(name, *args, **kwargs)

    real_import = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", broken_import)
    with pytest.raises(ModuleNotFoundError, match="pydantic_settings"):
        cli.devstack_installed()
