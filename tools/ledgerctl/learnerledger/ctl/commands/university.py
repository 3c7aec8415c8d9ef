"""``ledgerctl university add|token``: universities that read transcripts."""

from __future__ import annotations

from typing import Any

from learnerledger.ctl.commands.token import register_partner


def register(commands: Any) -> None:
    register_partner(
        commands, "university", "universities that read transcripts", "register a university"
    )
