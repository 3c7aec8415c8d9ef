"""``ledgerctl issuer add|token``: partners that certify learning."""

from __future__ import annotations

from typing import Any

from learnerledger.ctl.commands.token import register_partner


def register(commands: Any) -> None:
    register_partner(commands, "issuer", "partners that certify learning", "register an issuer")
