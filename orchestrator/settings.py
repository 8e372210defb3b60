"""The orchestrator's configuration, read from the environment (prefix BATON_) and passed in
explicitly. How to reach Kafka is `kafka_io.KafkaSettings`, shared with the step services."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# A duration: seconds as a number ("3600", "1.5"), or numbers with units d, h, m (minutes) and s:
# "90d", "14d", "12h", "30m", "45s", "1d12h".
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([dhms])", re.IGNORECASE)
_UNIT_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
DEFAULT_RETENTION_SECONDS = 14 * 86_400  # AWS's redrive window; docs/limits.md "Retention"


def parse_duration(value: object) -> float:
    """Seconds in `value`: a number of seconds, a `timedelta`, or text such as "90d", "12h",
    "30s", "1d12h" or "3600". ValueError for anything else, or a value not above zero."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            compact = re.sub(r"\s+", "", text)
            parts = _DURATION_PART.findall(compact)
            if not parts or "".join(n + u for n, u in parts) != compact:
                raise ValueError(f"not a duration: {value!r} (give seconds, or a number with a unit d, h, m "
                                 "or s, such as 90d, 12h, 30s or 1d12h)") from None
            seconds = sum(float(number) * _UNIT_SECONDS[unit.lower()] for number, unit in parts)
    else:
        raise ValueError(f"not a duration: {value!r}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"a duration must be above zero and finite: {value!r}")
    return seconds


class Quotas(BaseSettings):
    """The limits one execution lives within, AWS Step Functions' by default (docs/limits.md).

    Checked where data enters (`baton start`, the API, the start topic, the registry) and by the
    decider as the execution runs, so one oversized or runaway execution fails alone with AWS's
    error name instead of taking an orchestrator down. Env: BATON_MAX_PAYLOAD_BYTES, ..."""

    model_config = SettingsConfigDict(env_prefix="BATON_", extra="ignore")

    # An execution's input, a state's input and output, a task's result: AWS's 256 KiB.
    max_payload_bytes: int = Field(default=256 * 1024, ge=1024)
    # A state machine definition: AWS's 1 MiB (the JSON as sent).
    max_definition_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Events in one execution's history: AWS's 25,000; the execution then fails (States.Runtime).
    max_history_events: int = Field(default=25_000, ge=10)
    # States one decision runs before it yields to other executions (continuing in the next
    # transaction): a Pass/Choice loop that never waits cannot hold an instance. Not an AWS quota.
    max_transitions_per_decision: int = Field(default=1_000, ge=1)
    # JSON nesting depth of an input or body: past it a request is refused (400), not a crash in
    # a recursive parser. Not an AWS quota (AWS refuses by size only). At most 190: pydantic's JSON
    # parser refuses deeper documents itself (its limit is 200, counting the request's own levels).
    max_json_depth: int = Field(default=128, ge=8, le=190)
    # One API request body: AWS's 1 MB per request (so an inline definition at its quota leaves no
    # room for anything else, as with AWS's CreateStateMachine).
    max_request_bytes: int = Field(default=1024 * 1024, ge=1024)

    def decider_limits(self) -> dict[str, int]:
        """The quotas the decider applies, as `Environment` keyword arguments."""
        return {"max_payload_bytes": self.max_payload_bytes, "max_history_events": self.max_history_events,
                "max_transitions_per_decision": self.max_transitions_per_decision}


class DecisionSettings(BaseSettings):
    """How long the API and `baton review` wait, after posting a task decision (SendTaskSuccess,
    SendTaskFailure, SendTaskHeartbeat), to report whether the orchestrator applied it (200) or
    not yet (202). Env: BATON_DECISION_WAIT_SECONDS."""

    model_config = SettingsConfigDict(env_prefix="BATON_", extra="ignore")

    decision_wait_seconds: float = Field(default=5.0, ge=0, le=60)


class OrchestratorSettings(BaseSettings):
    """The orchestrator service. Env: BATON_GROUP_ID, BATON_INSTANCE_ID, BATON_TOKEN_SECRET, ..."""

    model_config = SettingsConfigDict(env_prefix="BATON_", extra="ignore")

    group_id: str | None = None  # default: "<topic prefix>-orchestrator"
    # Stable across restarts of the same instance: it names the transactional producer, so a
    # restarted instance fences its crashed predecessor and aborts its open transaction.
    instance_id: str = "orchestrator-1"
    token_secret: SecretStr = SecretStr("baton-development-secret-change-me")
    max_batch: int = Field(default=500, ge=1)  # events per Kafka transaction at most
    # Let a batch gather events this long before its transaction begins (Kafka Streams' commit
    # interval). 0: commit as soon as the previous transaction ends, the lowest latency. A few ms
    # trade that much latency per step for fewer, larger transactions (less CPU per transition).
    commit_interval_ms: float = Field(default=0.0, ge=0, le=10_000)
    metrics_port: int | None = 9400
    metrics_host: str = "127.0.0.1"  # 0.0.0.0 in a container, so Prometheus can scrape it
    transaction_timeout_ms: int = 15_000
    # aiokafka's retry delay after CONCURRENT_TRANSACTIONS (its fixed 20 ms halved throughput;
    # see orchestrator.runtime.service._tune_transaction_retry).
    concurrent_transactions_backoff_ms: float = Field(default=2.0, gt=0, le=1000)
    # How long a closed execution (SUCCEEDED, FAILED, TIMED_OUT, ABORTED) is kept after it closed,
    # in seconds; BATON_RETENTION takes seconds or a duration ("14d", "12h", "30s"). Within it the
    # execution can be described, redriven and its name is taken (a start by it is idempotent);
    # then it is removed from the orchestrator, the state topic and the read model, and its name
    # starts a new execution. Default 14 days, AWS's redrive window (docs/limits.md, "Retention").
    retention: float = Field(default=DEFAULT_RETENTION_SECONDS, ge=1)
    # Where the orchestrator keeps its executions on disk (BATON_STATE_DIR, the folder `baton dev`
    # keeps its state in): one SQLite store per owned state-topic partition, under
    # orchestrator/<group id>/<instance id>/. Deleting it costs one rebuild from the state topic.
    state_dir: Path = Path(".baton")
    # Step services whose run commands are keyed by model (schemas/flow.py) instead of placed on
    # the execution's partition, so one replica owns each model's flow control: ["llm"] when the
    # LLM service has `flow_control` limits. Env: BATON_FLOW_CONTROLLED_SERVICES='["llm"]'.
    flow_controlled_services: list[str] = []

    @field_validator("retention", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)
