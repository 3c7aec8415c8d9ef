"""The 1EdTech standards the credentials are checked against (../shared/standards)."""

from __future__ import annotations

from pathlib import Path

#: ../shared/standards beside the repository (one level above its root).
STANDARDS = Path(__file__).resolve().parents[2].parent / "shared" / "standards"


OB3_SCHEMA = STANDARDS / "ob3" / "achievementcredential.schema.json"
