"""The soak benchmark's pieces that need no broker: where it samples, and its SVG plot."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

from bench.soak import checkpoints
from bench.soak_plot import svg


def test_samples_at_roughly_threefold_steps_up_to_the_total() -> None:
    assert checkpoints(1_000_000) == [10_000, 30_000, 100_000, 300_000, 1_000_000]
    assert checkpoints(50_000) == [10_000, 30_000, 50_000]
    assert checkpoints(5_000) == [5_000]


def test_the_plot_is_an_svg_with_a_line_per_kind_and_panel() -> None:
    def row(count: int, rss: float, ready: float) -> dict[str, float]:
        return {"count": count, "rss_mib": rss, "restart_to_ready_s": ready}

    report = {"finished": [row(10_000, 68.6, 0.65), row(1_000_000, 71.2, 0.81)],
              "parked": [row(10_000, 76.0, 1.16), row(1_000_000, 76.4, 1.61)]}
    root = ElementTree.fromstring(svg(report))
    lines = root.findall("{http://www.w3.org/2000/svg}polyline")
    assert len(lines) == 4  # finished and parked, in the RSS panel and the restart panel
    labels = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "Orchestrator RSS" in labels and "1M" in labels and "10k" in labels
