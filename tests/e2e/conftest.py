"""Fixtures for the end-to-end tests (defined in tests/support, named here so that pytest offers
them to every module of this directory)."""

from tests.support.pipeline import pipeline  # noqa: F401
