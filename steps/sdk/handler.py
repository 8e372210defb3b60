"""What a step service runs for each command: a `StepHandler`, and the shapes it answers with.

The contract sits in the SDK (below the Kafka shell in `steps/service.py`) because two shells run
the same handlers: the step services on Kafka, and the in-process path of `baton execute`,
`baton test-state`, the API's TestState and `baton eval` (one implementation of each step).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from schemas.steps import StepCommand
from steps.sdk.step import StepError

__all__ = ["FunctionHandler", "Handler", "Pending", "StepHandler", "StepOutput"]


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
