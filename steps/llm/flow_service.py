"""The LLM step service with flow control (steps/llm/flow.py) across all of its replicas.

Design: Kafka is the lock. The orchestrator keys the llm service's commands by model
(`BATON_FLOW_CONTROLLED_SERVICES=["llm"]`, schemas/flow.py), so every command of a model is on one
partition, and the consumer group gives that partition to one replica at a time: that replica
owns the model's `Gate` and no other replica calls the model. Commands are read ahead (up to
`max_queued`) and wait in memory for admission while their offsets stay uncommitted (the commit
point is the oldest command not finished, steps/bookkeeping.py), so a waiting command lives in
Kafka until its answer is published:

- a crash: the new owner reads from the committed offset and admits again what was waiting or
  running (a call in flight at the crash may reach the provider twice; its result is published
  with the same task id, and the orchestrator accepts one result per task);
- a rebalance (a replica joins or stops): the partition is released only after its calls in
  flight have ended and been committed, and its waiting commands are dropped uncommitted, so the
  next owner admits each once and the model never has two owners calling it at once;
- a provider's 429: the gate pauses for Retry-After and the command waits again (up to
  `max_rate_limit_retries` times), instead of failing the task into ASL Retry at full speed.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import re
import time
from dataclasses import dataclass

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from schemas.flow import FLOW_PARAMETER
from schemas.steps import StepCommand, StepResult
from steps.bookkeeping import MAX_COMMIT_METADATA, finished_runs_metadata, parse_finished_runs
from steps.llm.config import LLMSettings
from steps.llm.errors import InvalidParameters, RateLimited
from steps.llm.flow import FlowControlSettings, FlowLimit, Gate, Permit
from steps.service import StepService

log = logging.getLogger(__name__)
_RETRY_AFTER = re.compile(r"retry after ([0-9.]+) s")


class FlowMetrics:
    """Queued, throttled and wait time, by model (the Task's name) and tenant."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["model", "tenant"]
        self.queued = Gauge("baton_llm_flow_queued", "LLM calls waiting for admission now.", labels,
                            registry=registry)
        self.throttled = Counter(
            "baton_llm_flow_throttled",
            "LLM calls that had to wait, by what held them (concurrency, tenant_concurrency, requests, "
            "tokens, retry_after, queue) or a provider 429 answered by waiting (provider_429).",
            [*labels, "reason"], registry=registry)
        self.wait = Histogram("baton_llm_flow_wait_seconds", "From a command's arrival to its admission.",
                              labels, registry=registry,
                              buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900))


@dataclass(frozen=True)
class Ticket:
    """What the flow controller needs to know of one command."""

    gate: Gate | None  # None: no limit applies to its model
    model: str
    tenant: str
    priority: int
    tokens: int  # the estimate reserved at admission (prompt size / 4 + MaxTokens)


class FlowController:
    """The gates of one replica, made on first use, one per limited model."""

    def __init__(self, settings: LLMSettings, metrics: FlowMetrics) -> None:
        self.llm = settings
        self.settings: FlowControlSettings = settings.flow_control
        self.metrics = metrics
        self._gates: dict[str, Gate] = {}
        self._seeds: dict[str, list[tuple[float, int, int]]] = {}  # windows inherited before first use

    def classify(self, command: StepCommand) -> Ticket:
        """The command's gate, tenant, priority and token estimate; InvalidParameters if
        FlowControl is malformed."""
        params = command.parameters if isinstance(command.parameters, dict) else {}
        flow = params.get(FLOW_PARAMETER) or {}
        if not isinstance(flow, dict) or set(flow) - {"Tenant", "Priority"}:
            raise InvalidParameters(f"{FLOW_PARAMETER} must be an object with Tenant (a string) and Priority "
                                    f"(an integer, higher first); got {json.dumps(flow)[:200]}")
        tenant = flow.get("Tenant", self.settings.default_tenant)
        priority = flow.get("Priority", 0)
        if not isinstance(tenant, str | int) or isinstance(tenant, bool):
            raise InvalidParameters(f"{FLOW_PARAMETER}.Tenant must be a string, not {tenant!r}")
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise InvalidParameters(f"{FLOW_PARAMETER}.Priority must be an integer, not {priority!r}")
        model = params.get("Model") or params.get("ModelId")
        provider = params.get("Provider")
        try:
            route = self.llm.resolve(provider if isinstance(provider, str) else None,
                                     model if isinstance(model, str) else None)
        except KeyError:
            return Ticket(None, str(model), str(tenant), priority, 0)  # the handler says what is wrong
        limit = self.settings.limit_for(route.provider, route.model)
        if limit is None and self.settings.tenant_max_concurrency is None:
            return Ticket(None, route.model, str(tenant), priority, 0)
        name = f"{route.provider}/{route.model}"
        gate = self._gates.get(name)
        if gate is None:
            throttled = self.metrics.throttled

            def on_throttled(tenant: str, reason: str, model: str = route.model) -> None:
                throttled.labels(model, tenant, reason).inc()

            gate = self._gates[name] = Gate(name, limit or FlowLimit(), self.settings, on_throttled=on_throttled)
            if name in self._seeds:
                gate.seed(self._seeds.pop(name), time.time())
        max_tokens = params.get("MaxTokens")
        estimate = (max_tokens if isinstance(max_tokens, int) else self.settings.default_max_tokens) \
            + len(json.dumps(params, default=str)) // 4
        return Ticket(gate, route.model, str(tenant), priority, estimate)

    def inherit(self, windows: dict[str, list[tuple[float, int, int]]]) -> None:
        """Count the requests a partition's previous owner made in each model's window."""
        for name, snapshot in windows.items():
            gate = self._gates.get(name)
            if gate is not None:
                gate.seed(snapshot, time.time())
            else:
                self._seeds.setdefault(name, []).extend(snapshot)

    async def admit(self, ticket: Ticket) -> Permit:
        assert ticket.gate is not None
        queued = self.metrics.queued.labels(ticket.model, ticket.tenant)
        queued.inc()
        try:
            permit = await ticket.gate.admit(ticket.tenant, ticket.priority, ticket.tokens)
        finally:
            queued.dec()
        self.metrics.wait.labels(ticket.model, ticket.tenant).observe(permit.waited)
        return permit


class FlowControlledService(StepService):
    """A step service whose calls pass the replica's gates (see the module docstring); mixed
    into the LLM service by steps/llm/service.py. `attach_flow` before it starts."""

    flow: FlowController

    def attach_flow(self, controller: FlowController) -> None:
        self.flow = controller
        self._partition_of: dict[str, TopicPartition] = {}
        self._waiting: set[str] = set()  # task ids waiting for admission
        # Per partition, runs [start, end) of offsets its last owner finished past its commit point.
        self._finished_before: dict[TopicPartition, list[tuple[int, int]]] = {}
        self._last_commit: dict[TopicPartition, tuple[int, str]] = {}
        self._gates_of: dict[TopicPartition, set[Gate]] = {}  # the models whose commands a partition holds

    async def _execute(self, command: StepCommand, tp: TopicPartition, offset: int) -> None:
        if self._finished_earlier(tp, offset):
            self._done(tp, offset)  # its result was published before the last owner committed
            return
        self._partition_of[command.task_id] = tp
        try:
            await super()._execute(command, tp, offset)
        finally:
            self._partition_of.pop(command.task_id, None)

    async def _outcome(self, command: StepCommand, started: float) -> StepResult | None:
        try:
            ticket = self.flow.classify(command)
        except InvalidParameters as exc:
            return StepResult(execution_id=command.execution_id, kind="failed", task_id=command.task_id,
                              error=exc.error, cause=exc.cause, result_key=command.result_key)
        if ticket.gate is None:
            return await super()._outcome(command, started)
        tp = self._partition_of.get(command.task_id)
        if tp is not None:
            self._gates_of.setdefault(tp, set()).add(ticket.gate)
        for retry in range(self.flow.settings.max_rate_limit_retries + 1):
            self._waiting.add(command.task_id)
            try:
                permit = await self.flow.admit(ticket)
            finally:
                self._waiting.discard(command.task_id)
            result: StepResult | None = None
            try:
                result = await super()._outcome(command, started)
            finally:
                permit.release(_used_tokens(result))
            pause = self._retry_after(result)
            if pause is None or retry == self.flow.settings.max_rate_limit_retries:
                break
            ticket.gate.back_off(pause)
            self.flow.metrics.throttled.labels(ticket.model, ticket.tenant, "provider_429").inc()
        return result

    def _retry_after(self, result: StepResult | None) -> float | None:
        """Seconds to pause after a provider's 429 (its Retry-After, else the default); None: not a 429."""
        if result is None or result.kind != "failed" or result.error != RateLimited.error:
            return None
        seconds = result.metadata.get("retry_after_seconds")
        if not isinstance(seconds, int | float):
            found = _RETRY_AFTER.search(result.cause or "")
            seconds = float(found.group(1)) if found else None
        return float(seconds) if seconds else self.flow.settings.retry_after_seconds

    # --- commits that remember what finished out of order ------------------------------------------
    # Admission takes commands out of order (priorities, tenants), so many may finish past the
    # oldest one still waiting, the commit point. Their runs go into the commit's metadata, and
    # the partition's next owner (after a crash too) skips them instead of calling the model again.

    def _finished_earlier(self, tp: TopicPartition, offset: int) -> bool:
        runs = self._finished_before.get(tp)
        if not runs:
            return False
        i = bisect.bisect_right(runs, (offset, float("inf"))) - 1
        return i >= 0 and runs[i][0] <= offset < runs[i][1]

    async def _partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        consumer = self.subscriber.consumer
        if consumer is None or not assigned:
            return
        try:  # aiokafka's public `committed` drops the metadata
            committed = await consumer._coordinator.fetch_committed_offsets(list(assigned))
        except KafkaError as exc:  # only costs calls made again
            log.warning("step %s: could not read the committed metadata of %s: %s", self.service, assigned, exc)
            return
        for tp, position in committed.items():
            runs, _, windows = (position.metadata or "").partition("\n")
            self._finished_before[tp] = parse_finished_runs(position.offset, runs)
            if windows:
                try:
                    self.flow.inherit({name: [(float(t), int(n), int(k)) for t, n, k in buckets]
                                       for name, buckets in json.loads(windows).items()})
                except (ValueError, TypeError):
                    log.warning("step %s: the window in %s's commit metadata is unreadable", self.service, tp)

    async def _commit(self) -> None:
        async with self._commit_lock:
            consumer = self.subscriber.consumer
            if consumer is None:
                return
            wanted: dict[TopicPartition, tuple[int, str]] = {}
            for tp in consumer.assignment():
                progress = self._offsets.progress(tp)
                if progress is not None:
                    mark = (progress[0], self._commit_metadata(tp, *progress))
                    if self._last_commit.get(tp) != mark:
                        wanted[tp] = mark
            if not wanted:
                return
            try:
                await consumer.commit(wanted)
            except KafkaError as exc:  # e.g. a rebalance in progress: the next commit catches up
                log.warning("step %s: offset commit failed: %s", self.service, exc)
                return
            self._last_commit.update(wanted)
            self._offsets.committed({tp: mark for tp, (mark, _) in wanted.items()})

    def _commit_metadata(self, tp: TopicPartition, mark: int, runs: list[tuple[int, int]]) -> str:
        """The runs finished past `mark`, then (after a newline) the windows of the partition's models."""
        wall = time.time()
        windows = json.dumps({gate.name: gate.window_snapshot(wall) for gate in self._gates_of.get(tp, ())},
                             separators=(",", ":")) if tp in self._gates_of else ""
        if len(windows) > MAX_COMMIT_METADATA // 2:  # many models on one partition: not handed over
            windows = ""
        return finished_runs_metadata(mark, runs, MAX_COMMIT_METADATA - len(windows) - 1) + "\n" + windows

    async def _partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await asyncio.sleep(0)  # tasks created for the last records have entered _execute
        waiting: list[asyncio.Task[None]] = []
        running: list[asyncio.Task[None]] = []
        for task_id, task in list(self._running.items()):
            if self._partition_of.get(task_id) in revoked:
                (waiting if task_id in self._waiting else running).append(task)
        for task in waiting:  # uncommitted: the partition's next owner admits them
            task.cancel()
        if running:  # the next owner starts after these calls end, so no call is made twice
            await asyncio.wait(running, timeout=self._drain_seconds)
        await asyncio.gather(*waiting, return_exceptions=True)
        await super()._partitions_revoked(revoked)
        for tp in revoked:
            self._last_commit.pop(tp, None)
            self._finished_before.pop(tp, None)
            self._gates_of.pop(tp, None)

    async def _drain(self) -> None:
        for task_id in list(self._waiting):  # not started: left to the next owner, uncommitted
            task = self._running.get(task_id)
            if task is not None:
                task.cancel()
        await super()._drain()


def _used_tokens(result: StepResult | None) -> int | None:
    if result is None:
        return None
    used = [result.metadata.get("input_tokens"), result.metadata.get("output_tokens")]
    return sum(n for n in used if isinstance(n, int)) if any(isinstance(n, int) for n in used) else None

