"""The LLM service's Prometheus metrics, on the step service's registry (one /metrics per service).

The `model` label is the name the Task used (what a definition author sees and routes by).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

_SECONDS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)


class LLMMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["provider", "model"]
        self.requests = Counter("baton_llm_requests", "LLM calls, by outcome (ok, or the Baton.LLM.* error).",
                                [*labels, "outcome"], registry=registry)
        self.tokens = Counter("baton_llm_tokens", "Tokens used, by direction (input, output).",
                              [*labels, "direction"], registry=registry)
        self.time_to_first_token = Histogram(
            "baton_llm_time_to_first_token_seconds", "From sending the request to the first generated text.",
            labels, registry=registry, buckets=_SECONDS)
        self.duration = Histogram(
            "baton_llm_request_duration_seconds", "One provider call, request to last byte, by outcome.",
            [*labels, "outcome"], registry=registry, buckets=_SECONDS)
        self.output_rate = Histogram(
            "baton_llm_output_tokens_per_second", "Generation speed after the first token.", labels,
            registry=registry, buckets=(1, 5, 10, 20, 40, 80, 160, 320, 640))
        self.cost = Counter("baton_llm_cost_usd", "Cost from the configured price table, in USD.", labels,
                            registry=registry)
        self.stream_chunks = Counter("baton_llm_stream_chunks", "Chunks published to the streams topic.", labels,
                                     registry=registry)
        # Only while the response cache is on: hit (answered from it, no provider call), miss
        # (called; stored if the task succeeds), skip (not deterministic, or the cache failed).
        self.cache = Counter("baton_llm_cache", "Response cache lookups, by outcome (hit, miss, skip).",
                             [*labels, "outcome"], registry=registry)
