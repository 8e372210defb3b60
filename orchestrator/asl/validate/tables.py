"""The field tables of the ASL spec: which fields each state type allows, which belong to one query
language, which go together or exclude each other, and the names and limits the checks refer to."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from orchestrator.asl import errors

JSONPATH: Final = "JSONPath"
JSONATA: Final = "JSONata"
QUERY_LANGUAGES: Final = (JSONPATH, JSONATA)

MAX_NAME_LENGTH: Final = 80  # state and variable names (ASL spec, "States"; "State Machine Variables")

TOP_LEVEL_FIELDS: Final = frozenset({"StartAt", "States", "Comment", "Version", "TimeoutSeconds", "QueryLanguage"})
BRANCH_FIELDS: Final = frozenset({"StartAt", "States", "Comment"})
# ItemProcessor (and the deprecated Iterator) may not set QueryLanguage: its states inherit the
# machine's language, not the Map state's (measured on AWS, floci-io/floci#2968).
PROCESSOR_FIELDS: Final = frozenset({"StartAt", "States", "Comment", "ProcessorConfig"})

COMMON_FIELDS: Final = frozenset({"Type", "Comment", "QueryLanguage"})
_IO: Final = frozenset({"InputPath", "OutputPath", "Output"})
_FLOW: Final = frozenset({"Next", "End"})
_RESULT: Final = frozenset({"Parameters", "ResultSelector", "ResultPath", "Retry", "Catch", "Assign"})


@dataclass(frozen=True)
class StateSpec:
    """What one state type allows: `allowed` besides COMMON_FIELDS, and what it requires."""

    allowed: frozenset[str]
    required: tuple[str, ...] = ()
    # Pass/Task/Wait/Parallel/Map continue somewhere: exactly one of "Next" or "End": true.
    flows: bool = False


# The ASL spec's "Table of State Types and Fields" (JSONPath and JSONata), plus each type's own
# fields. Fields of the other query language are listed here too and refused separately, so the
# message can say which language they belong to.
STATE_SPECS: Final[Mapping[str, StateSpec]] = {
    "Pass": StateSpec(_IO | _FLOW | {"Parameters", "ResultPath", "Result", "Assign"}, flows=True),
    "Task": StateSpec(
        _IO | _FLOW | _RESULT
        | {
            "Resource", "Credentials", "Arguments",
            "TimeoutSeconds", "TimeoutSecondsPath", "HeartbeatSeconds", "HeartbeatSecondsPath",
        },
        required=("Resource",),
        flows=True,
    ),
    "Choice": StateSpec(_IO | {"Choices", "Default", "Assign"}, required=("Choices",)),
    "Wait": StateSpec(_IO | _FLOW | {"Seconds", "SecondsPath", "Timestamp", "TimestampPath", "Assign"}, flows=True),
    "Succeed": StateSpec(_IO),
    "Fail": StateSpec(frozenset({"Error", "ErrorPath", "Cause", "CausePath"})),
    "Parallel": StateSpec(_IO | _FLOW | _RESULT | {"Branches", "Arguments"}, required=("Branches",), flows=True),
    "Map": StateSpec(
        _IO | _FLOW | _RESULT
        | {
            "ItemProcessor", "Iterator", "ItemsPath", "Items", "ItemSelector", "ItemReader",
            "ItemBatcher", "ResultWriter", "Label",
            "MaxConcurrency", "MaxConcurrencyPath",
            "ToleratedFailureCount", "ToleratedFailureCountPath",
            "ToleratedFailurePercentage", "ToleratedFailurePercentagePath",
        },
        flows=True,
    ),
}

# Fields that exist only in one query language (ASL spec, "JSONPath Concepts" / "JSONata Concepts").
JSONPATH_ONLY: Final = frozenset({
    "InputPath", "OutputPath", "Parameters", "ResultSelector", "ResultPath", "Result", "ItemsPath",
    "SecondsPath", "TimestampPath", "TimeoutSecondsPath", "HeartbeatSecondsPath", "ErrorPath",
    "CausePath", "MaxConcurrencyPath", "ToleratedFailureCountPath", "ToleratedFailurePercentagePath",
})
JSONATA_ONLY: Final = frozenset({"Arguments", "Output", "Items"})

# Pairs a state may not both have: a literal value and the path (or alias) that supplies it.
EXCLUSIVE_PAIRS: Final = (
    ("TimeoutSeconds", "TimeoutSecondsPath"),
    ("HeartbeatSeconds", "HeartbeatSecondsPath"),
    ("Error", "ErrorPath"),
    ("Cause", "CausePath"),
    ("MaxConcurrency", "MaxConcurrencyPath"),
    ("ToleratedFailureCount", "ToleratedFailureCountPath"),
    ("ToleratedFailurePercentage", "ToleratedFailurePercentagePath"),
    ("ItemProcessor", "Iterator"),  # Iterator is the deprecated name of ItemProcessor
    ("ItemSelector", "Parameters"),  # in a Map, Parameters is the deprecated name of ItemSelector
)
WAIT_DURATIONS: Final = ("Seconds", "SecondsPath", "Timestamp", "TimestampPath")

# Fields of a JSONata state whose strings are evaluated when they are `{% %}` expressions: at any
# depth in these (a malformed `{%` / `%}` string is refused, as AWS's "Transforming data with
# JSONata" says an improperly opened or closed expression is a validation error) ...
JSONATA_TEMPLATES: Final = (
    "Arguments", "Output", "Assign", "Items", "ItemSelector", "Credentials", "ItemReader", "ItemBatcher",
    "ResultWriter", "Error", "Cause",
)
# ... and these scalars, whose own check already refuses a string that is not an expression.
JSONATA_SCALARS: Final = (
    "TimeoutSeconds", "HeartbeatSeconds", "Seconds", "Timestamp", "MaxConcurrency", "ToleratedFailureCount",
    "ToleratedFailurePercentage",
)
# `$states.result` exists in the Output and Assign of the states that have a result, and
# `$states.errorOutput` in a Catcher's Output and Assign (AWS developer guide, "Passing data between
# states with variables", reserved variable $states: using them elsewhere "will be caught at
# creation, update, or validation of the state machine").
RESULT_STATES: Final = frozenset({"Task", "Parallel", "Map"})
RESULT_FIELDS: Final = frozenset({"Output", "Assign"})

RETRIER_FIELDS: Final = frozenset({
    "ErrorEquals", "IntervalSeconds", "MaxAttempts", "BackoffRate", "MaxDelaySeconds", "JitterStrategy", "Comment",
})
CATCHER_FIELDS: Final = frozenset({"ErrorEquals", "Next", "ResultPath", "Assign", "Output", "Comment"})
JSONATA_RULE_FIELDS: Final = frozenset({"Condition", "Next", "Assign", "Output", "Comment"})
PROCESSOR_CONFIG: Final[Mapping[str, frozenset[str]]] = {
    "Mode": frozenset({"INLINE", "DISTRIBUTED"}),
    "ExecutionType": frozenset({"STANDARD", "EXPRESS"}),
}
JITTER_STRATEGIES: Final = frozenset({"FULL", "NONE"})

# Error names AWS defines under the reserved "States." prefix (ASL spec Appendix A; Step Functions
# developer guide, "Error names", which adds States.Runtime and the HTTP Task errors).
RESERVED_ERRORS: Final = frozenset({
    errors.ALL, errors.TASK_FAILED, errors.TIMEOUT, errors.HEARTBEAT_TIMEOUT, errors.RUNTIME,
    errors.DATA_LIMIT_EXCEEDED, errors.INTRINSIC_FAILURE, errors.RESULT_PATH_MATCH_FAILURE,
    errors.PARAMETER_PATH_FAILURE, errors.BRANCH_FAILED, errors.NO_CHOICE_MATCHED, errors.PERMISSIONS,
    errors.EXCEED_TOLERATED_FAILURE_THRESHOLD, errors.ITEM_READER_FAILED, errors.RESULT_WRITER_FAILED,
    errors.QUERY_EVALUATION_ERROR, "States.Http.Socket",
})
HTTP_STATUS_ERROR: Final = re.compile(r"States\.Http\.StatusCode\.[1-5][0-9][0-9]")

# Statelint's schema caps these integers below 99999999.
MAX_SECONDS: Final = 99999999
