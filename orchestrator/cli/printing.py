"""How the control commands print executions: aligned tables, the describe block, one line per event."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

from orchestrator.api.readmodel import ExecutionView

_DETAILS_WIDTH = 100  # characters of an event's details in `baton history`


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _shorten(text: str, width: int = _DETAILS_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max([len(header), *(len(row[i]) for row in rows)]) for i, header in enumerate(headers)]
    for line in [headers, *rows]:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())


def print_execution(view: ExecutionView) -> None:
    fields: list[tuple[str, str]] = [
        ("Execution", view.execution_id), ("State machine", view.state_machine), ("Name", view.name),
        ("Status", view.status), ("Started", view.start_time or "-"), ("Stopped", view.stop_time or "-"),
    ]
    if view.version is not None:
        fields.insert(2, ("Version", str(view.version) + (f" (alias {view.alias})" if view.alias else "")))
    if view.redrive_count:
        fields.append(("Redrives", str(view.redrive_count)))
    fields.append(("Input", _compact(view.input)))
    if view.status == "SUCCEEDED" or view.output is not None:
        fields.append(("Output", _compact(view.output)))
    fields += [(label, value) for label, value in (("Error", view.error), ("Cause", view.cause)) if value]
    if view.budget is not None:
        fields.append(("Budget", _budget_line(view.budget)))
    width = max(len(label) for label, _ in fields)
    for label, value in fields:
        click.echo(f"{label.ljust(width)}  {value}")


def _budget_line(budget: dict[str, Any]) -> str:
    """`2546 tokens of 2500, 0.0 USD of 0.5, in 7 calls`: the spend, each against its limit."""
    spent, limits = budget["spent"], budget.get("limits") or {}
    tokens = f"{spent['tokens']} tokens" + (f" of {limits['MaxTokens']}" if "MaxTokens" in limits else "")
    cost = f"{spent['costUsd']:g} USD" + (f" of {limits['MaxCost']:g}" if "MaxCost" in limits else "")
    return f"{tokens}, {cost}, in {spent['calls']} charged calls"


def event_details(event: dict[str, Any]) -> str:
    details = {key: value for key, value in event.items()
               if key not in ("id", "previousEventId", "timestamp", "type")}
    if len(details) == 1:
        details = next(iter(details.values()))  # just the <type>EventDetails object
    return _shorten(_compact(details)) if details else ""
