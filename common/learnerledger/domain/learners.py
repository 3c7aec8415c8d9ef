"""Learners are identified by their APAAR id (the ABC account key)."""

from __future__ import annotations

import re

_APAAR = re.compile(r"[0-9]{12}")


def is_apaar_id(value: str) -> bool:
    """True when ``value`` has the shape of an APAAR id: exactly 12 ASCII digits.

    docs/domain.md: the id is validated for shape only (no check digit is published).
    """
    return _APAAR.fullmatch(value) is not None
