"""Shared gRPC plumbing for every Learner Ledger server.

- :mod:`learnerledger.rpc.errors`: AIP-193 rich errors (``google.rpc`` BadRequest, ErrorInfo,
  RetryInfo) carried in the ``grpc-status-details-bin`` trailer via grpcio-status.
- :mod:`learnerledger.rpc.auth`: ``authorization: Bearer <token>`` authentication with a short
  cache, and principal-kind checks.
- :mod:`learnerledger.rpc.server`: an asyncio server with health checking, reflection and
  optional TLS / mutual TLS.
"""
