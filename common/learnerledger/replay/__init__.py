"""Replays that more than one service runs: the read-model rebuild (``rebuild``), started by
``ledgerctl replay projections`` and by the ledger's ``LedgerAdminService.StartReplay``.

It sits above the adapters (it reads the credit log and ``ledger.entries.v1`` and writes the
read model through ``learnerledger.postgres.read_model``) and below the services, so a service
may use it without importing another service (ARCHITECTURE.md, "Layers").
"""
