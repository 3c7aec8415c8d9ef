"""What several test modules share: builders, fixtures, running services, the free-port helper.

Test modules import helpers from here (or get fixtures from a ``conftest.py``), never from
another ``test_*.py`` module, so that every test module can run alone and none depends on the
internals of another. The package needs no Kafka or PostgreSQL to import.

- :mod:`tests.support.ports`: free TCP ports.
- :mod:`tests.support.domain`: domain objects for unit tests (no I/O).
- :mod:`tests.support.ledger`: seed the catalog, produce requests, run the ledger in-process.
"""
