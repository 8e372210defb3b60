"""ASL error names and the exceptions of the core.

Runtime failures that a definition can Retry or Catch are `StatesError`s carrying an ASL error
name and a cause; definition faults found before an execution starts are `DefinitionError`s
carrying every problem with the JSON path of the fault.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.errors import BatonError

# Error names reserved by the ASL specification ("Errors" section) and Step Functions.
ALL = "States.ALL"
TASK_FAILED = "States.TaskFailed"
TIMEOUT = "States.Timeout"
HEARTBEAT_TIMEOUT = "States.HeartbeatTimeout"
RUNTIME = "States.Runtime"
DATA_LIMIT_EXCEEDED = "States.DataLimitExceeded"
INTRINSIC_FAILURE = "States.IntrinsicFailure"
RESULT_PATH_MATCH_FAILURE = "States.ResultPathMatchFailure"
PARAMETER_PATH_FAILURE = "States.ParameterPathFailure"
BRANCH_FAILED = "States.BranchFailed"
NO_CHOICE_MATCHED = "States.NoChoiceMatched"
PERMISSIONS = "States.Permissions"
EXCEED_TOLERATED_FAILURE_THRESHOLD = "States.ExceedToleratedFailureThreshold"
ITEM_READER_FAILED = "States.ItemReaderFailed"
RESULT_WRITER_FAILED = "States.ResultWriterFailed"
QUERY_EVALUATION_ERROR = "States.QueryEvaluationError"

# States.ALL does not match States.Runtime: a runtime error is not retriable or catchable
# (ASL spec, "Error names"; Step Functions developer guide, "Error handling").
UNCATCHABLE = frozenset({RUNTIME, DATA_LIMIT_EXCEEDED})


class StatesError(BatonError):
    """A runtime error with an ASL error name; Retry and Catch match on `error`."""

    def __init__(self, error: str, cause: str = "") -> None:
        super().__init__(f"{error}: {cause}" if cause else error)
        self.error = error
        self.cause = cause


@dataclass(frozen=True)
class Problem:
    """One fault in a definition: where (a JSON path such as `$.States.A.Next`) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class DefinitionError(BatonError):
    """A state machine definition that must be refused; `problems` lists every fault found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))
