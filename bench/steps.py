"""The no-op step the benchmarks deploy with the fn service."""

from typing import Any

from steps.sdk import step


@step("noop")
async def noop(payload: Any) -> Any:
    return payload
