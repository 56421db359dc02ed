"""Look at a page as a person would: the system Chromium, headless, with every network request refused.

Playwright drives Debian's ``chromium`` (``.ci/run`` installs it); no browser is downloaded. A request to anything
but ``file://`` (or an allowed loopback port) is aborted and recorded, so a page that reaches for the network is
caught, not just slow.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

SIZE_OF_DRAWINGS = """() => [...document.querySelectorAll('svg, canvas')].map(e => {
    const r = e.getBoundingClientRect(); return [e.tagName.toLowerCase(), r.width, r.height]; })"""


@dataclass
class PageLook:
    """What the browser saw: drawings (tag, width, height), console errors, refused requests, the text shown."""

    drawings: list[tuple[str, float, float]]
    console_errors: list[str]
    refused: list[str]
    text: dict[str, str] = field(default_factory=dict)
    rows: dict[str, list[list[str]]] = field(default_factory=dict)


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("LAKEHOUSE_REQUIRE_SERVICES") == "1":
            pytest.fail("chromium is not installed (.ci/run installs Debian's chromium)")
        pytest.skip("chromium is not installed")
    return path


def look(
    url: str, screenshot: Path, *, texts: tuple[str, ...] = (), tables: tuple[str, ...] = (), allow: str = ""
) -> PageLook:
    """Open ``url`` offline (``allow``: one ``http://127.0.0.1:PORT`` origin), screenshot the full page, read it.

    ``texts`` are CSS selectors whose inner text is returned; ``tables`` selectors of tables returned as cells.
    """
    sync_api = pytest.importorskip("playwright.sync_api")
    executable = chromium()
    errors: list[str] = []
    refused: list[str] = []

    def route(r: Any) -> None:
        if r.request.url.startswith("file://") or (allow and r.request.url.startswith(allow)):
            r.continue_()
        else:
            refused.append(r.request.url)
            r.abort()

    with sync_api.sync_playwright() as pw:
        rules = "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"  # no name resolves: belt and braces behind the router
        browser = pw.chromium.launch(
            executable_path=executable, args=["--no-sandbox", f"--host-resolver-rules={rules}"]
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.route("**/*", route)
            page.goto(url, wait_until="load")
            page.wait_for_timeout(500)  # let a scripted page (dbt docs) draw
            page.screenshot(path=str(screenshot), full_page=True)
            seen = PageLook(
                drawings=[tuple(d) for d in page.evaluate(SIZE_OF_DRAWINGS)],
                console_errors=errors,
                refused=refused,
                text={s: page.inner_text(s) for s in texts},
                rows={
                    s: page.eval_on_selector(
                        s, "t => [...t.rows].slice(1).map(r => [...r.cells].map(c => c.textContent.trim()))"
                    )
                    for s in tables
                },
            )
        finally:
            browser.close()
    return seen
