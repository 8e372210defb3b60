"""Run the orchestrator as a process: metrics endpoint, signal handling, clean shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal

from prometheus_client import start_http_server

from infra.stack import register_stack_info
from kafka_io import KafkaSettings
from orchestrator.runtime.metrics import OrchestratorMetrics
from orchestrator.runtime.service import Orchestrator
from orchestrator.settings import OrchestratorSettings


async def serve(kafka: KafkaSettings, settings: OrchestratorSettings) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    metrics = OrchestratorMetrics()
    register_stack_info(metrics.registry, kafka)  # which stack this is, for `baton dev` (infra.stack)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=metrics.registry)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await Orchestrator(kafka, settings, metrics).run(stop)
