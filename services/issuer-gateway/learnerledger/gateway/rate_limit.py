"""Per-issuer token buckets (in memory, per gateway process)."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBuckets:
    """``rate`` tokens per second refill each issuer's bucket, up to ``burst``."""

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def try_acquire(self, key: str, tokens: float = 1.0) -> float | None:
        """Take ``tokens`` from ``key``'s bucket: None on success, else seconds until they
        would be available (nothing is taken)."""
        now = self._clock()
        level, last = self._buckets.get(key, (self._burst, now))
        level = min(self._burst, level + (now - last) * self._rate)
        if level >= tokens:
            self._buckets[key] = (level - tokens, now)
            return None
        self._buckets[key] = (level, now)
        return (tokens - level) / self._rate
