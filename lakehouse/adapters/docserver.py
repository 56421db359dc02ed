"""Serve one self-contained HTML file (dbt's ``static_index.html``) on the loopback interface.

Only ``/`` and ``/index.html`` answer with the file; every other path gets an empty 204, so nothing beside the
file is ever exposed. Bound to 127.0.0.1: the docs are for the person at this machine, not the network.
"""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

HOST = "127.0.0.1"


def docs_server(site: Path, *, port: int) -> http.server.ThreadingHTTPServer:
    """A started-on-demand server for ``site`` on ``127.0.0.1:port`` (0: any free port; see ``server_address``).

    Call ``serve_forever()`` (or run it in a thread) and ``server_close()`` when done.

    Raises:
        OSError: the port is taken.
    """
    page = site.read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] not in ("/", "/index.html"):
                # dbt's page asks for a few URLs it never meant (an icon's unrendered Angular binding, a favicon
                # placeholder): answer with nothing rather than an error, and expose nothing else.
                self.send_response(204)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: a page load is not worth a log line."""

    return http.server.ThreadingHTTPServer((HOST, port), Handler)


def serve_in_thread(server: http.server.ThreadingHTTPServer) -> threading.Thread:
    """Run ``server`` in a daemon thread (tests, embedding); stop it with ``server.shutdown()``."""
    thread = threading.Thread(target=server.serve_forever, name="lakehouse-docs", daemon=True)
    thread.start()
    return thread
