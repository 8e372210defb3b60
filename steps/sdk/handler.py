"""What a step service runs for each command: a `StepHandler`, and the shapes it answers with.

The contract sits in the SDK (below the Kafka shell in `steps/service.py`) because two shells run
the same handlers: the step services on Kafka, and the in-process path of `baton execute`,
`baton test-state`, the API's TestState and `baton eval` (one implementation of each step).
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from schemas.steps import StepCommand
from steps.sdk.step import StepError

__all__ = ["FunctionHandler", "Handler", "Outcome", "Pending", "StepHandler", "StepOutput", "run_to_outcome"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pending:
    """A `.sync` job that was started and has not finished: poll it after `poll_after_seconds`."""

    job_id: str
    poll_after_seconds: float = 5.0


@dataclass(frozen=True)
class StepOutput:
    """A task's output plus metadata to record with the result (usage, model, ...)."""

    value: Any
    metadata: dict[str, Any] = field(default_factory=dict)


class StepHandler(ABC):
    """What a step service does with a command. Implement `run`; `poll` for `.sync` jobs."""

    @abstractmethod
    async def run(self, command: StepCommand) -> Any:
        """The task's output (JSON-ready, or a `StepOutput`), or a `Pending` job to poll.

        Raise `StepError(error, cause)` for an ASL error; any other exception fails the task
        with its class name as the error.
        """

    async def poll(self, job_id: str) -> Any:
        """A `.sync` job's output once it has finished, `Pending` while it runs; raise if it failed."""
        raise StepError("States.Runtime", f"{type(self).__name__} returned Pending but does not poll jobs")

    async def cancel(self, job_id: str) -> None:
        """Stop a `.sync` job whose task was cancelled or timed out (best effort; default: nothing)."""


class FunctionHandler(StepHandler):
    def __init__(self, function: Callable[[StepCommand], Awaitable[Any]]) -> None:
        self._function = function

    async def run(self, command: StepCommand) -> Any:
        return await self._function(command)


Handler = StepHandler | Callable[[StepCommand], Awaitable[Any]]


@dataclass(frozen=True)
class Outcome:
    """How a command ended in a handler: succeeded with `output`, failed with `error`/`cause`, or
    handed off (a `.waitForTaskToken` task whose result arrives later with the token)."""

    succeeded: bool
    output: Any = None
    error: str | None = None
    cause: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    handed_off: bool = False


async def run_to_outcome(handler: StepHandler, command: StepCommand) -> Outcome:
    """Run `handler` on `command` to its outcome, as every shell must: poll a `.sync` job until it
    finishes, bound the run by `TimeoutSeconds` (States.Timeout; the job is cancelled), turn a
    `StepError` into its ASL error (keeping what the failure cost, e.g. an LLM's usage) and any
    other exception into a failure named after its class (a handler bug never crashes a shell).
    `metadata["duration_ms"]` is the time spent. Cancelling the caller cancels the job too."""
    started = time.monotonic()
    deadline = asyncio.timeout(command.timeout_seconds)
    job: str | None = None

    def failed(error: str, cause: str | None, metadata: dict[str, Any] | None = None) -> Outcome:
        return Outcome(False, error=error, cause=cause, metadata={**(metadata or {}), "duration_ms": _ms(started)})

    try:
        async with deadline:
            output = await handler.run(command)
            while isinstance(output, Pending):
                job = output.job_id
                await asyncio.sleep(output.poll_after_seconds)
                output = await handler.poll(output.job_id)
            job = None
    except asyncio.CancelledError:
        await _cancel_job(handler, job)
        raise
    except StepError as exc:
        return failed(exc.error, exc.cause, getattr(exc, "metadata", None))
    except TimeoutError as exc:
        if not deadline.expired():
            return failed(type(exc).__name__, str(exc))
        await _cancel_job(handler, job)
        return failed("States.Timeout", f"task did not finish within {command.timeout_seconds} seconds")
    except Exception as exc:  # a handler bug is a task failure, never a crash
        return failed(type(exc).__name__, str(exc))
    if command.task_token is not None and command.resource.endswith(".waitForTaskToken"):
        return Outcome(True, handed_off=True)
    metadata: dict[str, Any] = {}
    if isinstance(output, StepOutput):
        output, metadata = output.value, dict(output.metadata)
    metadata.setdefault("duration_ms", _ms(started))
    return Outcome(True, output=output, metadata=metadata)


async def _cancel_job(handler: StepHandler, job: str | None) -> None:
    if job is None:
        return
    try:
        await asyncio.wait_for(handler.cancel(job), timeout=5)
    except Exception:  # best effort: the job may already be gone
        log.warning("%s: could not cancel job %s", type(handler).__name__, job, exc_info=True)


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 3)
