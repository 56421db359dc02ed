"""Alert delivery: a JSON payload POSTed to a webhook and/or given on standard input to a command.

Delivery is best effort by design: an alert that cannot be delivered is logged and never fails the run it reports
(the run's own outcome is already recorded in ``ops``). The webhook URL is a secret (chat webhooks carry their
token in it): it is never logged; failures name only its host.
"""

from __future__ import annotations

import json
import logging
import shlex
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping
from urllib.parse import urlsplit

from lakehouse.settings import Secret

log = logging.getLogger(__name__)
TIMEOUT_S = 10.0


def deliver(
    payload: Mapping[str, object],
    *,
    webhook: Secret | None,
    command: str | None,
    timeout_s: float = TIMEOUT_S,
) -> list[str]:
    """Send ``payload`` to each configured target; return one line per target saying how it went (never raises)."""
    body = json.dumps(payload, default=str).encode()
    lines = []
    if webhook is not None:
        lines.append(_post(webhook, body, timeout_s))
    if command:
        lines.append(_run(command, body, timeout_s))
    for line in lines:
        (log.info if line.startswith("alert sent") else log.warning)("%s", line)
    return lines


def _post(webhook: Secret, body: bytes, timeout_s: float) -> str:
    url = webhook.reveal()
    where = urlsplit(url).netloc.rsplit("@", 1)[-1] or "(no host)"
    if urlsplit(url).scheme not in ("http", "https"):
        return f"alert not sent: LAKEHOUSE_ALERT_WEBHOOK is not an http(s) URL (host {where})"
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", "User-Agent": "lakehouse"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return f"alert sent to the webhook at {where} (HTTP {response.status})"
    except urllib.error.HTTPError as exc:
        return f"alert not delivered to the webhook at {where}: HTTP {exc.code}"
    except (OSError, ValueError) as exc:  # refused, timed out, bad URL
        reason = getattr(exc, "reason", exc)
        return f"alert not delivered to the webhook at {where}: {type(exc).__name__}: {reason}"


def _run(command: str, body: bytes, timeout_s: float) -> str:
    try:
        argv = shlex.split(command)
        proc = subprocess.run(argv, input=body, capture_output=True, timeout=timeout_s, check=False)
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        return f"alert not delivered to the command {command!r}: {type(exc).__name__}: {exc}"
    if proc.returncode != 0:
        err = " ".join(proc.stderr.decode(errors="replace").split())[:200]
        return f"alert not delivered to the command {command!r}: exit {proc.returncode} {err}".rstrip()
    return f"alert sent to the command {argv[0]!r}"
