"""The local runner: a whole execution in-process, with the decider and an in-memory transport.

Task results come from a mock config (Step Functions Local's format) and/or Python steps written
with the steps SDK. Waits and retry back-off run on a virtual clock by default (instant) or in
real time. This is a shell around `orchestrator.asl.decider.decide`, not a second interpreter.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import random
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from orchestrator.asl.decider import Environment, decide, new_execution
from orchestrator.asl.execution import (
    Event,
    ExecutionFinished,
    ExecutionState,
    HistoryEvent,
    RunTask,
    StartExecution,
    StartTimer,
    TaskFailed,
    TaskSucceeded,
    TimerFired,
)
from orchestrator.asl.model import StateMachine
from orchestrator.local.mock_config import MockedResponse
from schemas.errors import BatonError
from schemas.resources import service_for
from schemas.steps import StepCommand
from steps.sdk.handler import StepHandler, run_to_outcome
from steps.sdk.resolve import resolve_call, shape_result
from steps.sdk.step import StepDefinition, StepError, invoke_step


class LocalRunError(BatonError):
    """The local run cannot go on (a missing mock or step); the message says which and where."""


# Services whose Tasks the step services answer on Kafka and `Integrations` answer in-process.
BUILT_IN_SERVICES = frozenset({"llm", "http", "retrieval", "review", "mcp"})

# An answer given for a state (a fixed result, a terminal prompt): the step command -> its outcome.
Answer = Callable[[RunTask], Awaitable[TaskSucceeded | TaskFailed]]


@dataclass
class ExecutionResult:
    status: str
    output: Any = None
    error: str | None = None
    cause: str | None = None
    history: list[HistoryEvent] = field(default_factory=list)
    budget: dict[str, Any] | None = None  # the budget and the spend (budget.Ledger.view), if any

    def as_dict(self, with_history: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "output": self.output, "error": self.error, "cause": self.cause}
        if self.budget is not None:
            out["budget"] = self.budget
        if with_history:
            out["history"] = [e.as_aws() for e in self.history]
        return out


class Integrations(Protocol):
    """The built-in services' handlers (llm, http, retrieval, ...), run in-process: the same
    handler code the step services run on Kafka (`steps/inprocess.py` builds them)."""

    async def handler_for(self, service: str) -> StepHandler | None:
        """The handler answering `service`'s Tasks, or None when this process does not run it."""


class TaskResolver:
    """Answers step commands: mocked responses first, then answers given per state (`--result`),
    then SDK steps by name, then the built-in integrations in-process."""

    def __init__(
        self, steps: dict[str, StepDefinition] | None = None, mocks: dict[str, MockedResponse] | None = None,
        *, integrations: Integrations | None = None, answers: Mapping[str, Answer] | None = None,
        execution_id: str = "arn:baton:states:local:execution:local:local",
    ) -> None:
        self.steps = steps or {}
        self.mocks = mocks
        self.integrations = integrations
        self.answers = dict(answers or {})
        self.execution_id = execution_id  # what a handler sees as the command's execution
        self.invocations: Counter[str] = Counter()

    async def run(self, command: RunTask) -> TaskSucceeded | TaskFailed:
        attempt = self.invocations[command.state_name]
        self.invocations[command.state_name] += 1
        if self.mocks is not None and command.state_name in self.mocks:
            mocked = self.mocks[command.state_name].for_attempt(attempt)
            if mocked is None:
                raise LocalRunError(
                    f"no mocked response for invocation {attempt} of state {command.state_name!r}"
                )
            if mocked.throw is not None:
                return TaskFailed(task_id=command.task_id, error=mocked.throw.error, cause=mocked.throw.cause)
            return TaskSucceeded(task_id=command.task_id, output=mocked.returns)
        answer = self.answers.get(command.state_name)
        if answer is not None:
            return await answer(command)
        return await self._run_step(command)

    async def _run_step(self, command: RunTask) -> TaskSucceeded | TaskFailed:
        call = resolve_call(command.resource, command.parameters)
        definition = self.steps.get(call.name) if call.name else None
        if definition is not None:
            try:
                result = await invoke_step(definition, call.payload)
            except StepError as exc:
                return TaskFailed(task_id=command.task_id, error=exc.error, cause=exc.cause)
            return TaskSucceeded(task_id=command.task_id, output=shape_result(call, result))
        service = service_for(command.resource)
        handler = await self.integrations.handler_for(service) if self.integrations is not None else None
        if handler is not None:
            return await self._run_handler(handler, service, command)
        if call.lambda_resource and self.mocks is None:
            # As AWS answers an invocation of a function that does not exist.
            return TaskFailed(
                task_id=command.task_id,
                error="Lambda.ResourceNotFoundException",
                cause=f"Function not found: {call.name}",
            )
        remedy = f"a step named {call.name or '...'!r} (--steps MODULE)"
        if service in BUILT_IN_SERVICES:
            remedy = f"a result for it (--result {command.state_name}=JSON)"
        if self.mocks is not None:
            remedy = f"a mocked response in the mock config's test case, or {remedy}"
        raise LocalRunError(
            f"state {command.state_name!r}: nothing answers resource {command.resource!r}; add {remedy}"
        )

    async def _run_handler(self, handler: StepHandler, service: str, command: RunTask) -> TaskSucceeded | TaskFailed:
        step_command = StepCommand(
            execution_id=self.execution_id, task_id=command.task_id, service=service, resource=command.resource,
            state_name=command.state_name, attempt=command.attempt, parameters=command.parameters,
            task_token=command.task_token, timeout_seconds=command.timeout_seconds,
            heartbeat_seconds=command.heartbeat_seconds)
        outcome = await run_to_outcome(handler, step_command)
        if outcome.handed_off:
            raise LocalRunError(f"state {command.state_name!r} waits for a callback no one in this process will "
                                f"send; give its result (--result {command.state_name}=JSON) or a mocked response")
        if not outcome.succeeded:
            return TaskFailed(task_id=command.task_id, error=outcome.error or "States.TaskFailed",
                              cause=outcome.cause, metadata=outcome.metadata)
        return TaskSucceeded(task_id=command.task_id, output=outcome.output, metadata=outcome.metadata)


async def run_execution(
    machine: StateMachine,
    execution_input: Any,
    *,
    resolver: TaskResolver,
    state_machine_name: str = "local",
    execution_name: str | None = None,
    real_time: bool = False,
    seed: int | None = None,
    limits: Mapping[str, Any] | None = None,
    budget: Any = None,
) -> ExecutionResult:
    """Run one execution to its end and return its status, output and history.

    `limits`: the decider's quotas (`Quotas.decider_limits()`), AWS's by default; `budget`: the
    start's ({"MaxTokens", "MaxCost"}, docs/budgets.md)."""
    name = execution_name or str(uuid.uuid4())
    rng = random.Random(seed)
    state: ExecutionState = new_execution(
        execution_id=f"arn:baton:states:local:execution:{state_machine_name}:{name}",
        name=name,
        state_machine_id=f"arn:baton:states:local:stateMachine:{state_machine_name}",
        state_machine_name=state_machine_name,
    )
    resolver.execution_id = state.execution_id  # what the handlers see (stream chunks are keyed by it)
    clock = time.time()
    events: deque[Event] = deque([StartExecution(input=execution_input, budget=budget)])
    timers: list[tuple[float, int, str]] = []
    history: list[HistoryEvent] = []
    order = 0
    while True:
        if not events:
            if not timers:
                raise LocalRunError("the execution is waiting for something no one will send (a callback?)")
            fire_at, _, timer_id = heapq.heappop(timers)
            if real_time:
                await asyncio.sleep(max(0.0, fire_at - time.time()))
                clock = max(clock, time.time())
            else:
                clock = max(clock, fire_at)
            events.append(TimerFired(timer_id=timer_id))
            continue
        event = events.popleft()
        if real_time:
            clock = max(clock, time.time())
        env = dataclasses.replace(Environment(now=datetime.fromtimestamp(clock, timezone.utc),
                                              seed=rng.getrandbits(64)), **(limits or {}))
        decision = decide(machine, state, event, env)
        state = decision.state
        for effect in decision.effects:
            if isinstance(effect, HistoryEvent):
                history.append(effect)
            elif isinstance(effect, ExecutionFinished):
                spend = state.budget.view() if state.budget is not None else None
                return ExecutionResult(effect.status.value, effect.output, effect.error, effect.cause, history, spend)
            elif isinstance(effect, StartTimer):
                order += 1
                heapq.heappush(timers, (effect.fire_at, order, effect.timer_id))
            elif isinstance(effect, RunTask):
                events.append(await resolver.run(effect))
