"""Servers the lakehouse talks to, as local processes or containers, each yielding a settings object.

Every provider has the same shape: ``start()`` returns the frozen settings a client needs, ``stop()``
stops only what the provider started. The runner uses the embedded PostgreSQL; tests pick a provider
in the order environment → Docker (testcontainers) → local processes.
"""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
