"""The `fn` step service: SDK step functions behind a `StepService`."""

from __future__ import annotations

import os
from typing import Any

from faststream import FastStream
from prometheus_client import CollectorRegistry

from kafka_io import KafkaSettings
from schemas.steps import StepCommand
from steps.sdk.handler import StepHandler
from steps.sdk.resolve import resolve_call, shape_result
from steps.sdk.step import StepDefinition, StepError, invoke_step, load_steps
from steps.service import StepService

SERVICE = "fn"


class FunctionHandler(StepHandler):
    """Answers a command with the SDK step its resource names (see `steps.sdk.resolve`)."""

    def __init__(self, steps: dict[str, StepDefinition]) -> None:
        self.steps = steps

    async def run(self, command: StepCommand) -> Any:
        call = resolve_call(command.resource, command.parameters)
        definition = self.steps.get(call.name)
        if definition is None:
            # As AWS answers an invocation of a function that does not exist.
            raise StepError("Lambda.ResourceNotFoundException", f"Function not found: {call.name}")
        return shape_result(call, await invoke_step(definition, call.payload))


def fn_service(
    modules: list[str],
    *,
    settings: KafkaSettings | None = None,
    registry: CollectorRegistry | None = None,
    **options: Any,
) -> StepService:
    """A `fn` step service for the @step functions of `modules` (imported now: ImportError says which).

    `options` are passed to `StepService` (max_concurrency, remember, drain_seconds, ...).
    """
    handler = FunctionHandler(load_steps(modules))
    return StepService(SERVICE, handler, settings=settings, registry=registry, **options)


def app() -> FastStream:
    """`faststream run --factory steps.fn.service:app`: modules from $BATON_FN_MODULES (comma-separated).

    Kafka settings come from the environment (BATON_KAFKA_BOOTSTRAP, BATON_TOPIC_PREFIX, ...).
    """
    modules = [name.strip() for name in os.environ.get("BATON_FN_MODULES", "").split(",") if name.strip()]
    if not modules:
        raise RuntimeError("set BATON_FN_MODULES to the modules of @step functions, e.g. myapp.steps")
    return fn_service(modules).app()
