"""Topic names (DESIGN.md, "Topics"), all under one configurable prefix."""

from __future__ import annotations

from dataclasses import dataclass

# The step services Baton ships, each with its own command topic.
STEP_SERVICES: tuple[str, ...] = ("fn", "llm", "http", "review", "retrieval", "mcp")


@dataclass(frozen=True)
class Topics:
    prefix: str = "baton"

    def _name(self, suffix: str) -> str:
        return f"{self.prefix}.{suffix}"

    @property
    def start(self) -> str:
        """Start, stop and redrive requests (user-published), keyed by execution id."""
        return self._name("executions.start")

    @property
    def results(self) -> str:
        return self._name("steps.results")

    @property
    def review_requests(self) -> str:
        return self._name("review.requests")

    @property
    def review_decisions(self) -> str:
        return self._name("review.decisions")

    @property
    def state(self) -> str:
        """Compacted changelog of execution state."""
        return self._name("executions.state")

    @property
    def history(self) -> str:
        return self._name("executions.history")

    @property
    def events(self) -> str:
        """Terminal status of executions."""
        return self._name("executions.events")

    @property
    def streams(self) -> str:
        return self._name("streams")

    @property
    def dlq(self) -> str:
        return self._name("dlq")

    @property
    def statemachines(self) -> str:
        return self._name("statemachines")

    def commands(self, service: str) -> str:
        """The command topic of one step service."""
        return self._name(f"steps.{service}.commands")

    @property
    def orchestrator_inputs(self) -> list[str]:
        """What the orchestrator consumes: co-partitioned by execution id."""
        return [self.start, self.results, self.review_decisions]

    def all_fixed(self) -> list[str]:
        return [self.start, self.results, self.review_requests, self.review_decisions, self.state,
                self.history, self.events, self.streams, self.dlq, self.statemachines]

    @property
    def compacted(self) -> set[str]:
        return {self.state, self.statemachines}
