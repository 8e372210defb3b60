"""The soak report as an SVG (no plotting dependency): RSS and same-host restart time against the
count of finished and of parked executions, on a logarithmic count axis."""

from __future__ import annotations

import math
from typing import Any

WIDTH, HEIGHT, MARGIN = 420, 260, 50
COLOURS = {"finished": "#1f77b4", "parked": "#d62728"}


def _panel(x0: int, title: str, unit: str, series: dict[str, list[tuple[int, float]]]) -> list[str]:
    points = [p for values in series.values() for p in values]
    if not points:
        return []
    low, high = min(c for c, _ in points), max(c for c, _ in points)
    top = max(v for _, v in points) * 1.15 or 1.0
    span = math.log10(high / low) if high > low else 1.0

    def x(count: int) -> float:
        return x0 + MARGIN + (math.log10(count / low) / span) * (WIDTH - 2 * MARGIN)

    def y(value: float) -> float:
        return HEIGHT - MARGIN - value / top * (HEIGHT - 2 * MARGIN)

    out = [f'<text x="{x0 + WIDTH / 2}" y="20" text-anchor="middle" font-size="14">{title}</text>',
           f'<line x1="{x0 + MARGIN}" y1="{HEIGHT - MARGIN}" x2="{x0 + WIDTH - MARGIN}" y2="{HEIGHT - MARGIN}" '
           'stroke="#000"/>',
           f'<line x1="{x0 + MARGIN}" y1="{MARGIN}" x2="{x0 + MARGIN}" y2="{HEIGHT - MARGIN}" stroke="#000"/>',
           f'<text x="{x0 + 12}" y="{MARGIN - 10}" font-size="11">{unit}</text>',
           f'<text x="{x0 + WIDTH / 2}" y="{HEIGHT - 12}" text-anchor="middle" font-size="11">executions '
           '(log scale)</text>']
    for tick in range(5):
        value = top * tick / 4
        out.append(f'<text x="{x0 + MARGIN - 6}" y="{y(value) + 4:.1f}" text-anchor="end" font-size="10">'
                   f'{value:.3g}</text>')
    for count in sorted({c for c, _ in points}):
        label = f"{count / 1e6:g}M" if count >= 1e6 else f"{count / 1e3:g}k"
        out.append(f'<text x="{x(count):.1f}" y="{HEIGHT - MARGIN + 14}" text-anchor="middle" font-size="10">'
                   f'{label}</text>')
    for index, (name, values) in enumerate(series.items()):
        colour = COLOURS.get(name, "#333")
        path = " ".join(f"{x(c):.1f},{y(v):.1f}" for c, v in values)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        out.extend(f'<circle cx="{x(c):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}"/>' for c, v in values)
        out.append(f'<text x="{x0 + WIDTH - MARGIN}" y="{MARGIN + 14 * index}" text-anchor="end" font-size="11" '
                   f'fill="{colour}">{name}</text>')
    return out


def svg(report: dict[str, Any]) -> str:
    """Two panels: RSS (MiB) and same-host restart to ready (s), per kind of execution."""
    def series(field: str) -> dict[str, list[tuple[int, float]]]:
        return {kind: [(s["count"], float(s[field])) for s in report.get(kind, [])]
                for kind in ("finished", "parked") if report.get(kind)}

    body = [*_panel(0, "Orchestrator RSS", "MiB", series("rss_mib")),
            *_panel(WIDTH, "Same-host restart to ready", "s", series("restart_to_ready_s"))]
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * WIDTH}" height="{HEIGHT}" '
            f'font-family="sans-serif"><rect width="100%" height="100%" fill="#fff"/>{"".join(body)}</svg>\n')
