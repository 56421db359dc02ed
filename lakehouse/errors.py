"""The few named errors the library raises. Each says what broke, where, and what to try next.

No message ever carries a secret: callers pass endpoints and names, never credentials.
"""

from __future__ import annotations


class LakehouseError(Exception):
    """Base class for every error this package raises on purpose."""


class ConfigurationError(LakehouseError):
    """A setting is missing, malformed or contradicts another one."""


class JavaNotFoundError(LakehouseError):
    """No Java runtime, or one older than Spark 4 supports."""


class JarResolutionError(LakehouseError):
    """A connector jar could not be fetched from the Maven repository or failed its checksum."""


class ServiceUnavailableError(LakehouseError):
    """An external service (MinIO/S3, PostgreSQL, Docker) cannot be reached or started."""

    def __init__(self, service: str, endpoint: str, detail: str, *, hint: str = "") -> None:
        self.service = service
        self.endpoint = endpoint
        self.detail = detail
        self.hint = hint
        message = f"{service} is not available at {endpoint}: {detail}"
        if hint:
            message += f"\n  Try: {hint}"
        super().__init__(message)


class RunInProgressError(LakehouseError):
    """Another run holds the lake or the warehouse; this one did not start (or gave up waiting)."""


class UnsafeRetentionError(ConfigurationError):
    """A VACUUM was asked to keep superseded files for less than the safe minimum; nothing was deleted."""
