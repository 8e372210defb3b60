"""An item's record from what ran (pure): a TestState report, or a whole execution's usage rows.

Tokens, latency and time to first token are the LLM step's own measurements (its metadata, as
TestState's `inspectionData.llm` shows them); the cost is the LLM configuration's, unless the
eval gives notional prices for the model, which then price the same tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.evaluation.report import ItemRecord
from steps.llm.config import Price

INVALID_ANSWER = "Baton.LLM.InvalidResponse"  # the answer is not JSON or does not match JsonSchema


def record_from_test_state(variant: str, item_id: str, report: Mapping[str, Any],
                           prices: Mapping[str, Price]) -> ItemRecord:
    """A TestState report as a record: SUCCEEDED is completed; FAILED, CAUGHT_ERROR (a Catch
    took the error) and RETRIABLE (a Retry would run it again) are failures by their error."""
    inspection = report.get("inspectionData") or {}
    llm = inspection.get("llm") or {}
    result = inspection.get("result")
    completed = report.get("status") == "SUCCEEDED"
    record = ItemRecord(variant=variant, item_id=item_id, status="completed" if completed else "failed",
                        error=None if completed else str(report.get("error") or report.get("status")),
                        cause=None if completed else report.get("cause"),
                        output=report.get("output") if completed else None,
                        text=result.get("Text") if isinstance(result, dict) and isinstance(result.get("Text"), str)
                        else None,
                        input_tokens=llm.get("inputTokens"), output_tokens=llm.get("outputTokens"),
                        llm_latency_ms=llm.get("latencyMs"), ttft_ms=llm.get("timeToFirstTokenMs"))
    record.cost_usd = cost(llm.get("model"), record.input_tokens, record.output_tokens, llm.get("costUsd"), prices)
    if record.error == INVALID_ANSWER:
        record.schema_valid = False
    return record


def record_from_execution(variant: str, item_id: str, status: str, output: Any, error: str | None,
                          cause: str | None, usage: list[dict[str, Any]], prices: Mapping[str, Price]) -> ItemRecord:
    """A whole execution as a record: its output, and the usage of every Task summed."""
    completed = status == "SUCCEEDED"
    record = ItemRecord(variant=variant, item_id=item_id, status="completed" if completed else "failed",
                        error=None if completed else (error or status), cause=None if completed else cause,
                        output=output if completed else None)
    if usage:
        record.input_tokens = sum(row.get("input_tokens") or 0 for row in usage)
        record.output_tokens = sum(row.get("output_tokens") or 0 for row in usage)
        costs = [cost(row.get("model"), row.get("input_tokens"), row.get("output_tokens"), row.get("cost_usd"), prices)
                 for row in usage]
        known = [c for c in costs if c is not None]
        record.cost_usd = round(sum(known), 10) if known else None
        record.llm_latency_ms = round(sum(row.get("ms") or 0 for row in usage), 3)
    return record


def cost(model: Any, input_tokens: int | None, output_tokens: int | None, reported: Any,
         prices: Mapping[str, Price]) -> float | None:
    """The notional price when the eval gives one for the model, else what the LLM step reported."""
    price = prices.get(model) if isinstance(model, str) else None
    if price is not None:
        return price.cost(input_tokens, output_tokens)
    return float(reported) if isinstance(reported, (int, float)) else None
