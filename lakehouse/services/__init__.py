"""Servers the lakehouse talks to, as local processes or containers, behind one :class:`Service` shape.

``start()`` returns the frozen settings a client needs; ``stop()`` stops only what the provider started.
:mod:`lakehouse.services.provide` is the one place that picks a provider, for the runner and the test fixtures
alike: the configured endpoint (``PG*``, ``AWS_ENDPOINT_URL``) first, then Docker (testcontainers) where allowed,
then a local process (the embedded PostgreSQL, a ``minio`` build).
"""

from __future__ import annotations

import socket
from typing import Protocol, TypeVar

T_co = TypeVar("T_co", covariant=True)


class Service(Protocol[T_co]):
    """A server that can be started (returning its client settings) and stopped if this object started it."""

    def start(self) -> T_co: ...

    def stop(self) -> None: ...


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
