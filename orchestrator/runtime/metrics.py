"""The orchestrator's Prometheus metrics (names shared with infra/grafana's dashboard)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class OrchestratorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # Per state machine and version ("draft" for an unpublished definition: the registry's
        # draft or one sent inline), so a dashboard compares two versions side by side.
        per_version = ["state_machine", "version"]
        self.started = Counter("baton_executions_started", "Executions started", per_version, registry=r)
        self.finished = Counter("baton_executions_finished", "Executions finished", ["status", *per_version],
                                registry=r)
        self.execution_seconds = Histogram(
            "baton_execution_duration_seconds", "Execution duration, start to end", ["status", *per_version],
            registry=r, buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
        )
        # From the step results' metadata (`usage.input_tokens`/`output_tokens`, `cost_usd`), so
        # token use and cost compare per version too (baton_llm_tokens_total is per model).
        self.execution_tokens = Counter("baton_execution_tokens", "LLM tokens used by executions",
                                        [*per_version, "direction"], registry=r)
        self.execution_cost = Counter("baton_execution_cost_usd", "Cost reported by steps, in USD", per_version,
                                      registry=r)
        # Budgets (orchestrator/asl/budget.py): LLM calls refused or made to wait for room, and each
        # execution's spend when it ends (charged from its LLM calls' usage).
        self.budget_refused = Counter("baton_budget_refused", "LLM calls refused: the budget was spent "
                                      "(Baton.LLM.BudgetExceeded)", per_version, registry=r)
        self.budget_waits = Counter("baton_budget_waits", "LLM calls that waited for calls in flight to settle "
                                    "(their estimate did not fit beside them)", per_version, registry=r)
        self.execution_spend_tokens = Histogram(
            "baton_execution_spend_tokens", "LLM tokens an execution spent, when it ended", per_version, registry=r,
            buckets=(100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000))
        self.execution_spend_usd = Histogram(
            "baton_execution_spend_usd", "USD an execution's LLM calls cost, when it ended", per_version, registry=r,
            buckets=(0.001, 0.01, 0.1, 1, 10, 100))
        self.transitions = Counter("baton_state_transitions", "States entered", registry=r)
        self.open = Gauge("baton_open_executions", "Executions running on this instance", registry=r)
        self.dlq = Counter("baton_dlq", "Events sent to the dead-letter topic", ["reason"], registry=r)
        self.ignored = Counter("baton_ignored_events", "Events recognised and ignored", ["reason"], registry=r)
        self.retries = Counter("baton_retries", "Task/Parallel/Map retries scheduled", registry=r)
        self.expired = Counter("baton_executions_expired", "Closed executions removed when their retention ended",
                               registry=r)
        self.batch_seconds = Histogram(
            "baton_batch_seconds", "Time to decide and commit one batch of events", registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.batch_events = Histogram(
            "baton_batch_events", "Events per transaction", registry=r, buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500),
        )
        self.lag = Gauge("baton_consumer_lag", "Records not yet consumed", ["topic", "partition"], registry=r)
        self.step_seconds = Histogram(
            "baton_step_duration_seconds", "Task duration, command to result", ["service", "model"], registry=r,
        )
        self.review_wait = Histogram(
            "baton_review_wait_seconds", "Time a human review task waited", registry=r,
            buckets=(1, 10, 60, 300, 900, 3600, 14400, 86400),
        )
        self.restore_seconds = Gauge("baton_restore_seconds", "Time of the last state restore", registry=r)
