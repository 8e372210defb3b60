"""Per-item records, per-variant summaries, the terminal table, CSV and run-to-run deltas (pure).

A variant's score is the mean of its items' scores, a failed item counting 0 (a variant that fails
more must not look better for it); items no scorer applied to are left out. Latency is each
completed item's wall time (the state, or the whole workflow); token and cost sums are over every
item that reported usage (a failed call may have spent tokens too).
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ItemRecord:
    """One input run through one variant."""

    variant: str
    item_id: str
    status: str  # "completed" or "failed"
    error: str | None = None
    cause: str | None = None
    output: Any = None
    text: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    latency_ms: float | None = None  # wall time of the state (or workflow) run
    llm_latency_ms: float | None = None  # the model call, as the LLM step measured it
    ttft_ms: float | None = None
    schema_valid: bool | None = None  # None: the state has no JsonSchema, or no answer came back
    scores: dict[str, float | None] = field(default_factory=dict)
    score: float | None = None
    judge_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ItemRecord:
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})


# Summary columns: (key, header, better): better is "max", "min" or None (not ranked).
COLUMNS: tuple[tuple[str, str, str | None], ...] = (
    ("completed", "ok", "max"), ("failed", "failed", "min"), ("schema_valid", "schema", "max"),
    ("latency_p50_ms", "p50 ms", "min"), ("latency_p95_ms", "p95 ms", "min"), ("ttft_p50_ms", "ttft ms", "min"),
    ("input_tokens_sum", "in tok", None), ("output_tokens_sum", "out tok", None),
    ("output_tokens_mean", "out/item", None), ("cost_usd", "cost $", "min"), ("score", "score", "max"),
)


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100), interpolated between ranks as numpy's default; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def summarise(variant: str, records: list[ItemRecord]) -> dict[str, Any]:
    """One variant's figures from its item records."""
    mine = [r for r in records if r.variant == variant]
    completed = [r for r in mine if r.status == "completed"]
    failures = Counter(r.error or "unknown" for r in mine if r.status != "completed")
    answered = [r.schema_valid for r in mine if r.schema_valid is not None]
    inputs = [r.input_tokens for r in mine if r.input_tokens is not None]
    outputs = [r.output_tokens for r in mine if r.output_tokens is not None]
    costs = [r.cost_usd for r in mine if r.cost_usd is not None]
    # A failure is often fast (a prompt that does not render): latency is the completed items'.
    latencies = [r.latency_ms for r in completed if r.latency_ms is not None]
    ttfts = [r.ttft_ms for r in completed if r.ttft_ms is not None]
    scored = [0.0 if r.status != "completed" else r.score for r in mine
              if r.status != "completed" or r.score is not None]
    return {
        "variant": variant, "items": len(mine), "completed": len(completed), "failed": len(mine) - len(completed),
        "failed_by_error": dict(sorted(failures.items())),
        "schema_valid": _round(sum(answered) / len(answered)) if answered else None,
        "latency_p50_ms": _round(percentile(latencies, 50), 1), "latency_p95_ms": _round(percentile(latencies, 95), 1),
        "ttft_p50_ms": _round(percentile(ttfts, 50), 1),
        "input_tokens_sum": sum(inputs), "output_tokens_sum": sum(outputs),
        "input_tokens_mean": _round(_mean([float(n) for n in inputs]), 2),
        "output_tokens_mean": _round(_mean([float(n) for n in outputs]), 2),
        "cost_usd": round(sum(costs), 10) if costs else None,
        "score": _round(_mean([s for s in scored if s is not None]), 4),
        "judge_errors": sum(1 for r in mine if r.judge_error),
    }


def summarise_all(variants: list[str], records: list[ItemRecord]) -> list[dict[str, Any]]:
    return [summarise(name, records) for name in variants]


def best(summaries: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Per ranked column, the variants with the best value (ties: all); none with fewer than 2 values."""
    marks: dict[str, set[str]] = {}
    for key, _, better in COLUMNS:
        values: list[tuple[str, float]] = [(s["variant"], s[key]) for s in summaries if s.get(key) is not None]
        if better is None or len(values) < 2:
            continue
        numbers = [v for _, v in values]
        top = max(numbers) if better == "max" else min(numbers)
        marks[key] = {name for name, v in values if v == top}
    return marks


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if abs(value) < 1 else f"{value:.1f}"
    return str(value)


def render_table(summaries: list[dict[str, Any]]) -> str:
    """The terminal table: one row per variant, the best per column marked with `*`."""
    marks = best(summaries)
    header = ["variant", *(title for _, title, _ in COLUMNS)]
    rows = [[s["variant"], *(_cell(s.get(key)) + ("*" if s["variant"] in marks.get(key, set()) else "")
                             for key, _, _ in COLUMNS)] for s in summaries]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))
             for row in [header, *rows]]
    for s in summaries:
        if s["failed_by_error"]:
            lines.append(f"  {s['variant']} failed: " + ", ".join(f"{k} x{v}" for k, v in s["failed_by_error"].items()))
    lines.append("* best in its column; score: weighted scorers' mean per item, a failed item 0")
    return "\n".join(lines)


def to_csv(rows: list[dict[str, Any]]) -> str:
    """Rows as CSV text (nested values as JSON, so a spreadsheet opens every column)."""
    import json

    if not rows:
        return ""
    keys: list[str] = []
    for row in rows:
        keys.extend(k for k in row if k not in keys)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v
                         for k, v in row.items()})
    return out.getvalue()


DELTA_KEYS = ("completed", "failed", "schema_valid", "latency_p50_ms", "latency_p95_ms", "ttft_p50_ms",
              "input_tokens_sum", "output_tokens_sum", "cost_usd", "score")


def compare(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per variant (by name), each figure of `after` minus `before`; a variant in one run only is
    listed with its side's figures and no deltas."""
    old = {s["variant"]: s for s in before}
    new = {s["variant"]: s for s in after}
    rows = []
    for name in [*old, *(n for n in new if n not in old)]:
        row: dict[str, Any] = {"variant": name, "in": "both" if name in old and name in new else
                               ("A only" if name in old else "B only")}
        for key in DELTA_KEYS:
            a, b = old.get(name, {}).get(key), new.get(name, {}).get(key)
            row[key] = {"a": a, "b": b, "delta": _round(b - a, 4) if a is not None and b is not None else None}
        rows.append(row)
    return rows


def render_compare(rows: list[dict[str, Any]]) -> str:
    """The deltas table; a variant in one run only shows that run's figures."""
    titles = {key: title for key, title, _ in COLUMNS}
    header = ["variant", *(titles[key] for key in DELTA_KEYS)]
    body = [[r["variant"] + ("" if r["in"] == "both" else f" ({r['in']})"),
             *(_delta_cell(r[key], r["in"]) for key in DELTA_KEYS)] for r in rows]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row))
             for row in [header, *body]]
    lines.append("deltas are B - A")
    return "\n".join(lines)


def _delta_cell(values: dict[str, Any], side: str) -> str:
    if side == "A only":
        return _cell(values["a"])
    if side == "B only":
        return _cell(values["b"])
    if values["delta"] is not None:
        return _signed(values["delta"])
    return "-" if values["a"] is None and values["b"] is None else f"{_cell(values['a'])}->{_cell(values['b'])}"


def _signed(value: float) -> str:
    return ("+" if value > 0 else "") + _cell(value)
