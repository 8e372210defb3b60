"""The `llm` step service: the handler (`handler.py`) on the command topic of `llm`, streaming
tokens to `baton.streams`, and, when the orchestrator keys its commands by model
(BATON_FLOW_CONTROLLED_SERVICES), under flow control (`flow_service.py`).
"""

from __future__ import annotations

from typing import Any

import httpx
from faststream import FastStream
from prometheus_client import CollectorRegistry

from kafka_io import KafkaSettings
from steps.llm.config import ConfigError, LLMSettings, load_settings
from steps.llm.flow_service import FlowControlledService, FlowController, FlowMetrics
from steps.llm.handler import SERVICE, LLMHandler
from steps.service import StepService


class LLMStepService(StepService):
    """The llm `StepService`: also closes the providers' connection pools when it stops."""

    llm: LLMHandler

    async def publish_record(self, topic: str, value: bytes, key: bytes) -> object:
        """Publish one record and wait for the broker's acknowledgement (used for stream chunks)."""
        return await self.broker.publish(value, topic, key=key)

    async def _drain(self) -> None:
        try:
            await super()._drain()
        finally:
            await self.llm.aclose()


class FlowControlledLLMService(FlowControlledService, LLMStepService):
    """The llm service with `flow_control` limits (flow_service.py)."""


def llm_service(settings: LLMSettings | None = None, *, kafka: KafkaSettings | None = None,
                registry: CollectorRegistry | None = None, transport: httpx.AsyncBaseTransport | None = None,
                **options: Any) -> LLMStepService:
    """An llm step service. Settings default to $BATON_LLM_CONFIG_FILE plus the environment.

    `options` are passed to `StepService` (max_concurrency, remember, drain_seconds, ...).
    """
    kafka = kafka or KafkaSettings()
    registry = registry or CollectorRegistry()
    handler = LLMHandler(settings or load_settings(), registry=registry, streams_topic=kafka.topics.streams,
                         transport=transport)
    flow = handler.settings.flow_control
    if flow.enabled:  # commands wait at the gates, not at the service's own concurrency bound
        options["max_concurrency"] = flow.max_queued
        service: LLMStepService = FlowControlledLLMService(SERVICE, handler, settings=kafka, registry=registry,
                                                           **options)
        assert isinstance(service, FlowControlledService)
        service.attach_flow(FlowController(handler.settings, FlowMetrics(registry)))
    else:
        service = LLMStepService(SERVICE, handler, settings=kafka, registry=registry, **options)
    service.llm = handler
    handler.send = service.publish_record
    return service


def app() -> FastStream:
    """`faststream run --factory steps.llm.service:app` (config: $BATON_LLM_CONFIG_FILE, BATON_LLM_*)."""
    try:
        return llm_service().app()
    except ConfigError as exc:
        raise RuntimeError(str(exc)) from None
