"""How values and errors are written into causes and history details, as Step Functions writes them."""

from __future__ import annotations

from typing import Any

from orchestrator.asl.dataflow import to_json
from schemas import resources


def plain(value: Any) -> str:
    """A value as AWS prints it inside a cause: strings bare, everything else as JSON."""
    return value if isinstance(value, str) else to_json(value)


def expression_text(value: Any) -> str:
    """The expression inside `{% ... %}`, as AWS quotes it in causes."""
    text = str(value).strip()
    if text.startswith("{%") and text.endswith("%}"):
        text = text[2:-2]
    return text.strip()


def json_type(value: Any) -> str:
    """JSON's name for a value's type (JSONata's result-type causes)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def error_details(error: str | None, cause: str | None) -> dict[str, Any]:
    """`error` and `cause` of a failure event, each only when there is one."""
    details: dict[str, Any] = {}
    if error is not None:
        details["error"] = error
    if cause is not None:
        details["cause"] = cause
    return details


def resource_details(resource: resources.Resource) -> dict[str, Any]:
    """`resourceType` / `resource` of Task events (Lambda function events carry neither)."""
    if resource.history_prefix == "LambdaFunction":
        return {}
    return {"resourceType": resource.resource_type, "resource": resource.resource_name}
