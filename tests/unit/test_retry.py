"""Retry and Catch policy (`orchestrator.asl.retry`): matching, attempt counting and back-off.

Sources cited below:
- [errors] Step Functions developer guide, "Handling errors in Step Functions workflows"
  (docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html): error names,
  "Retrying after an error" (IntervalSeconds, MaxAttempts, BackoffRate, MaxDelaySeconds,
  JitterStrategy) and "Fallback states" (Catch).
- [spec] Amazon States Language specification (states-language.net), "Errors", "Retrying after
  error", "Fallback states".
- [recorded] executions recorded on real AWS in ../shared/asl-conformance/cases.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.asl import errors
from orchestrator.asl.model import Catcher, Retrier, parse_definition
from orchestrator.asl.retry import RetryDecision, find_catcher, matches, next_retry

CUSTOM = "MyError"
ALL_KNOWN = [
    errors.TASK_FAILED,
    errors.TIMEOUT,
    errors.HEARTBEAT_TIMEOUT,
    errors.PERMISSIONS,
    errors.BRANCH_FAILED,
    errors.NO_CHOICE_MATCHED,
    errors.RESULT_PATH_MATCH_FAILURE,
    errors.PARAMETER_PATH_FAILURE,
    errors.INTRINSIC_FAILURE,
    errors.EXCEED_TOLERATED_FAILURE_THRESHOLD,
    CUSTOM,
    "Lambda.ServiceException",
]


def rng(seed: int = 0) -> random.Random:
    return random.Random(seed)


# --- matches ------------------------------------------------------------------------------------


class TestMatches:
    def test_exact_name(self) -> None:
        assert matches([CUSTOM], CUSTOM)
        assert matches(["Other", CUSTOM], CUSTOM)

    def test_names_are_exact_and_case_sensitive(self) -> None:
        """[errors] "Step Functions identifies errors ... using case-sensitive strings"."""
        assert not matches(["myerror"], CUSTOM)
        assert not matches(["My"], CUSTOM)
        assert not matches([CUSTOM + "X"], CUSTOM)
        assert not matches(["states.all"], CUSTOM)

    def test_misspelt_wildcard_is_just_a_name(self) -> None:
        """[recorded] scenarios_map/test_map_state_retry_multiple_retriers: a retrier on
        "State.ALL" (no s) does not retry HandleItemFailError; only the exact name does."""
        assert not matches(["State.ALL"], "HandleItemFailError")
        assert matches(["HandleItemFailError"], "HandleItemFailError")

    @pytest.mark.parametrize("error", ALL_KNOWN)
    def test_states_all_matches_every_catchable_error(self, error: str) -> None:
        """[errors] States.ALL: "A wildcard that matches any known error name"."""
        assert matches([errors.ALL], error)

    @pytest.mark.parametrize("error", [errors.RUNTIME, errors.DATA_LIMIT_EXCEEDED])
    def test_states_all_does_not_match_terminal_errors(self, error: str) -> None:
        """[errors] States.ALL "can't catch the States.DataLimitExceeded terminal error type and
        runtime error types"."""
        assert not matches([errors.ALL], error)
        assert not matches([errors.TASK_FAILED], error)

    def test_task_failed_matches_everything_but_timeout(self) -> None:
        """[errors] States.TaskFailed "acts as a wildcard that matches any known error name except
        for States.Timeout"."""
        assert matches([errors.TASK_FAILED], CUSTOM)
        assert matches([errors.TASK_FAILED], errors.TASK_FAILED)
        assert matches([errors.TASK_FAILED], errors.HEARTBEAT_TIMEOUT)
        assert matches([errors.TASK_FAILED], errors.PERMISSIONS)
        assert not matches([errors.TASK_FAILED], errors.TIMEOUT)

    def test_timeout_is_matched_by_name_or_states_all(self) -> None:
        assert matches([errors.TIMEOUT], errors.TIMEOUT)
        assert matches([errors.TASK_FAILED, errors.TIMEOUT], errors.TIMEOUT)
        assert matches([errors.ALL], errors.TIMEOUT)
        assert not matches([errors.HEARTBEAT_TIMEOUT], errors.TIMEOUT)

    @pytest.mark.parametrize(
        "error_equals",
        [[errors.RUNTIME], [errors.ALL, errors.RUNTIME], [errors.RUNTIME, errors.TASK_FAILED]],
    )
    def test_states_runtime_is_never_matched_even_when_named(self, error_equals: list[str]) -> None:
        """[recorded] scenarios_other/test_catch_states_runtime: a Catch on ["States.Runtime"]
        does not catch the States.Runtime raised by a missing OutputPath; the execution fails."""
        assert not matches(error_equals, errors.RUNTIME)

    def test_specific_name_does_not_match_other_errors(self) -> None:
        assert not matches([errors.TIMEOUT], CUSTOM)
        assert not matches([CUSTOM], errors.TIMEOUT)
        assert not matches([], CUSTOM)


# --- next_retry ---------------------------------------------------------------------------------


def retrier(*names: str, **fields: object) -> Retrier:
    return Retrier(error_equals=tuple(names) or (errors.ALL,), **fields)  # type: ignore[arg-type]


class TestNextRetry:
    def test_no_retriers_means_no_retry(self) -> None:
        assert next_retry([], [], CUSTOM, rng()) is None

    def test_no_matching_retrier_means_no_retry(self) -> None:
        assert next_retry([retrier("Other")], [0], CUSTOM, rng()) is None

    def test_first_matching_retrier_wins(self) -> None:
        """[spec] "the interpreter scans through the Retriers and, when the Error Name appears in
        the value of a Retrier's ErrorEquals field, implements the retry policy described in that
        Retrier" -- the first one, in order."""
        retriers = [retrier("Other", interval_seconds=9), retrier(CUSTOM, interval_seconds=2), retrier(interval_seconds=5)]
        decision = next_retry(retriers, [0, 0, 0], CUSTOM, rng())
        assert decision == RetryDecision(retrier_index=1, delay_seconds=2.0)

    def test_wildcard_after_specific_retrier(self) -> None:
        retriers = [retrier("Other", interval_seconds=9), retrier(errors.ALL, interval_seconds=4)]
        assert next_retry(retriers, [0, 0], CUSTOM, rng()) == RetryDecision(1, 4.0)

    def test_max_attempts_counts_retries_of_that_retrier(self) -> None:
        """[errors] MaxAttempts: "the maximum number of retry attempts" (default 3)."""
        r = [retrier(CUSTOM, max_attempts=2)]
        assert next_retry(r, [0], CUSTOM, rng()) is not None
        assert next_retry(r, [1], CUSTOM, rng()) is not None
        assert next_retry(r, [2], CUSTOM, rng()) is None
        assert next_retry(r, [5], CUSTOM, rng()) is None

    def test_max_attempts_zero_never_retries(self) -> None:
        """[errors] "A value of 0 means the error is never retried"."""
        assert next_retry([retrier(CUSTOM, max_attempts=0)], [0], CUSTOM, rng()) is None

    def test_each_retrier_keeps_its_own_count(self) -> None:
        """[spec] "Retrying after error": a retrier's MaxAttempts limits the retries made by that
        retrier; retries made by another retrier do not count against it."""
        retriers = [retrier("A", max_attempts=1, interval_seconds=1), retrier("B", max_attempts=1, interval_seconds=3)]
        # retrier 0 is spent, retrier 1 is not
        assert next_retry(retriers, [1, 0], "A", rng()) is None
        assert next_retry(retriers, [1, 0], "B", rng()) == RetryDecision(1, 3.0)

    def test_spent_first_match_is_not_skipped_for_a_later_one(self) -> None:
        """Only the first retrier whose ErrorEquals matches applies; once it is spent the error
        goes on to Catch ([spec] "Retrying after error": "retries cease and normal error handling
        resumes")."""
        retriers = [retrier(CUSTOM, max_attempts=1), retrier(errors.ALL, max_attempts=5)]
        assert next_retry(retriers, [1, 0], CUSTOM, rng()) is None

    def test_missing_attempt_counts_are_zero(self) -> None:
        assert next_retry([retrier(CUSTOM)], [], CUSTOM, rng()) == RetryDecision(0, 1.0)

    def test_runtime_errors_are_never_retried(self) -> None:
        assert next_retry([retrier(errors.ALL), retrier(errors.RUNTIME)], [0, 0], errors.RUNTIME, rng()) is None

    @pytest.mark.parametrize(
        ("interval", "rate", "done", "expected"),
        [(1, 2.0, 0, 1.0), (1, 2.0, 1, 2.0), (1, 2.0, 2, 4.0), (3, 1.5, 2, 6.75), (2, 1.0, 7, 2.0), (5, 3.0, 3, 135.0)],
    )
    def test_backoff_is_interval_times_rate_to_the_retry_count(
        self, interval: int, rate: float, done: int, expected: float
    ) -> None:
        """[errors] BackoffRate: "The multiplier by which the retry interval denoted by
        IntervalSeconds increases after each retry attempt"."""
        decision = next_retry([retrier(CUSTOM, interval_seconds=interval, backoff_rate=rate, max_attempts=99)],
                              [done], CUSTOM, rng())
        assert decision is not None
        assert decision.delay_seconds == pytest.approx(expected)

    def test_max_delay_seconds_caps_the_backoff(self) -> None:
        """[errors] MaxDelaySeconds: "the maximum value in seconds up to which a retry interval
        can increase"."""
        r = [retrier(CUSTOM, interval_seconds=3, backoff_rate=2.0, max_delay_seconds=5, max_attempts=10)]
        delays = [next_retry(r, [n], CUSTOM, rng()).delay_seconds for n in range(4)]  # type: ignore[union-attr]
        assert delays == [3.0, 5.0, 5.0, 5.0]

    def test_full_jitter_is_within_zero_and_the_capped_backoff(self) -> None:
        """[errors] JitterStrategy FULL: the delay is "a random number between 0 and the computed
        backoff for the given retry attempt count" (and still capped by MaxDelaySeconds)."""
        r = [retrier(CUSTOM, interval_seconds=4, backoff_rate=2.0, max_delay_seconds=10,
                     jitter_strategy="FULL", max_attempts=10)]
        for n, cap in [(0, 4.0), (1, 8.0), (2, 10.0), (5, 10.0)]:
            delays = [next_retry(r, [n], CUSTOM, rng(seed)).delay_seconds for seed in range(200)]  # type: ignore[union-attr]
            assert all(0.0 <= d <= cap for d in delays)
            assert len(set(delays)) > 100, "FULL jitter must actually vary with the seed"
            assert max(delays) > cap * 0.9 and min(delays) < cap * 0.1

    def test_full_jitter_is_deterministic_for_a_seeded_rng(self) -> None:
        r = [retrier(CUSTOM, interval_seconds=7, jitter_strategy="FULL")]
        first = next_retry(r, [1], CUSTOM, rng(1234))
        again = next_retry(r, [1], CUSTOM, rng(1234))
        assert first == again
        assert first is not None and first.delay_seconds != 14.0

    def test_jitter_none_is_the_plain_backoff(self) -> None:
        r = [retrier(CUSTOM, interval_seconds=7, jitter_strategy="NONE")]
        assert {next_retry(r, [1], CUSTOM, rng(s)).delay_seconds for s in range(20)} == {14.0}  # type: ignore[union-attr]

    @settings(max_examples=200, deadline=None)
    @given(
        interval=st.integers(1, 100),
        rate=st.floats(1.0, 5.0, allow_nan=False),
        done=st.integers(0, 6),
        cap=st.one_of(st.none(), st.integers(1, 500)),
        seed=st.integers(0, 2**32),
    )
    def test_backoff_properties(self, interval: int, rate: float, done: int, cap: int | None, seed: int) -> None:
        expected = interval * rate**done
        if cap is not None:
            expected = min(expected, cap)
        plain = next_retry([retrier(CUSTOM, interval_seconds=interval, backoff_rate=rate, max_attempts=10,
                                    max_delay_seconds=cap)], [done], CUSTOM, rng(seed))
        jittered = next_retry([retrier(CUSTOM, interval_seconds=interval, backoff_rate=rate, max_attempts=10,
                                       max_delay_seconds=cap, jitter_strategy="FULL")], [done], CUSTOM, rng(seed))
        assert plain is not None and jittered is not None
        assert plain.delay_seconds == pytest.approx(expected)
        assert 0.0 <= jittered.delay_seconds <= expected + 1e-9


class TestRetrierDefaults:
    def test_defaults_from_a_definition(self) -> None:
        """[errors] IntervalSeconds defaults to 1, MaxAttempts to 3, BackoffRate to 2.0; no
        MaxDelaySeconds; JitterStrategy NONE."""
        machine = parse_definition({
            "StartAt": "T",
            "States": {"T": {"Type": "Task", "Resource": "baton:fn:x", "End": True,
                             "Retry": [{"ErrorEquals": ["States.ALL"]}]}},
        })
        (r,) = machine.states["T"].retry
        assert (r.interval_seconds, r.max_attempts, r.backoff_rate, r.max_delay_seconds, r.jitter_strategy) == (
            1, 3, 2.0, None, "NONE")
        delays = [next_retry([r], [n], CUSTOM, rng()) for n in range(4)]
        assert [d.delay_seconds if d else None for d in delays] == [1.0, 2.0, 4.0, None]


# --- find_catcher -------------------------------------------------------------------------------


def catcher(*names: str, next_: str = "Next") -> Catcher:
    return Catcher(error_equals=tuple(names), next=next_)


class TestFindCatcher:
    def test_first_matching_catcher_in_order(self) -> None:
        """[spec] "Fallback states": catchers are scanned in order; the first whose ErrorEquals
        matches is used."""
        catchers = [catcher("Other", next_="A"), catcher(CUSTOM, next_="B"), catcher(errors.ALL, next_="C")]
        found = find_catcher(catchers, CUSTOM)
        assert found is not None and found.next == "B"
        found = find_catcher(catchers, "Unknown")
        assert found is not None and found.next == "C"

    def test_no_match(self) -> None:
        assert find_catcher([catcher("Other")], CUSTOM) is None
        assert find_catcher([], CUSTOM) is None

    def test_timeout_skips_task_failed_catcher(self) -> None:
        catchers = [catcher(errors.TASK_FAILED, next_="A"), catcher(errors.TIMEOUT, next_="B")]
        found = find_catcher(catchers, errors.TIMEOUT)
        assert found is not None and found.next == "B"

    def test_runtime_is_never_caught(self) -> None:
        assert find_catcher([catcher(errors.RUNTIME), catcher(errors.ALL)], errors.RUNTIME) is None

    def test_catcher_result_path_defaults_to_dollar(self) -> None:
        """[spec] "Fallback states": a Catcher's ResultPath defaults to `$` (the error output
        replaces the input)."""
        machine = parse_definition({
            "StartAt": "T",
            "States": {
                "T": {"Type": "Task", "Resource": "baton:fn:x", "End": True,
                      "Catch": [{"ErrorEquals": ["X"], "Next": "H"},
                                {"ErrorEquals": ["States.ALL"], "Next": "H", "ResultPath": None}]},
                "H": {"Type": "Pass", "End": True},
            },
        })
        first, second = machine.states["T"].catch
        assert first.result_path == "$"
        assert second.result_path is None
