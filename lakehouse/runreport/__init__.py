"""The HTML run report: a run's facts read from PostgreSQL (``facts``), drawn as inline SVG (``charts``) into one
self-contained page (``page``)."""

from lakehouse.runreport.facts import ReportError, RunFacts, gather, latest_run_id
from lakehouse.runreport.page import publish_report, render, write_report

__all__ = ["ReportError", "RunFacts", "gather", "latest_run_id", "publish_report", "render", "write_report"]
