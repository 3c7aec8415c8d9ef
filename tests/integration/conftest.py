"""Fixtures for the integration tests, beside those of tests/conftest.py (defined in
tests/support, named here so that pytest offers them to every module of this directory)."""

from tests.support.authorization import services  # noqa: F401
from tests.support.gateway import tokens  # noqa: F401
