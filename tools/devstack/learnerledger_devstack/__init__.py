"""The development stack: Kafka and PostgreSQL run locally by the project's own code, the four
services as local processes, the demo and the local development identity provider.

A distribution of its own (``tools/devstack``, ``learner-ledger-devstack``), installed on
development machines by ``scripts/bootstrap.sh`` and never into the runtime image: production
runs its servers elsewhere. ``ledgerctl stack ...``, ``ledgerctl demo`` and ``ledgerctl learner
token`` import it lazily. Settings: :class:`learnerledger_devstack.settings.DevStackSettings`.
"""
