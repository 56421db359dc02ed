"""The report's charts as inline SVG, drawn on the server by pygal.

Why pygal: a maintained Python library (LGPL-3.0) that renders finished SVG documents, so the page needs no
JavaScript, no chart library shipped beside it and no network; the charts print, and a browser draws them
exactly as written. Its optional tooltip script is switched off (``js=[]``): it would be fetched from the web.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pygal  # type: ignore[import-untyped]
from markupsafe import Markup
from pygal.style import Style  # type: ignore[import-untyped]

_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.DOTALL)
PALETTE = ("#2b6cb0", "#c53030", "#b7791f", "#6b46c1", "#2f855a", "#718096")
_STYLE = Style(
    background="white",
    plot_background="white",
    foreground="#1a202c",
    foreground_strong="#1a202c",
    foreground_subtle="#cbd5e0",
    colors=PALETTE,
    font_family="system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif",
    label_font_size=11,
    major_label_font_size=11,
    legend_font_size=12,
    value_font_size=10,
    title_font_size=14,
)


def _config(title: str, *, width: int, height: int) -> dict[str, object]:
    return {
        "title": title,
        "width": width,
        "height": height,
        "explicit_size": True,  # width and height attributes: the chart has its size before any CSS
        "style": _STYLE,
        "js": [],  # no tooltip script: it would be loaded from the web
        "disable_xml_declaration": True,
        "legend_at_bottom": True,
        "truncate_legend": -1,
        "truncate_label": -1,
        "print_values": False,
    }


def _short(value: float | None) -> str:
    """Whole numbers with separators, others with at most two decimals."""
    if value is None:
        return ""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _svg(chart: pygal.graph.graph.Graph) -> Markup:
    # pygal always writes its tooltip configuration as a script; the page runs none (its tooltips need the web).
    svg = _SCRIPT.sub("", chart.render(is_unicode=True))
    return Markup(svg)


def stacked_bars(
    title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[int]]], *, width: int = 760
) -> Markup:
    """Horizontal stacked bars: one bar per label, one colour per series (e.g. a table's rows by outcome)."""
    chart = pygal.HorizontalStackedBar(**_config(title, width=width, height=120 + 48 * len(labels)))
    chart.x_labels = list(labels)
    for name, values in series:
        chart.add(name, list(values))
    return _svg(chart)


def bars(title: str, values: Sequence[tuple[str, float]], *, unit: str = "", width: int = 760) -> Markup:
    """Horizontal bars, one per (label, value), labelled with the value."""
    chart = pygal.HorizontalBar(**_config(title, width=width, height=110 + 30 * max(len(values), 1)))
    chart.show_legend = False
    chart.print_values = True
    chart.value_formatter = lambda v: f"{_short(v)}{unit}"
    # pygal draws the first bar at the bottom: reversed, the list reads top to bottom
    chart.x_labels = [label for label, _ in reversed(values)]
    chart.add(title, [value for _, value in reversed(values)])
    return _svg(chart)


def line(title: str, labels: Sequence[str], values: Sequence[float | None], *, width: int = 370) -> Markup:
    """One series over runs (oldest left); a missing value leaves a gap."""
    chart = pygal.Line(**_config(title, width=width, height=240))
    chart.show_legend = False
    chart.x_labels = list(labels)
    chart.x_label_rotation = 40
    chart.show_minor_x_labels = False
    chart.x_labels_major_every = max(1, len(labels) // 6)
    chart.value_formatter = _short
    chart.add(title, list(values))
    return _svg(chart)
