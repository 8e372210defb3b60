"""Retry and Catch policy: which retrier or catcher matches an error, and how long to back off.

Matching follows the ASL spec ("Error names", "Retrying after an error", "Fallback states"):
retriers and catchers are tried in order and the first whose ErrorEquals matches wins;
`States.ALL` matches every error except the terminal `States.Runtime` and
`States.DataLimitExceeded`; `States.TaskFailed` matches every error except `States.Timeout`
(and the terminal ones).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.asl import errors
from orchestrator.asl.model import Catcher, Retrier

# The state types with Retry and Catch fields (ASL spec, "Retrying after an error").
RETRIABLE_TYPES = frozenset({"Task", "Parallel", "Map"})


def matches(error_equals: Sequence[str], error: str) -> bool:
    """True when a retrier's or catcher's ErrorEquals covers `error`."""
    if error == errors.RUNTIME:
        return False  # terminal: not even an explicit "States.Runtime" catches it
    for name in error_equals:
        if name == error:
            return True
        if error in errors.UNCATCHABLE:
            continue
        if name == errors.ALL:
            return True
        # "acts as a wildcard that matches any known error except for States.Timeout" (AWS guide)
        if name == errors.TASK_FAILED and error != errors.TIMEOUT:
            return True
    return False


@dataclass(frozen=True)
class RetryDecision:
    retrier_index: int
    delay_seconds: float


def next_retry(
    retriers: Sequence[Retrier], attempts: Sequence[int], error: str, rng: random.Random
) -> RetryDecision | None:
    """The retry to make for `error`, or None when no retrier matches or the matching one is spent.

    `attempts[i]` counts the retries already made by retrier i (they count separately).
    Delay: IntervalSeconds * BackoffRate ** attempts, capped by MaxDelaySeconds; with
    JitterStrategy FULL a uniform random fraction of it (AWS "Retry" fields).
    """
    for index, retrier in enumerate(retriers):
        if not matches(retrier.error_equals, error):
            continue
        done = attempts[index] if index < len(attempts) else 0
        if done >= retrier.max_attempts:
            return None
        delay = retrier.interval_seconds * retrier.backoff_rate**done
        if retrier.max_delay_seconds is not None:
            delay = min(delay, float(retrier.max_delay_seconds))
        if retrier.jitter_strategy == "FULL":
            delay = rng.uniform(0.0, delay)
        return RetryDecision(index, delay)
    return None


def find_catcher(catchers: Sequence[Catcher], error: str) -> Catcher | None:
    """The first catcher whose ErrorEquals covers `error`."""
    for catcher in catchers:
        if matches(catcher.error_equals, error):
            return catcher
    return None
