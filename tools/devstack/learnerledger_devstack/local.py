"""What ``ledgerctl`` picks up from the local stack on a development machine.

Without ``DATABASE_URL``, ``KAFKA_SECURITY_PROTOCOL`` or ``LEARNER_OIDC_ISSUER`` set, a command
run beside a local stack (``ledgerctl stack up``) uses the stack's login meant for it, its Kafka
principal and its development identity provider. Each function returns nothing to use when the
environment names its own servers (:func:`external_servers`) or the stack has not made the
files; ``ledgerctl`` then uses its ordinary settings.
"""

from __future__ import annotations

import os

from learnerledger_devstack.dev_identity import for_state_dir
from learnerledger_devstack.kafka_broker import PRINCIPALS
from learnerledger_devstack.stack import StackConfig, external_servers


def database_url(purpose: str) -> str | None:
    """The stack's DSN for ``purpose`` (``admin``, ``migrator`` or a service name) when
    DATABASE_URL is unset and the stack has made its logins."""
    if os.environ.get("DATABASE_URL", "").strip():
        return None
    postgres = StackConfig.from_env().postgres()
    if not postgres.logins_file.exists():
        return None
    return postgres.login_urls()[purpose]


def kafka_principal_env(principal: str) -> dict[str, str]:
    """The KAFKA_* settings that authenticate as ``principal`` (``admin`` for ledgerctl's own
    commands, a service's for ``serve``; credentials from ``<state>/kafka/credentials.json``)."""
    if os.environ.get("KAFKA_SECURITY_PROTOCOL", "").strip() or external_servers() is not None:
        return {}
    broker = StackConfig.from_env().kafka()
    if broker.credentials_file.exists() and principal in PRINCIPALS:
        return broker.client_env(principal)
    return {}


def learner_sign_in_env() -> dict[str, str]:
    """The LEARNER_* settings that make a local service accept ID tokens from the development
    identity provider (``ledgerctl learner token``), if the stack has one (``stack up`` makes
    it). A deployment configures its own provider instead."""
    if os.environ.get("LEARNER_OIDC_ISSUER", "").strip() or external_servers() is not None:
        return {}
    provider = for_state_dir(StackConfig.from_env().state_dir)
    return provider.settings_env() if provider.exists() else {}
