"""What several test modules share: builders, running services, fixtures, the free-port helper.

Test modules import helpers from here (fixtures they use without importing come from a
``conftest.py``, which takes them from here), never from another ``test_*.py`` module: every
test module can run alone, and none depends on the internals of another.

- :mod:`~tests.support.ports`: free TCP ports (the one helper for them).
- :mod:`~tests.support.domain`: domain objects for unit tests (no I/O).
- :mod:`~tests.support.ledger`: seed the catalog, produce requests, run the ledger.
- :mod:`~tests.support.gateway`, :mod:`~tests.support.projector`, :mod:`~tests.support.query`,
  :mod:`~tests.support.redemption`: the other services in-process, with tokens to call them.
- :mod:`~tests.support.authorization`: every service at once with learner sign-in, and a
  generic caller of any RPC method.
- :mod:`~tests.support.pipeline`: the services as real processes (end-to-end tests).
- :mod:`~tests.support.verifiable_log`: tree heads, the log's HTTP server, an insider rewrite.
- :mod:`~tests.support.cli`: ``ledgerctl`` as a user runs it.
- :mod:`~tests.support.hostile`: hand-made protobuf bytes; the JSON log lines they cause.
- :mod:`~tests.support.standards`: where the 1EdTech schemas are.
"""
