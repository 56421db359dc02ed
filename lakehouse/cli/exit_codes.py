"""How a command ends: the exit codes, documented once (``--help`` prints them)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """How a command ended (documented in ``--help``)."""

    OK = 0
    FAILED = 1
    USAGE = 2
    CONFIG = 3
    SERVICE = 4
    REFUSED = 5
    QUALITY = 6
    BUSY = 7


EXIT_CODES_HELP = "Exit codes:\n" + "\n".join(
    f"  {code.value}  {text}"
    for code, text in (
        (ExitCode.OK, "success"),
        (ExitCode.FAILED, "a step failed (see the message above the summary)"),
        (ExitCode.USAGE, "usage error (bad command or option)"),
        (ExitCode.CONFIG, "configuration error (a setting is missing or malformed)"),
        (ExitCode.SERVICE, "a service is unavailable (Java, MinIO/S3, PostgreSQL, the Maven repository for jars)"),
        (ExitCode.REFUSED, "some landing files were refused (named on stderr); the others were loaded"),
        (ExitCode.QUALITY, "a quality gate failed (Soda checks named on stderr); downstream layers did not run"),
        (ExitCode.BUSY, "another run is in progress on this lake or warehouse (see --wait)"),
    )
)
