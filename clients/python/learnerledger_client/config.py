"""Where and how to connect: one object holds the address, TLS/mTLS, the token, the deadlines
and the retry policy, so nothing else needs to know about them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import grpc


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """Server verification and, for mTLS, the client's own certificate.

    ``root_certificates`` is the PEM of the CA that signed the server's certificate (None: the
    system's roots). ``certificate_chain`` and ``private_key`` (PEM) are the client certificate
    for mutual TLS; give both or neither.
    """

    root_certificates: bytes | None = None
    certificate_chain: bytes | None = None
    private_key: bytes | None = None
    server_name_override: str | None = None

    def __post_init__(self) -> None:
        if (self.certificate_chain is None) != (self.private_key is None):
            raise ValueError("mTLS needs both certificate_chain and private_key")

    @classmethod
    def from_files(
        cls,
        ca: str | Path | None = None,
        cert: str | Path | None = None,
        key: str | Path | None = None,
        server_name_override: str | None = None,
    ) -> TlsConfig:
        def read(path: str | Path | None) -> bytes | None:
            return Path(path).read_bytes() if path is not None else None

        return cls(read(ca), read(cert), read(key), server_name_override)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff for UNAVAILABLE on calls that are safe to repeat.

    The n-th consecutive failure waits ``min(max_backoff_s, initial_backoff_s * multiplier**n)``
    (with up to 20 % jitter). ``max_attempts`` counts consecutive failures without progress; a
    stream that got answers since its last failure starts counting again.
    """

    max_attempts: int = 10
    initial_backoff_s: float = 0.2
    max_backoff_s: float = 5.0
    multiplier: float = 2.0

    def backoff(self, attempt: int) -> float:
        return float(min(self.max_backoff_s, self.initial_backoff_s * self.multiplier**attempt))


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Everything a client needs to reach one Learner Ledger API.

    ``target``: "host:port" of the issuer gateway (partners) or the query service
    (registrars). ``token``: the issuer or university API token, sent as
    ``authorization: Bearer <token>`` on every call. ``tls``: None means plaintext, which is
    only for a local stack: a token on a plaintext channel can be read by anyone on the path.
    ``timeout_s``: the deadline of every unary call. ``ack_timeout_s``: how long a stream may
    go without an answer while items are waiting for one before it is abandoned and resent.
    ``stream_timeout_s``: the deadline of a whole stream (submission or watch). ``window``: at
    most this many submitted items wait for their answer at once.
    """

    target: str
    token: str
    tls: TlsConfig | None = None
    timeout_s: float = 10.0
    ack_timeout_s: float = 30.0
    stream_timeout_s: float = 24 * 3600.0
    window: int = 256
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if not self.token:
            raise ValueError("a token is required")
        if self.window < 1:
            raise ValueError("window must be at least 1")
        if self.timeout_s <= 0 or self.ack_timeout_s <= 0 or self.stream_timeout_s <= 0:
            raise ValueError("timeouts must be positive")

    def __repr__(self) -> str:  # never print the token
        return f"ClientConfig(target={self.target!r}, tls={self.tls is not None})"

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),)

    def aio_channel(self) -> grpc.aio.Channel:
        if self.tls is None:
            return grpc.aio.insecure_channel(self.target)
        return grpc.aio.secure_channel(self.target, self._credentials(), self._options())

    def _credentials(self) -> grpc.ChannelCredentials:
        assert self.tls is not None
        return grpc.ssl_channel_credentials(
            root_certificates=self.tls.root_certificates,
            private_key=self.tls.private_key,
            certificate_chain=self.tls.certificate_chain,
        )

    def _options(self) -> list[tuple[str, str]]:
        if self.tls is not None and self.tls.server_name_override:
            return [("grpc.ssl_target_name_override", self.tls.server_name_override)]
        return []
