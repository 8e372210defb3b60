"""The Grafana dashboard only queries metrics that Baton's services export.

Every `baton_*` series named in a panel's PromQL must be produced by the metrics of the
orchestrator or of a step service (the base, the LLM and HTTP services), so a renamed metric
cannot leave a silently empty panel.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from orchestrator.runtime.metrics import OrchestratorMetrics
from steps.bookkeeping import StepMetrics
from steps.http.service import HttpMetrics
from steps.llm.flow_service import FlowMetrics
from steps.llm.metrics import LLMMetrics

DASHBOARD = Path(__file__).resolve().parents[2] / "infra" / "grafana" / "dashboards" / "baton.json"
SUFFIXES = {"counter": ["_total", "_created"], "histogram": ["_bucket", "_count", "_sum", "_created"],
            "gauge": [""], "summary": ["_count", "_sum", "_created"]}


def exported_series() -> set[str]:
    series: set[str] = set()
    for metrics in (OrchestratorMetrics, StepMetrics, LLMMetrics, FlowMetrics, HttpMetrics):
        registry = CollectorRegistry()  # one per service, as each serves its own /metrics
        metrics(registry)  # type: ignore[operator]
        series |= {family.name + suffix for family in registry.collect()
                   for suffix in SUFFIXES.get(family.type, [""])}
    return series


def queried_series() -> set[str]:
    expressions: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "expr" and isinstance(value, str):
                    expressions.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(json.loads(DASHBOARD.read_text(encoding="utf-8")))
    assert expressions, "the dashboard has no PromQL panels"
    return set(re.findall(r"\b(baton_[a-z0-9_]+)", " ".join(expressions)))


def test_every_panel_queries_an_exported_metric() -> None:
    missing = queried_series() - exported_series()
    assert not missing, f"the dashboard queries metrics no service exports: {sorted(missing)}"


def test_the_dashboard_covers_what_design_md_lists() -> None:
    queried = queried_series()
    for wanted in ("baton_executions_started_total", "baton_executions_finished_total",
                   "baton_state_transitions_total", "baton_step_duration_seconds_bucket",
                   "baton_llm_tokens_total", "baton_review_wait_seconds_bucket", "baton_dlq_total",
                   "baton_consumer_lag", "baton_open_executions", "baton_retries_total"):
        assert wanted in queried, wanted
