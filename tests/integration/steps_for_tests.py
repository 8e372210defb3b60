"""SDK steps the runtime tests deploy with the real `fn` step service (and the local runner)."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel

from steps.sdk import StepFailed, step
from steps.sdk.handler import StepOutput


class Pair(BaseModel):
    a: int
    b: int


@step("echo")
async def echo(payload: Any) -> Any:
    return payload


@step("noop")
async def noop(payload: Any) -> Any:
    return payload


@step("add")
async def add(pair: Pair) -> dict[str, int]:
    return {"sum": pair.a + pair.b}


@step("flaky")
async def flaky(payload: Any) -> Any:
    """Fails until the state's third attempt: the definition passes $$.State.RetryCount."""
    if payload["retry"] < 2:
        raise StepFailed("Model.Throttled", f"attempt {payload['retry']} throttled")
    return {"ok": True, "attempts": payload["retry"] + 1}


class ModelOverloaded(Exception):
    pass


@step("overloaded")
async def overloaded(payload: Any) -> Any:
    raise ModelOverloaded("the large model is overloaded")


@step("slow")
async def slow(payload: Any) -> Any:
    await asyncio.sleep(float(payload.get("seconds", 0.2)))
    return payload


@step("request_approval")
async def request_approval(payload: Any) -> None:
    """A callback task: the decision arrives later on the review topic, with the task token."""
    return None


@step("sized")
async def sized(payload: Any) -> Any:
    """A result of exactly `payload["bytes"]` bytes of compact JSON: {"s": "xx...x"}."""
    return {"s": "x" * (int(payload["bytes"]) - len('{"s":""}'))}


@step("priced")
async def priced(payload: Any) -> StepOutput:
    """Reports `payload["cost_usd"]` as its cost, as a step calling a paid API would."""
    return StepOutput({"charged": payload["cost_usd"]}, metadata={"cost_usd": payload["cost_usd"]})
