"""``google.protobuf.Timestamp`` <-> ``datetime`` (UTC), with the range the domain accepts."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

#: The instants a request or a record may name: the year 1000 to the year 9000. Outside, protobuf
#: may not convert the value at all (it allows 0001..9999 only), and the domain's arithmetic on an
#: instant (a year back for the annual limit, seven years on for validity) would overflow.
EARLIEST_INSTANT = datetime(1000, 1, 1, tzinfo=UTC)
LATEST_INSTANT = datetime(9000, 1, 1, tzinfo=UTC)


class InstantOutOfRange(ValueError):
    """A Timestamp that is not a valid instant between :data:`EARLIEST_INSTANT` and
    :data:`LATEST_INSTANT`; ``description`` says so in words fit for a field violation."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


def to_timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value.astimezone(UTC))
    return stamp


def from_timestamp(stamp: Timestamp) -> datetime:
    """The one conversion of a Timestamp read from a request or a record to a datetime (UTC).

    Raises :class:`InstantOutOfRange` for nanos outside 0..999,999,999, for seconds protobuf
    cannot convert, and for instants outside :data:`EARLIEST_INSTANT`..:data:`LATEST_INSTANT`.
    """
    if not 0 <= stamp.nanos <= 999_999_999:
        raise InstantOutOfRange("nanos must be 0 to 999999999")
    try:
        value = stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as exc:
        raise InstantOutOfRange(
            f"must be between {EARLIEST_INSTANT:%Y-%m-%d} and {LATEST_INSTANT:%Y-%m-%d}"
        ) from exc
    if not EARLIEST_INSTANT <= value < LATEST_INSTANT:
        raise InstantOutOfRange(
            f"must be between {EARLIEST_INSTANT:%Y-%m-%d} and {LATEST_INSTANT:%Y-%m-%d}"
        )
    return value
