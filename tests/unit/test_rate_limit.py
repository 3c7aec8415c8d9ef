"""The gateway's per-issuer token buckets, on an injected clock (no waiting, no I/O)."""

from __future__ import annotations

import pytest

from learnerledger.gateway.rate_limit import TokenBuckets


class FakeClock:
    """Seconds that pass only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_a_new_issuer_may_send_a_whole_burst_then_waits_for_one_token(clock: FakeClock) -> None:
    buckets = TokenBuckets(4.0, 3, clock=clock)
    assert [buckets.try_acquire("swayam") for _ in range(3)] == [None, None, None]
    assert buckets.try_acquire("swayam") == pytest.approx(0.25)  # one token at 4/s


def test_tokens_refill_at_the_rate(clock: FakeClock) -> None:
    buckets = TokenBuckets(2.0, 2, clock=clock)
    assert buckets.try_acquire("swayam") is None
    assert buckets.try_acquire("swayam") is None
    clock.advance(0.2)  # 0.4 tokens back
    assert buckets.try_acquire("swayam") == pytest.approx(0.3)
    clock.advance(0.3)
    assert buckets.try_acquire("swayam") is None
    assert buckets.try_acquire("swayam") == pytest.approx(0.5)


def test_a_refusal_takes_nothing_and_the_reported_wait_is_enough(clock: FakeClock) -> None:
    buckets = TokenBuckets(10.0, 1, clock=clock)
    assert buckets.try_acquire("swayam") is None
    first = buckets.try_acquire("swayam")
    again = buckets.try_acquire("swayam")
    assert first == pytest.approx(0.1)
    assert again == pytest.approx(0.1)  # asking again did not dig the bucket deeper
    assert first is not None
    clock.advance(first)
    assert buckets.try_acquire("swayam") is None


def test_a_long_pause_refills_up_to_the_burst_and_no_further(clock: FakeClock) -> None:
    buckets = TokenBuckets(100.0, 5, clock=clock)
    for _ in range(5):
        assert buckets.try_acquire("swayam") is None
    clock.advance(3600)  # enough for 360000 tokens: the bucket holds 5
    granted = [buckets.try_acquire("swayam") is None for _ in range(6)]
    assert granted == [True] * 5 + [False]


def test_each_issuer_has_its_own_bucket(clock: FakeClock) -> None:
    buckets = TokenBuckets(1.0, 2, clock=clock)
    assert buckets.try_acquire("swayam") is None
    assert buckets.try_acquire("swayam") is None
    assert buckets.try_acquire("swayam") is not None
    # An exhausted issuer does not slow another down, nor does the other's traffic refill it.
    assert buckets.try_acquire("nptel") is None
    assert buckets.try_acquire("nptel") is None
    assert buckets.try_acquire("nptel") == pytest.approx(1.0)
    assert buckets.try_acquire("swayam") == pytest.approx(1.0)


def test_several_tokens_at_once(clock: FakeClock) -> None:
    buckets = TokenBuckets(2.0, 10, clock=clock)
    assert buckets.try_acquire("swayam", 8) is None
    assert buckets.try_acquire("swayam", 4) == pytest.approx(1.0)  # 2 left, 2 missing at 2/s
    assert buckets.try_acquire("swayam", 2) is None  # the refusal left the 2 in place
    assert buckets.try_acquire("swayam", 11) == pytest.approx(5.5)  # more than a burst: never


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 5), (1.0, 0)])
def test_a_rate_or_burst_that_admits_nothing_is_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="rate must be > 0 and burst >= 1"):
        TokenBuckets(rate, burst)


def test_the_default_clock_is_the_monotonic_clock() -> None:
    buckets = TokenBuckets(0.001, 1)  # a token per 1000 s: the test cannot wait one out
    assert buckets.try_acquire("swayam") is None
    wait = buckets.try_acquire("swayam")
    assert wait is not None
    assert 990 < wait <= 1000
