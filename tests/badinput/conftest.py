"""Fixtures for the bad-input tests (defined in tests/support, named here so that pytest offers
them to every module of this directory)."""

from tests.support.authorization import services  # noqa: F401
